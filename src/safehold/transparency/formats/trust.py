"""The Tech Coalition's TRUST framework (Voluntary Framework for Industry Transparency, 2022): a CSEA transparency
report in the framework's three sections — policies and practices, processes and systems, outcomes.

Outcomes are almost all figures; processes and systems are what Safehold runs (the banks and exchanges it matches
against, its classifiers, grooming and solicitation detection, search deterrence, human review with second review
and the reviewers' wellness caps), named and counted from the figures; policies and practices are the operator's
own text, left as ``operator_to_complete`` with what to write. Every filled entry names the figure rows it comes from
(``sources``). Machine-readable JSON, one document; see docs/transparency.md.
"""

from __future__ import annotations

from safehold.transparency.formats import ReportContext
from safehold.transparency.formats._tally import JsonReport, Tally, filled, operator, pick, ratio

FRAMEWORK = "https://www.technologycoalition.org/newsroom/tech-coalition-launches-trust-voluntary-framework-for-industry-transparency"

#: Detection sources that are not the platform's own systems finding the abuse (``detections.by_source``).
REACTIVE_SOURCES = ("user_report",)


class TrustFormat(JsonReport):
    name = "trust"
    title = "Tech Coalition TRUST framework (policies and practices, processes and systems, outcomes)"

    def body(self, t: Tally, context: ReportContext) -> dict:
        sections = [
            ("policies_and_practices", "Policies and practices", _policies(t)),
            ("processes_and_systems", "Processes and systems", _processes(t)),
            ("outcomes", "Outcomes", _outcomes(t)),
        ]
        return {
            "framework": {
                "name": "TRUST: Voluntary Framework for Industry Transparency",
                "published": "2022-06-02",
                "by": "Tech Coalition",
                "source": FRAMEWORK,
            },
            "sections": [{"key": k, "title": title, "entries": entries} for k, title, entries in sections],
        }


def _policies(t: Tally) -> list[dict]:
    actions = pick("actions.by_kind", "actions")
    reports = pick("reports.by_authority", "reports")
    return [
        operator(
            "P1",
            "Policies prohibiting child sexual exploitation and abuse (CSEA) and how CSEA is defined",
            "Link and summarise your terms and community guidelines on CSEA: the content and conduct they "
            "prohibit (CSAM, grooming, sextortion, solicitation) and who they apply to.",
        ),
        t.names(
            "P2",
            "Enforcement: the kinds of action taken in the period",
            actions,
            "kind",
            operator="Describe when each action is taken and for how long (e.g. suspension, ban).",
        ),
        t.names(
            "P3",
            "Reporting to authorities: the authorities and organisations reported to in the period",
            reports,
            "authority",
            operator="Describe your reporting obligations and when a report is made.",
        ),
        operator(
            "P4",
            "How users and others can report CSEA to the service",
            "Describe the reporting options (in-product, trusted flaggers, hotlines); entry O2 counts what they "
            "brought in (source user_report).",
        ),
        operator(
            "P5",
            "Appeals and user remedies",
            "Describe how users appeal an action; Safehold does not record appeals yet.",
        ),
        operator(
            "P6",
            "Safety by design and prevention policies",
            "Describe the protections for young users and "
            "prevention measures (deterrence messages, age assurance, default settings).",
        ),
    ]


def _processes(t: Tally) -> list[dict]:
    banks = pick("detections.by_bank", "matches")
    exchanges = pick("exchanges.activity", "items")
    classifiers = pick("detections.by_classifier", "hits")
    text = pick("detections.by_source", "signals", {"source": ["grooming", "solicitation"]})
    live = pick("detections.by_source", "signals", {"source": ["livestream"]})
    reports = pick("detections.by_source", "signals", {"source": REACTIVE_SOURCES})
    search = pick("search.interventions", "count")
    decided = pick("decisions.time_to_decision", "decided")
    second = pick("decisions.second_review", "decisions")
    exposure = pick("reviewers.exposure", "reviewer_days")
    reveals = pick("reviewers.exposure", "reveals")
    fed = sorted({e for e in t.values(banks, "exchange") + t.values(exchanges, "exchange") if e})
    return [
        t.names(
            "S1",
            "Hash matching of known material: the hash banks matched against (matches per bank)",
            banks,
            "bank",
            breakdown=t.breakdown(banks, "bank"),
        ),
        filled(
            "S2",
            "Hash and signal exchanges: the exchanges entries came from or were shared with",
            fed,
            [banks, exchanges],
            "names",
            breakdown=t.rows(exchanges),
        ),
        t.names(
            "S3",
            "Classifiers of unknown material in use (hits per classifier)",
            classifiers,
            "classifier",
            breakdown=t.breakdown(classifiers, "classifier"),
            note="a classifier's hit always goes to human review before any report",
        ),
        t.entry("S4", "Grooming and solicitation detection in text (signals)", text, "source"),
        t.entry("S5", "Livestream detection (signals)", live),
        t.entry("S6", "Search and autocomplete deterrence (interventions)", search, "kind"),
        t.entry("S7", "Reports from users and trusted flaggers (signals)", reports),
        t.entry(
            "S8",
            "Human review: cases first decided in the period (time to decision per priority band)",
            decided,
            breakdown=t.rows(decided),
        ),
        t.entry("S9", "Second review of findings on unknown material (by outcome)", second, "outcome"),
        t.entry(
            "S10",
            "Reviewer wellness: reviewer-days by share of the daily exposure cap used",
            exposure,
            "share_of_cap",
            reveals=t.sum(reveals),
            note="no reviewer is named; reveals are the media reviewers chose to unblur",
        ),
        operator(
            "S11",
            "Review teams, training and wellness support",
            "Describe who reviews (in-house, vendors), their training and the wellness support beside the caps.",
        ),
        operator(
            "S12",
            "Collaboration with industry, NGOs and law enforcement",
            "Describe partnerships beyond the exchanges of entry S2 (e.g. Lantern, hotlines, research).",
        ),
    ]


def _outcomes(t: Tally) -> list[dict]:
    scans = pick("scans.volume", "scans")
    signals = pick("detections.by_source", "signals")
    proactive = pick("detections.by_source", "signals", exclude={"source": REACTIVE_SOURCES})
    opened, closed = pick("cases.by_source", "opened"), pick("cases.by_source", "closed")
    csam = pick("decisions.by_outcome", "cases", {"decision": ["csam"]})
    cse = pick("decisions.by_outcome", "cases", {"decision": ["cse"]})
    clear = pick("decisions.by_outcome", "cases", {"decision": ["not_violating"]})
    content = pick("actions.by_kind", "actions", {"kind": ["remove_content", "block_content"]})
    accounts = pick("actions.by_kind", "actions", {"kind": ["suspend_account", "restrict_account"]})
    actions = pick("actions.by_kind", "actions")
    ncmec = pick("reports.by_authority", "reports", {"authority": ["ncmec"]})
    reports = pick("reports.by_authority", "reports")
    p, s = t.sum(proactive), t.sum(signals)
    out = [
        t.entry("O1", "Media scanned against the hash banks (by media)", scans, "media"),
        filled("O2", "Detections by method (signals)", s, [signals], breakdown=t.breakdown(signals, "source")),
        filled(
            "O3",
            "Share of detections found proactively (not reported by users)",
            ratio(p, s),
            [proactive, signals],
            "ratio",
            unit="fraction",
            **({} if ratio(p, s) is not None else {"note": "not computable"}),
        ),
        t.entry("O4", "Cases opened", opened, "source"),
        t.entry("O5", "Cases closed", closed, "source"),
        t.entry("O6", "Cases closed as CSAM (by industry category A1–B2)", csam, "classification"),
        t.entry("O7", "Cases closed as other sexual exploitation (by kind)", cse, "classification"),
        t.entry("O8", "Cases closed as not violating", clear),
        t.entry("O9", "Content removed or blocked (automatic, after a decision, manual)", content, "origin"),
        t.entry("O10", "Accounts suspended or restricted (by kind)", accounts, "kind"),
        t.entry("O11", "All actions by origin (automatic, after a decision, manual)", actions, "origin"),
        t.entry("O12", "Reports to NCMEC's CyberTipline (by status)", ncmec, "status"),
        t.entry("O13", "Reports to all authorities (by authority)", reports, "authority"),
    ]
    for e in t.technology_errors():
        reviewed, fp = e["picks"]
        r = e["rate"]
        out.append(
            filled(
                f"O14.{e['technology']}",
                f"Error rate of {e['title']}: cases reviewers found not violating / cases they decided",
                r,
                [fp, reviewed],
                "ratio",
                unit="fraction",
                reviewed=e["reviewed"],
                false_positives=e["false_positives"],
                breakdown=e["detectors"],
                **({} if r is not None else {"note": "not computable from suppressed or zero counts"}),
            )
        )
    out.append(
        operator(
            "O15",
            "Appeals and reinstatements",
            "Give the appeals received and the content or accounts reinstated; Safehold does not record appeals yet.",
        )
    )
    return out
