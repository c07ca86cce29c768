"""The EU Digital Services Act transparency report: the harmonised templates of Commission Implementing Regulation
(EU) 2024/2835, as the Commission publishes them in CSV (one file per part), in one ZIP.

Every part of Annex I is written with its header and rows exactly as :file:`data/dsa_template.json` describes them
(read from the Commission's English CSV parts; sources are listed in that file and in docs/transparency.md), so the
operator publishes a complete report and sees at a glance what is left to add:

* a number where Safehold's figures answer the row (own-initiative moderation for *Protection of minors*, the
  precision of each automated detector, the report's identification);
* :data:`MARKER` in a cell that applies to a hosting service or online platform but that Safehold cannot know
  (notices, orders, complaints, other categories, totals over the whole service); the contextual-information
  column next to it then says what Safehold counted, when it counted something related;
* an empty cell in a row the template marks as not applying (VLOP/VLOSE-only rows), as Annex II asks.

Small cells arrive suppressed (``"<N"``) and are written as such; a sum with suppressed parts is written as the
range it must lie in (``"12..30"``). A sum with a part hidden only to protect another (``"x"``, whose value may be
anything) is left to the operator (:data:`MARKER`) in a value cell and written ``x`` in a sentence. Every text cell
is written so that a spreadsheet cannot run it as a formula (:func:`_safe`). :func:`validate_dsa_zip` checks a ZIP
against the template file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
from dataclasses import dataclass
from functools import cache
from importlib import resources

from safehold.transparency.figures import FigureSet
from safehold.transparency.formats import ReportContext
from safehold.transparency.privacy import SECONDARY

#: What a cell holds when the operator must fill it in before publishing.
MARKER = "OPERATOR_TO_COMPLETE"
#: Applicability values (the template's first column) of rows that apply to a hosting service or online platform
#: that is not a VLOP or VLOSE; every other row is left blank.
APPLIES = frozenset(
    {
        "All",
        "Only for providers of hosting services, including online platforms",
        "Only for providers of online platforms",
    }
)
#: A fixed time for every ZIP entry, so the same figures give the same bytes.
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)
_MINORS = "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
_CSAM = "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"
_GROOMING = "KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS"
_OTHER = "KEYWORD_OTHER"
#: Where each kind of child sexual exploitation (decision ``cse``) goes among the Protection-of-minors
#: sub-categories: (keyword, the description of a KEYWORD_OTHER row); a kind not listed counts as ``other``.
#: Decision ``csam`` (every industry class, A1–B2, and unclassified) goes to KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL.
_KEYWORD_OF_CSE = {
    "grooming": (_GROOMING, ""),
    "sextortion": (_OTHER, "Sextortion of minors"),
    "solicitation": (_OTHER, "Advertising or soliciting child sexual abuse material"),
    "other": (_OTHER, "Other child sexual exploitation"),
}
#: The template's restriction column each action kind counts in; other kinds (evidence, report drafts, notices
#: to the platform) restrict nothing. ``restrict_account`` limits what an account may do: a partial suspension
#: of the provision of the service.
_RESTRICTION_OF_ACTION = {
    "remove_content": "Visibility restriction Removal",
    "block_content": "Visibility restriction Disable",
    "restrict_account": "Provision of the service Suspension",
    "suspend_account": "Account restriction Suspension",
    "interrupt": "Visibility restriction Disable",  # a live stream stopped
}
#: The ``origin`` of an action taken by a policy on a detection, with no person involved.
_AUTOMATIC = "automatic"
_MEASURES = "Number of measures taken at the provider's own initiative"
_AUTOMATED = "Number of measures taken after detection with solely automated means"
_PRECISION = "Accuracy of the automated means - Precision"


@cache
def template() -> dict:
    """The template description (:file:`data/dsa_template.json`)."""
    text = resources.files("safehold.transparency").joinpath("data/dsa_template.json").read_text("utf-8")
    return json.loads(text)


def _norm(text: str) -> str:
    """A label with its whitespace normalised: the Commission's files carry trailing and non-breaking spaces that
    published reports often trim."""
    return " ".join(text.replace("\u00a0", " ").split())


# ---------------------------------------------------------------------------------------------- counting


@dataclass(frozen=True)
class Count:
    """A count summed from figure cells: ``known`` from exact cells, plus ``hidden`` suppressed small cells (each
    between 1 and ``min_cell - 1``); ``unknown`` when a part is hidden as ``"x"``, which bounds nothing."""

    known: int = 0
    hidden: int = 0
    unknown: bool = False

    @classmethod
    def of(cls, cell) -> Count:
        if cell == SECONDARY:
            return cls(unknown=True)
        if isinstance(cell, str):
            return cls(0, 1) if cell.startswith("<") else cls(int(cell or 0))
        return cls(int(cell or 0))

    def __add__(self, other: Count) -> Count:
        return Count(self.known + other.known, self.hidden + other.hidden, self.unknown or other.unknown)

    def text(self, min_cell: int) -> str:
        if self.unknown:
            return SECONDARY
        if not self.hidden:
            return str(self.known)
        low, high = self.known + self.hidden, self.known + self.hidden * (min_cell - 1)
        return f"<{min_cell}" if high < min_cell else f"{low}..{high}"


def _total(counts) -> Count:
    total = Count()
    for c in counts:
        total += c
    return total


def _sum(cells) -> Count:
    return _total(Count.of(c) for c in cells)


class _Known:
    """What Safehold's figures say about the template's rows, read once from the figure set."""

    def __init__(self, figures: FigureSet):
        def rows(key: str) -> list[dict]:
            f = figures.figures.get(key)
            return f.dicts() if f is not None else []

        self.csam, self.grooming = Count(), Count()
        #: KEYWORD_OTHER rows of Protection of minors: description → cases.
        self.other = {d: Count() for k, d in _KEYWORD_OF_CSE.values() if k == _OTHER}
        for r in rows("decisions.by_outcome"):
            if r["decision"] == "csam":
                self.csam += Count.of(r["cases"])
            elif r["decision"] == "cse":
                keyword, description = _KEYWORD_OF_CSE.get(r["classification"], _KEYWORD_OF_CSE["other"])
                if keyword == _GROOMING:
                    self.grooming += Count.of(r["cases"])
                else:
                    self.other[description] += Count.of(r["cases"])
        self.measures = _total([self.csam, self.grooming, *self.other.values()])
        actions = [r for r in rows("actions.by_kind") if r["kind"] in _RESTRICTION_OF_ACTION]
        self.restrictions: dict[str, Count] = {}
        for r in actions:
            col = _RESTRICTION_OF_ACTION[r["kind"]]
            self.restrictions[col] = self.restrictions.get(col, Count()) + Count.of(r["actions"])
        self.automatic = _sum(r["actions"] for r in actions if r["origin"] == _AUTOMATIC)
        self.by_people = _sum(r["actions"] for r in actions if r["origin"] != _AUTOMATIC)
        self.user_reports = [r for r in rows("detections.by_source") if r["source"] == "user_report"]
        #: Detectors whose precision can be published: a rate from exact counts (a rate next to a suppressed count
        #: would give the count away).
        self.precision = [
            r
            for r in rows("errors.false_positives")
            if isinstance(r["rate"], int | float)
            and not isinstance(r["reviewed"], str)
            and not isinstance(r["false_positives"], str)
            and r["reviewed"]
        ]
        self.reports = rows("reports.by_authority")
        self.detections = rows("detections.by_source")


# ---------------------------------------------------------------------------------------------- the parts


class _Writer:
    """Builds every part's rows for one figure set and context."""

    def __init__(self, figures: FigureSet, context: ReportContext):
        self.k = _Known(figures)
        self.context = context
        self.min_cell = context.min_cell
        self.start = figures.period.start.isoformat()
        self.end = (figures.period.end - dt.timedelta(days=1)).isoformat()  # the period's end is excluded
        self.period = f"{self.start}/{self.end}"

    def n(self, count: Count) -> str:
        """A count as a sentence gives it."""
        return count.text(self.min_cell)

    def value(self, count: Count) -> str:
        """A count as a value cell holds it: one that cannot be bounded is the operator's to fill in."""
        return MARKER if count.unknown else self.n(count)

    def parts(self) -> dict[str, list[list[str]]]:
        out = {}
        for part in template()["parts"]:
            build = getattr(self, f"_{part['kind']}")
            out[part["file"]] = [part["columns"], *build(part)]
        return out

    # -- report identification, indicator tables and the qualitative template

    def _indicators(self, part: dict) -> list[list[str]]:
        cols = part["columns"]
        rows = []
        for key in part["rows"]:
            row = dict.fromkeys(cols, "")
            row.update(zip(part["key_columns"], key, strict=True))
            if "Service" in row:
                row["Service"] = self.context.service
            if "Reporting period" in row:
                row["Reporting period"] = self.period
            if row["Applicability"] in APPLIES:
                filled = self._indicator(part["part"], row)
                row["Value"] = filled[0]
                ctx = next((c for c in cols if c.lower() == "contextual information"), None)
                if ctx and filled[1]:
                    row[ctx] = filled[1]
            rows.append([row[c] for c in cols])
        if part["part"] == 8:
            rows += self._precision_rows(part)
        return rows

    def _indicator(self, part: int, row: dict) -> tuple[str, str]:
        """(value, contextual information) of one applicable indicator row."""
        indicator, scope = _norm(row["Indicator"]), _norm(row.get("Scope", ""))
        if part == 1:
            return {
                "Name of the service provider": (self.context.provider, ""),
                "Starting date of reporting period": (self.start, ""),
                "Ending date of reporting period": (self.end, ""),
            }.get(indicator, (MARKER, ""))
        if part == 7 and indicator.startswith("Number of suspensions enacted for the provision of manifestly illegal"):
            s = self.k.restrictions.get("Account restriction Suspension", Count())
            return MARKER, f"Safehold asked the platform to suspend {self.n(s)} accounts (actions.by_kind)."
        if part == 8 and scope == "Own-initiative" and indicator.startswith("Number of measures"):
            return MARKER, (
                f"Safehold's child-safety moderation: {self.n(self.k.automatic)} restrictions taken automatically by "
                f"policy, {self.n(self.k.by_people)} after a reviewer's decision or by hand (actions.by_kind)."
            )
        if part == 11 and indicator.startswith("Summary of the content moderation"):
            return self._summary(), ""
        return MARKER, ""

    def _precision_rows(self, part: dict) -> list[list[str]]:
        """One precision row per automated detector, as Annex II asks (accuracy per moderation system): the share
        of the cases it contributed to that reviewers found violating."""
        cols, rows = part["columns"], []
        for r in sorted(self.k.precision, key=lambda r: (r["detector_kind"], r["detector"])):
            row = dict.fromkeys(cols, "")
            row.update(
                Applicability="All",
                Service=self.context.service,
                **{"Reporting period": self.period},
                Section="Use of automated means for content moderation",
                Indicator=_PRECISION,
                Scope="Own-initiative ",
                Value=f"{1 - float(r['rate']):.4f}",
            )
            row[cols[-1]] = (
                f"Safehold detector {r['detector_kind']} {r['detector']}: 1 - false positives / cases reviewed "
                f"({Count.of(r['reviewed']).text(self.min_cell)} cases reviewed; errors.false_positives)."
            )
            rows.append([row[c] for c in cols])
        return rows

    def _summary(self) -> str:
        k = self.k
        by_source = ", ".join(f"{r['source']} {self.n(Count.of(r['signals']))}" for r in k.detections) or "none"
        reports = (
            ", ".join(f"{r['authority']} {r['status']} {self.n(Count.of(r['reports']))}" for r in k.reports) or "none"
        )
        return (
            f"Child-safety moderation by Safehold: detections by source: {by_source}. Cases found to be child "
            f"sexual abuse material: {self.n(k.csam)}; grooming of minors: {self.n(k.grooming)}; other child "
            f"sexual exploitation: {self.n(_total(k.other.values()))}. Restrictions the platform was asked to "
            f"apply: {self.n(k.automatic)} automatically, {self.n(k.by_people)} after human review. Reports to "
            f"authorities by status: {reports}. {MARKER}: describe moderation outside Safehold."
        )

    # -- the category table

    def _taxonomy(self, part: dict) -> list[list[str]]:
        note = (
            "Safehold reports its findings here: child sexual abuse material of every industry class (A1-B2) "
            "in 9b; grooming in 9d; sextortion, advertising or soliciting CSAM and other exploitation as 9f rows."
        )
        return [[*r, note if r[2] == _MINORS else ""] for r in part["rows"]]

    # -- the per-category tables (orders, notices, own-initiative moderation)

    def _categories(self, part: dict) -> list[list[str]]:
        cols = part["columns"]
        values = [c for c in cols[5:] if c != "Scope" and not c.lower().startswith("contextual")]
        rows, category = [], ""
        for code in part["rows"]:
            if code.startswith("STATEMENT_CATEGORY_") or code == "TOTAL":
                category = code
            own = part["part"] == 5 and category == _MINORS
            if own and code == _OTHER:
                for description, count in sorted(self.k.other.items()):
                    rows.append(self._category_row(part, code, description, {_MEASURES: self.value(count)}, values))
                continue
            cells, context = {}, {}
            if own:
                cells, context = self._minors(code)
            elif part["part"] == 5 and code == "TOTAL":
                context[_MEASURES] = f"Protection of minors (Safehold): {self.n(self.k.measures)} cases."
            elif part["part"] == 4 and code == "TOTAL" and self.k.user_reports:
                r = self.k.user_reports[0]
                context[values[0]] = (
                    f"Safehold received {self.n(Count.of(r['signals']))} user reports on "
                    f"{self.n(Count.of(r['cases']))} cases (detections.by_source); count those made through the "
                    f"Article 16 mechanism."
                )
            rows.append(self._category_row(part, code, "", cells, values, context))
        return rows

    def _category_row(
        self, part: dict, code: str, description: str, cells: dict, values: list[str], context: dict | None = None
    ) -> list[str]:
        cols = part["columns"]
        row = dict.fromkeys(cols, "")
        row.update(
            {
                cols[0]: part["applicability"],
                "Service": self.context.service,
                "Reporting period": self.period,
                cols[3]: code,
                cols[4]: description,
            }
        )
        if "Scope" in row:
            row["Scope"] = "TOTAL"
        for c in values:
            row[c] = cells.get(_norm(c), MARKER)
        for c, text in (context or {}).items():
            row[_context_column(cols, c)] = text
        return [row[c] for c in cols]

    def _minors(self, code: str) -> tuple[dict, dict]:
        """(value cells, contextual information) of a Protection-of-minors row in the own-initiative table."""
        k = self.k
        if code == _MINORS:
            cells = {_MEASURES: self.value(k.measures), _AUTOMATED: self.value(k.automatic)}
            cells |= {col: self.value(c) for col, c in k.restrictions.items()}
            for col in _RESTRICTION_OF_ACTION.values():
                cells.setdefault(col, "0")
            return cells, {
                _MEASURES: "Cases Safehold's reviewers closed as child sexual abuse or exploitation "
                "(decisions.by_outcome): the sum of the sub-categories below; add 9a, 9c and 9e.",
                _AUTOMATED: "Restrictions a Safehold policy applied on a detection with no person involved "
                "(actions.by_kind).",
                **{
                    col: "Restrictions Safehold asked the platform to apply (actions.by_kind)."
                    for col in _RESTRICTION_OF_ACTION.values()
                },
            }
        if code == _CSAM:
            return {_MEASURES: self.value(k.csam)}, {_MEASURES: "Includes synthetic material (9c is not split out)."}
        if code == _GROOMING:
            return {_MEASURES: self.value(k.grooming)}, {}
        return {}, {}


def _context_column(cols: list[str], value_column: str) -> str:
    """The contextual-information column of a value column (``Contextual Information on <column>``)."""
    want = _norm(f"Contextual Information on {value_column}").lower()
    return next(c for c in cols if _norm(c).lower() == want)


# ---------------------------------------------------------------------------------------------- the ZIP


#: The first characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _safe(cell: str) -> str:
    """``cell`` with a leading apostrophe when it starts like a formula: the provider's and service's names, bank,
    exchange and label names come from configuration and must never run in the reader's spreadsheet."""
    return f"'{cell}" if isinstance(cell, str) and cell.startswith(_FORMULA) else cell


def _csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([_safe(c) for c in r] for r in rows)
    return buf.getvalue().encode("utf-8")


def _readme(figures: FigureSet, context: ReportContext) -> bytes:
    t = template()
    parts = "\n".join(f"  {p['file']:<32} {p['annex_section']:<15} {p['title']}" for p in t["parts"])
    sources = "\n".join(f"  - {s['what']}: {s['url']}" for s in t["sources"])
    text = README.format(
        provider=context.provider,
        service=context.service,
        period=figures.period.label(),
        version=figures.version,
        digest=figures.digest(),
        generated=context.generated_at.isoformat(),
        marker=MARKER,
        min_cell=context.min_cell,
        min_cell_less=context.min_cell - 1,
        parts=parts,
        sources=sources,
    )
    return text.encode("utf-8")


README = """\
EU Digital Services Act transparency report, harmonised templates
Commission Implementing Regulation (EU) 2024/2835, Annex I, in the Commission's CSV parts

Provider: {provider}
Service: {service}
Reporting period: {period}
Figures: version {version}, digest {digest}, generated {generated} by Safehold

FILES (one per part of Annex I; columns and rows as the Commission's English CSV template)
{parts}

WHAT THE CELLS HOLD
  - A number: filled from Safehold's figures (the figure is named in the contextual-information column).
  - {marker}: the row applies to a hosting service or online platform, but Safehold cannot know the answer.
    Replace every {marker} before publishing (with 0 where the practice applies but nothing happened).
  - Empty: the template marks the row as not applying to a provider that is not a VLOP or VLOSE
    ("Only for VLOPs", "Only for VLOPs and VLOSEs"); Annex II asks for such rows to be left blank.
    A hosting service that is not an online platform also leaves the rows marked
    "Only for providers of online platforms" blank.

FILLED FROM SAFEHOLD'S FIGURES
  01_summary: provider name, start and end of the reporting period.
  02_categories_names: the Commission's categories; Category 9 says where Safehold's findings go.
  05_own_initiative_illegal, Protection of minors (Category 9):
    - STATEMENT_CATEGORY_PROTECTION_OF_MINORS, number of measures: cases closed as child sexual abuse or
      exploitation (decisions.by_outcome), the sum of the rows below it.
    - KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL: cases decided CSAM, every industry class A1-B2 (synthetic included).
    - KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS: cases decided child sexual exploitation, kind grooming.
    - KEYWORD_OTHER rows: sextortion; advertising or soliciting CSAM; other exploitation.
    - Measures after detection with solely automated means: restrictions a policy applied on a detection,
      no person involved (actions.by_kind, origin automatic).
    - Restriction columns: actions.by_kind by kind: remove_content = Visibility restriction Removal,
      block_content = Visibility restriction Disable, restrict_account = Provision of the service Suspension
      (partial), suspend_account = Account restriction Suspension.
  08_automated_means: one "Accuracy of the automated means - Precision" row per detector with reviewed cases:
    1 - the false-positive rate reviewers found (errors.false_positives); a detector whose counts were
    suppressed as small cells is left out. Accuracy and recall need the
    material a detector missed, which leaves no record: the operator completes them.
  11_qualitative: a draft summary of Safehold's moderation and its reports to authorities (reports.by_authority);
    review it and describe moderation outside Safehold.

THE OPERATOR ADDS
  Everything marked {marker}: Member State orders (03), notices (04; Safehold's user-report count is given as
  context), totals over the whole service, other categories (05, 06), complaints, out-of-court disputes and
  suspensions of repeated offenders (07), automated-means totals, accuracy and recall (08), publication dates (01),
  the qualitative descriptions (11). Measures on cases opened by a user report are counted in 05; move them to 04
  if the report came through the Article 16 notice mechanism.

SMALL CELLS
  Counts from 1 to {min_cell_less} are published as "<{min_cell}" (Safehold's small-cell rule). A number summed
  from such cells is published as the range it lies in, "low..high". A count hidden so that a small one cannot be
  worked out by subtraction may be any size: a number summed from it is left {marker} (write the true
  figure if you publish it) and written "x" in the explanatory text.

CONVENTIONS (Annex II)
  Percentages are numbers in [0, 1]; median times are in hours; the reporting period is YYYY-MM-DD/YYYY-MM-DD.

SOURCES
{sources}
"""


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, files[name])
    return buf.getvalue()


class DsaFormat:
    name = "dsa"
    title = "EU Digital Services Act transparency report (Implementing Regulation (EU) 2024/2835 templates, CSV)"
    media_type = "application/zip"
    extension = "zip"

    def render(self, figures: FigureSet, context: ReportContext) -> bytes:
        files = {name: _csv(rows) for name, rows in _Writer(figures, context).parts().items()}
        files["README.txt"] = _readme(figures, context)
        return _zip(files)


# ---------------------------------------------------------------------------------------------- validation

_NUMBER = re.compile(r"^(\d+(\.\d+)?|<\d+|\d+\.\.\d+)$")
_PERIOD = re.compile(r"^\d{4}-\d{2}-\d{2}/\d{4}-\d{2}-\d{2}$")
#: Largest ZIP the validator opens, and largest part in it (a report is far smaller).
MAX_ZIP_BYTES = 50 * 1024 * 1024


def validate_dsa_zip(data: bytes) -> list[str]:
    """Problems with a DSA report ZIP, checked against the template file (an empty list: it is valid).

    Every part must be present with the template's header (whitespace normalised); in the category tables every
    code must be one the template allows in that table and follow its category (each KEYWORD_* after its
    STATEMENT_CATEGORY_*); in the indicator tables every (applicability, section, indicator, scope) must be one of
    the template's rows or an allowed per-language / per-Member-State row; the reporting period is
    ``YYYY-MM-DD/YYYY-MM-DD``; value cells hold a number, a suppressed ``<N``, a range, the marker or nothing.
    """
    if len(data) > MAX_ZIP_BYTES:
        return [f"the file is larger than {MAX_ZIP_BYTES} bytes"]
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = {i.filename: i for i in z.infolist()}
    except zipfile.BadZipFile:
        return ["not a ZIP file"]
    problems = []
    for part in template()["parts"]:
        name = part["file"]
        info = infos.get(name)
        if info is None:
            problems.append(f"{name}: missing")
            continue
        if info.file_size > MAX_ZIP_BYTES:
            problems.append(f"{name}: larger than {MAX_ZIP_BYTES} bytes")
            continue
        try:
            rows = list(csv.reader(io.StringIO(z.read(name).decode("utf-8-sig"))))
        except (UnicodeDecodeError, csv.Error, zipfile.BadZipFile) as e:
            problems.append(f"{name}: unreadable ({e})")
            continue
        problems += [f"{name}: {p}" for p in _check_part(part, rows)]
    return problems


def _check_part(part: dict, rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["empty (no header row)"]
    header = [_norm(c) for c in rows[0]]
    want = [_norm(c) for c in part["columns"]]
    if header != want:
        return [f"header differs from the template: {_first_difference(header, want)}"]
    problems: list[str] = []
    check = {"taxonomy": _check_taxonomy, "categories": _check_categories, "indicators": _check_indicators}
    state: dict[str, str] = {}  # the category the rows so far are under (category tables)
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(want):
            problems.append(f"line {i}: {len(row)} cells, the header has {len(want)}")
            continue
        cells = dict(zip(want, row, strict=True))
        problems += [f"line {i}: {p}" for p in check[part["kind"]](part, cells, state)]
    return problems


def _first_difference(header: list[str], want: list[str]) -> str:
    for i, (a, b) in enumerate(zip(header, want, strict=False)):
        if a != b:
            return f"column {i + 1} is {a!r}, the template has {b!r}"
    return f"{len(header)} columns, the template has {len(want)}"


@cache
def _keywords_of() -> dict[str, frozenset[str]]:
    """Each category code → the keyword codes that may follow it."""
    return {c["code"]: frozenset(k["code"] for k in c["keywords"]) for c in template()["taxonomy"]}


def _check_taxonomy(part: dict, cells: dict, state: dict) -> list[str]:
    allowed = {tuple(r) for r in part["rows"]}
    key = tuple(cells[_norm(c)] for c in part["columns"][:3])
    return [] if key in allowed else [f"unknown category row {key[0]!r} {key[2]!r}"]


def _check_categories(part: dict, cells: dict, state: dict) -> list[str]:
    """One row of a category table; ``state["category"]`` is the last category code seen above it."""
    cols = [_norm(c) for c in part["columns"]]
    code, problems = cells[cols[3]], []
    if code not in set(part["rows"]):
        problems.append(f"category code {code!r} is not allowed in this table")
    elif code == "TOTAL" or code.startswith("STATEMENT_CATEGORY_"):
        state["category"] = code
    elif code not in _keywords_of().get(state.get("category", ""), ()) and code != _OTHER:
        problems.append(f"{code!r} does not belong to the category above it ({state.get('category') or 'none'})")
    elif code == _OTHER and not state.get("category", "").startswith("STATEMENT_CATEGORY_"):
        problems.append("KEYWORD_OTHER outside a category")
    if "Scope" in cells and cells["Scope"] != "TOTAL" and cells["Scope"] not in template()["member_states"]:
        problems.append(f"scope {cells['Scope']!r} is neither TOTAL nor a Member State code")
    return problems + _check_common(part, cells, cols[5:])


def _check_indicators(part: dict, cells: dict, state: dict) -> list[str]:
    keys = [_norm(c) for c in part["key_columns"]]
    key = tuple(_norm(cells[k]) for k in keys)
    allowed = {tuple(_norm(v) for v in r) for r in part["rows"]}
    problems = []
    if key not in allowed and not _expanded(part, keys, cells):
        problems.append(f"row {' / '.join(key)!r} is not in the template")
    return problems + _check_common(part, cells, ["Value"])


def _expanded(part: dict, keys: list[str], cells: dict) -> bool:
    """A per-language or per-Member-State row the template allows in place of its placeholder rows."""
    exp = part.get("expandable_scopes")
    if not exp or "Scope" not in keys:
        return False
    indicators = {_norm(i) for i in exp.get("indicators", [])}
    if indicators and _norm(cells["Indicator"]) not in indicators:
        return False
    return cells["Scope"] in template()[exp["scopes"]]


def _check_common(part: dict, cells: dict, value_columns: list[str]) -> list[str]:
    problems = []
    period = cells.get("Reporting period")
    if period is not None and not _PERIOD.match(period):
        problems.append(f"reporting period {period!r} is not YYYY-MM-DD/YYYY-MM-DD")
    numeric = part["kind"] == "categories" or part["part"] in (7, 8, 9, 10)
    for c in value_columns:
        if c == "Scope" or c.lower().startswith("contextual") or c == 'Description of the sub-category "Other"':
            continue
        v = cells.get(c, "")
        if numeric and v not in ("", MARKER) and not _NUMBER.match(v):
            problems.append(f"{c!r} holds {v!r}, not a number")
    return problems
