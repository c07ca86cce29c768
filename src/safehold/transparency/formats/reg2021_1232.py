"""The annual report of Regulation (EU) 2021/1232 (the interim derogation from the ePrivacy Directive for detecting
online child sexual abuse), Article 3(1)(g)(vii), in the standard form of Commission Implementing Regulation (EU)
2024/2916: the nine categories of the Article, each with the form's subcategories as entries.

An entry is ``filled`` from the figures (its ``sources`` name the figure rows it sums, so it can be traced back) or
``operator_to_complete`` (legal grounds, retention policy, safeguards, anything Safehold does not record — the
location of users, complaints — with a note on what to write). Entries the form does not have but the operator needs
to fill the form's per-EU-user rows (the same count for all users, known and new material together) are marked
``in_form: false``. Machine-readable JSON, one document; see docs/transparency.md for the item → figure table.
"""

from __future__ import annotations

from safehold.cases.taxonomy import CSE_KINDS
from safehold.transparency.formats import ReportContext
from safehold.transparency.formats._tally import JsonReport, Tally, filled, operator, pick, ratio

REGULATION = "http://data.europa.eu/eli/reg/2021/1232/oj"
FORM = "http://data.europa.eu/eli/reg_impl/2024/2916/oj"

#: The kinds of sexual exploitation that are "solicitation of children" in the Regulation's sense (Article 2(3):
#: conduct under Article 6 of Directive 2011/93/EU, the solicitation of children for sexual purposes).
SOLICITATION_KINDS = ("grooming", "solicitation")
#: The form's three groups, and the detection technology (:data:`~._tally.TECHNOLOGIES`) each one's errors come from.
GROUPS = (("Known CSAM", "hash_matching"), ("New CSAM", "classifier"), ("Solicitation", "text"))

_EU_SPLIT = (
    "Safehold does not record where users are: split the all-users count (entry {ref}) into EU and non-EU users."
)
_NO_COMPLAINTS = (
    "Safehold does not record user complaints (appeals) or their outcomes yet: give them from your records."
)
_KNOWN_NEW = (
    "Safehold does not tell known from possibly new material on a report or an action; entry {ref} gives the count "
    "for all users, both together."
)


class Reg20211232Format(JsonReport):
    name = "reg2021-1232"
    title = "EU Regulation 2021/1232 annual report (Article 3(1)(g)(vii), standard form of Regulation 2024/2916)"

    def body(self, t: Tally, context: ReportContext) -> dict:
        items = [
            (1, "the type and volumes of data processed", _volumes(t, context)),
            (2, "the specific ground relied on for the processing pursuant to Regulation (EU) 2016/679", _ground()),
            (
                3,
                "the ground relied on for transfers of personal data outside the Union pursuant to Chapter V of "
                "Regulation (EU) 2016/679, where applicable",
                _transfers(t),
            ),
            (
                4,
                "the number of cases of online child sexual abuse identified, differentiating between online child "
                "sexual abuse material and solicitation of children",
                _cases(t),
            ),
            (
                5,
                "the number of cases in which a user has lodged a complaint with the internal redress mechanism or "
                "with a judicial authority and the outcome of such complaints",
                _complaints(t),
            ),
            (6, "the numbers and ratios of errors (false positives) of the different technologies used", _errors(t)),
            (7, "the measures applied to limit the error rate and the error rate achieved", _measures(t)),
            (
                8,
                "the retention policy and the data protection safeguards applied pursuant to Regulation (EU) 2016/679",
                _retention(),
            ),
            (
                9,
                "the names of the organisations acting in the public interest against child sexual abuse with which "
                "data has been shared pursuant to this Regulation",
                _organisations(t),
            ),
        ]
        return {
            "legal_basis": {
                "regulation": REGULATION,
                "article": "3(1)(g)(vii)",
                "standard_form": FORM,
                "deadline": "by 31 January each year, for the previous calendar year",
            },
            "items": [{"number": n, "title": title, "entries": entries} for n, title, entries in items],
        }


def _group(entries: list[dict], group: str) -> list[dict]:
    for e in entries:
        e["group"] = group
        e.setdefault("in_form", True)
    return entries


def _all_users(entry: dict) -> dict:
    entry["in_form"] = False
    entry["group"] = "Safehold (all users)"
    return entry


def _volumes(t: Tally, context: ReportContext) -> list[dict]:
    scans = pick("scans.volume", "scans")
    total = t.sum(scans)
    out = [
        filled(
            "1.1",
            "Specific number-independent interpersonal communications service concerned",
            context.service,
            derivation="context",
            note="the setting SAFEHOLD_TRANSPARENCY_SERVICE",
        ),
        operator(
            "1.2",
            "Metadata related to the users who are parts of the online exchange (yes/no; types, volume)",
            "List the user metadata your platform sends with content (user name, id, IP address, …) and its "
            "volume; Safehold keeps only what the platform sends with a detection.",
        ),
    ]
    if total == 0:
        out.append(
            operator(
                "1.3",
                "Content data of the online exchange (yes/no)",
                "No media was scanned by Safehold in the period: say whether content data was processed.",
            )
        )
    else:
        out.append(filled("1.3", "Content data of the online exchange (yes/no)", "yes", [scans], "yes_no"))
    rows = [("images", "1.4", "1.5", "S1.a"), ("videos", "1.6", "1.7", "S1.b"), ("other files", "1.8", "1.9", "S1.c")]
    for what, eu, non_eu, ref in rows:
        out.append(operator(eu, f"Number of {what} processed in relation to EU users", _EU_SPLIT.format(ref=ref)))
        out.append(
            operator(non_eu, f"Number of {what} processed in relation to non-EU users", _EU_SPLIT.format(ref=ref))
        )
    out += [
        operator(
            "1.10",
            "Number of bytes of text processed for detection of solicitation of children (EU users)",
            "Safehold does not count the bytes of text it scores: give them from your records.",
        ),
        operator(
            "1.11",
            "Number of bytes of text processed for detection of solicitation of children (non-EU users)",
            "Safehold does not count the bytes of text it scores: give them from your records.",
        ),
        operator(
            "1.12",
            "Other information of relevance to the types and volumes of data processed",
            "Optional: anything else about the data processed.",
        ),
    ]
    _group(out, "")
    images, videos = (
        pick("scans.volume", "scans", {"media": ["image"]}),
        pick("scans.volume", "scans", {"media": ["video"]}),
    )
    other = pick("scans.volume", "scans", exclude={"media": ["image", "video"]})
    out += [
        _all_users(t.entry("S1.a", "Images scanned against the hash banks, all users", images, "verdict")),
        _all_users(t.entry("S1.b", "Videos scanned against the hash banks, all users", videos, "verdict")),
        _all_users(t.entry("S1.c", "Other media and hashes scanned, all users (by media type)", other, "media")),
    ]
    return out


def _ground() -> list[dict]:
    return _group(
        [
            operator(
                "2.1",
                "Legal ground for the processing (GDPR Article 6)",
                "Name the GDPR ground; for Article 6(1)(c) or (e), the Union or national law relied on (Article 6(3)).",
            ),
        ],
        "",
    )


def _transfers(t: Tally) -> list[dict]:
    reports = pick("reports.by_authority", "reports")
    named = t.values(reports, "authority")
    hint = (
        f"Reports were filed in the period to: {', '.join(named)}. An authority outside the Union (NCMEC is in the "
        "United States) is a transfer: give its Chapter V ground."
        if named
        else "No report to an authority was filed in the period."
    )
    return _group(
        [
            operator(
                "3.1",
                "Transfers outside the Union: in which cases, for which purpose, on which Chapter V ground",
                hint,
                sources=[reports.record()],
            ),
        ],
        "",
    )


def _cases(t: Tally) -> list[dict]:
    out = []
    n = 0
    for group, what in (("Known CSAM", "known CSAM"), ("New CSAM", "possible new CSAM")):
        rows = [
            f"Number of reports concerning {what} in relation to EU users",
            f"Number of images of {what} reported in relation to EU users",
            f"Number of videos of {what} reported in relation to EU users",
            f"Number of other files of {what} reported in relation to EU users",
            f"Number of user accounts in the EU reported as sending at least one content item of {what}",
            f"Number of user accounts in the EU reported as receiving at least one content item of {what}",
        ]
        for field in rows:
            n += 1
            what_to_do = _KNOWN_NEW.format(ref="S4.a / S4.d") + " " + _EU_SPLIT.format(ref="S4.d")
            out += _group([operator(f"4.{n}", field, what_to_do)], group)
    for field in (
        "Number of reports of possible solicitation of children in relation to EU users",
        "Number of user accounts in the EU reported as possibly soliciting a child",
        "Number of user accounts reported as possibly soliciting a child in the EU",
    ):
        n += 1
        out += _group([operator(f"4.{n}", field, _EU_SPLIT.format(ref="S4.b"))], "Solicitation")
    csam = pick("decisions.by_outcome", "cases", {"decision": ["csam"]})
    solicitation = pick("decisions.by_outcome", "cases", {"decision": ["cse"], "classification": SOLICITATION_KINDS})
    other_cse = pick("decisions.by_outcome", "cases", {"decision": ["cse"]}, {"classification": SOLICITATION_KINDS})
    reports = pick("reports.by_authority", "reports")
    out += [
        _all_users(
            t.entry(
                "S4.a",
                "Cases of online child sexual abuse material identified (closed as CSAM, by industry category)",
                csam,
                "classification",
            )
        ),
        _all_users(
            t.entry(
                "S4.b",
                "Cases of solicitation of children identified (closed as grooming or solicitation)",
                solicitation,
                "classification",
            )
        ),
        _all_users(
            t.entry(
                "S4.c",
                "Other child sexual exploitation identified (not online child sexual abuse in the "
                f"Regulation's sense: {', '.join(k for k in CSE_KINDS if k not in SOLICITATION_KINDS)})",
                other_cse,
                "classification",
            )
        ),
        _all_users(
            t.entry("S4.d", "Reports filed to authorities and organisations (by authority)", reports, "authority")
        ),
    ]
    return out


def _complaints(t: Tally) -> list[dict]:
    out = []
    n = 0

    def block(group: str, subject: str, removed: str, unit: str, ref: str) -> None:
        nonlocal n
        fields = [(removed, _KNOWN_NEW.format(ref=ref))]
        for where in ("the internal mechanism", "the judicial authority"):
            fields += [
                (f"Number of complaints lodged with {where} against the {subject}", _NO_COMPLAINTS),
                (f"Reasons for the complaints lodged with {where} against the {subject} (optional)", _NO_COMPLAINTS),
                (f"Number of {unit} restored after review following a complaint lodged with {where}", _NO_COMPLAINTS),
                (
                    f"Average time to decide on a complaint lodged with {where} against the {subject} (optional)",
                    _NO_COMPLAINTS,
                ),
            ]
        for field, what in fields:
            n += 1
            out.extend(_group([operator(f"5.{n}", field, what)], group))

    for group, what in (("Known CSAM", "known CSAM"), ("New CSAM", "possible new CSAM")):
        block(
            group,
            f"removal of a content item for constituting {what}",
            f"Number of content items removed as constituting {what}",
            "content items",
            "S5.a",
        )
        block(
            group,
            f"suspension of a user account in the EU for having shared {what}",
            f"Number of user accounts in the EU suspended for having shared {what}",
            "user accounts",
            "S5.b",
        )
    block(
        "Solicitation",
        "suspension of a user account in the EU for having solicited a child",
        "Number of user accounts in the EU suspended for having solicited a child",
        "user accounts",
        "S5.b",
    )
    removed = pick("actions.by_kind", "actions", {"kind": ["remove_content", "block_content"]})
    suspended = pick("actions.by_kind", "actions", {"kind": ["suspend_account", "restrict_account"]})
    out += [
        _all_users(t.entry("S5.a", "Content items removed or blocked (all detections, by origin)", removed, "origin")),
        _all_users(
            t.entry("S5.b", "User accounts suspended or restricted (all detections, by kind)", suspended, "kind")
        ),
    ]
    return out


def _errors(t: Tally) -> list[dict]:
    by_tech = {e["technology"]: e for e in t.technology_errors()}
    out = []
    for i, (group, tech) in enumerate(GROUPS, start=1):
        e = by_tech[tech]
        reviewed, fp = e["picks"]
        unit = "cases decided by a reviewer (one case may hold several content items or accounts)"
        out += _group(
            [
                filled(
                    f"6.{i}.A",
                    f"A{i}: items automatically flagged as {group} and decided by a reviewer",
                    e["reviewed"],
                    [reviewed],
                    unit=unit,
                ),
                filled(
                    f"6.{i}.B", f"B{i}: of those, not {group} upon human review", e["false_positives"], [fp], unit=unit
                ),
                _rate(f"6.{i}.rate", f"Error rate B{i}/A{i} (%)", e),
                filled(
                    f"6.{i}.C",
                    f"C{i}: flagged items subject to human review",
                    e["reviewed"],
                    [reviewed],
                    unit=unit,
                    note="every case Safehold closes is closed by a reviewer's decision",
                ),
                operator(
                    f"6.{i}.other", "Other relevant findings", "Optional: findings about this technology's errors."
                ),
            ],
            group,
        )
    for e in by_tech.values():
        reviewed, _ = e["picks"]
        out.append(
            _all_users(
                filled(
                    f"S6.{e['technology']}",
                    f"False positives per detector: {e['title']}",
                    e["reviewed"],
                    [reviewed],
                    breakdown=e["detectors"],
                )
            )
        )
    return out


def _rate(entry_id: str, field: str, e: dict) -> dict:
    """A technology's false positives over the cases reviewers decided, in percent (None from suppressed or zero
    counts)."""
    r = ratio(e["false_positives"], e["reviewed"], digits=6)
    reviewed, fp = e["picks"]
    extra = {} if r is not None else {"note": "not computable from suppressed or zero counts"}
    return filled(
        entry_id, field, None if r is None else round(r * 100, 2), [fp, reviewed], "ratio", unit="percent", **extra
    )


def _measures(t: Tally) -> list[dict]:
    by_tech = {e["technology"]: e for e in t.technology_errors()}
    out = []
    for group, tech in GROUPS:
        indicator = "hashes" if tech == "hash_matching" else "AI classifiers"
        g = "".join(w[0] for w in group.split()).lower()
        fields = [
            (f"Measures to check the quality of existing {indicator}", ""),
            (f"Measures to vet {indicator} before they are added", ""),
            (f"Other measures to limit the error rate through actions on the {indicator}", ""),
            ("Implementation plan vetted by independent third party", ""),
            (
                "Other measures to limit the error rates through actions on the deployment of the detection technology",
                "",
            ),
            (
                f"Systematic human review of every item flagged as {group} prior to reporting",
                "Safehold drafts a report only from a case a reviewer closed as violating, and a finding on unknown "
                "material needs a second reviewer: say whether you also review every known match.",
            ),
            (f"Human review of sample items flagged as {group} prior to reporting", ""),
            ("Training policies of human reviewers", ""),
            (
                "Measures to ensure periodic quality control assessments of human reviewers and their verdicts",
                "Entry S7.second_review gives the second reviews of the period (a finding confirmed or overturned).",
            ),
            ("Measures to ensure feedback from NCMEC and/or other organisations acting in the public interest", ""),
            ("Measures to ensure feedback from law enforcement", ""),
            ("Measures to ensure feedback from the outcome of complaints (internal redress or judicial)", ""),
            ("Other measures to limit the error rate", ""),
        ]
        entries = [
            operator(f"7.{g}.{i}", field, hint or "Describe the measures (please specify).")
            for i, (field, hint) in enumerate(fields, start=1)
        ]
        e = by_tech[tech]
        entries.append(_rate(f"7.{g}.rate", "Error rate achieved (%) in the period, with the measures in place", e))
        out += _group(entries, group)
    second = pick("decisions.second_review", "decisions")
    out.append(_all_users(t.entry("S7.second_review", "Second reviews in the period (by outcome)", second, "outcome")))
    return out


def _retention() -> list[dict]:
    retention = [
        "Retention policy for content items identified as online CSA",
        "Retention policy for non-content data related to reports of online CSA, including after the account's "
        "deactivation",
        "Retention policy for data related to complaints and policy violations",
        "Other relevant retention policies",
    ]
    safeguards = [
        "Use of de-identification, pseudonymisation or anonymisation",
        "Use of industry-standard encryption for data in transit",
        "Data governance strategies and privacy programmes",
        "Procedures to review anonymisation and data governance strategies",
        "Security incident response plans",
        "Other technical and organisational security measures",
        "Internal redress mechanism (facts given to the user, procedures, channel, completion notice, follow-up to "
        "the recipients of reports)",
        "Right of access to their data for users whose accounts were suspended or deleted",
        "Other safeguards",
    ]
    what = "Give the length of each retention period (Article 3(1)(i) sets at most 12 months)."
    out = _group([operator(f"8.r{i}", f, what) for i, f in enumerate(retention, start=1)], "Retention policies")
    out += _group(
        [operator(f"8.s{i}", f, "Describe the safeguard (please specify).") for i, f in enumerate(safeguards, start=1)],
        "Data protection safeguards",
    )
    return out


def _organisations(t: Tally) -> list[dict]:
    reports = pick("reports.by_authority", "reports")
    shared = pick("exchanges.activity", "items", exclude={"direction": ["received"]})
    reported_to = t.values(reports, "authority")
    shared_with = [e for e in t.values(shared, "exchange") if e]
    ncmec = [n for n in reported_to + shared_with if n.lower().startswith("ncmec")]
    others = sorted({n for n in reported_to + shared_with if not n.lower().startswith("ncmec")})
    note = (
        "names as configured in Safehold: authorities reports were filed to and exchanges hashes or feedback were "
        "sent to; remove law-enforcement authorities, which are not organisations acting in the public interest"
    )
    return _group(
        [
            filled(
                "9.1",
                "National Centre for Missing and Exploited Children (NCMEC)",
                "yes" if ncmec else "no",
                [reports, shared],
                "yes_no",
                note=note,
            ),
            operator(
                "9.2",
                "EU Centre to prevent and combat child sexual abuse",
                "Only applicable once the EU Centre is established.",
            ),
            filled("9.3", "Other organisations (please specify)", others, [reports, shared], "names", note=note),
        ],
        "",
    )
