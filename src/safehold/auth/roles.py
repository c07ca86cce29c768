"""Roles and the permissions they grant. Routes and commands ask for a permission, never for a role.

Staff roles (admin, senior_reviewer, reviewer, auditor, legal) match the review console's; ``platform`` is the role
of the integrating platform's own services: they scan and send events, and see nothing else; ``peer`` is another
Safehold instance of a sharing consortium: it reads the banks shared with it and sends feedback and contributions
(see :mod:`safehold.sharing.peers`), nothing else. Only the admin role
manages users, policies, webhooks and settings; auditors read everything but never see media unblurred. ``legal``
is the team that files reports and answers law enforcement: it alone (with admins) may decrypt preserved
evidence (18 U.S.C. 2258B asks that access to it be kept to a minimum).
"""

from __future__ import annotations

from enum import StrEnum

from safehold.errors import SafeholdError


class Permission(StrEnum):
    SCAN = "scan"
    BANKS_READ = "banks.read"
    BANKS_WRITE = "banks.write"
    STATS_READ = "stats.read"
    APIKEYS_MANAGE = "apikeys.manage"
    AUDIT_READ = "audit.read"
    EVENTS_WRITE = "events.write"  # the platform sends content and account events
    CASES_READ = "cases.read"  # queues and case records (media stays blurred: revealing needs CASES_REVIEW)
    CASES_REVIEW = "cases.review"  # claim, reveal, decide, confirm another reviewer's decision
    CASES_SENIOR = "cases.senior"  # decide escalated cases, override a claim
    USERS_MANAGE = "users.manage"
    ACTIONS_MANAGE = "actions.manage"  # policies, webhooks, the dead-letter list
    SETTINGS_MANAGE = "settings.manage"  # wellness defaults, SLA hours
    REPORTS_READ = "reports.read"  # reports to authorities and their status
    REPORTS_WRITE = "reports.write"  # draft and edit reports
    REPORTS_SUBMIT = "reports.submit"  # file a report with the authority, retract one being filed
    EVIDENCE_READ = "evidence.read"  # the evidence register (hashes, dates, holds): no content
    EVIDENCE_ACCESS = "evidence.access"  # decrypt: open and export preserved evidence
    EVIDENCE_MANAGE = "evidence.manage"  # legal holds, purge
    SHARING_PEER = "sharing.peer"  # another Safehold instance: read what is shared with it, send feedback back
    SAFETY_CHECK = "safety.check"  # the platform asks the contact and media policies before it delivers
    AGES_READ = "ages.read"  # accounts' age signals and resolved bands
    AGES_WRITE = "ages.write"  # record an age signal (a declared birth date, an assurance result, a finding)
    TRANSPARENCY_READ = "transparency.read"  # the overview's figures and stored transparency reports
    TRANSPARENCY_WRITE = "transparency.write"  # generate and store a transparency report for a period
    METRICS_READ = "metrics.read"  # /metrics: Prometheus's scrape (aggregates only: counts, depths, timings)
    RULES_MANAGE = "rules.manage"  # operator CEL rules: write, approve, shadow, enable, backtest (admins only)


class Role(StrEnum):
    ADMIN = "admin"
    SENIOR_REVIEWER = "senior_reviewer"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"
    LEGAL = "legal"
    PLATFORM = "platform"
    PEER = "peer"


GRANTS: dict[Role, frozenset[Permission]] = {
    # Everything but acting as a peer instance: an admin's key is not another platform's.
    Role.ADMIN: frozenset(Permission) - {Permission.SHARING_PEER},
    Role.SENIOR_REVIEWER: frozenset(
        {
            Permission.SCAN,
            Permission.BANKS_READ,
            Permission.BANKS_WRITE,
            Permission.STATS_READ,
            Permission.CASES_READ,
            Permission.CASES_REVIEW,
            Permission.CASES_SENIOR,
            Permission.REPORTS_READ,
            Permission.REPORTS_WRITE,
            Permission.REPORTS_SUBMIT,
            Permission.EVIDENCE_READ,
            Permission.AGES_READ,
            Permission.AGES_WRITE,
            Permission.TRANSPARENCY_READ,
        }
    ),
    Role.REVIEWER: frozenset(
        {
            Permission.SCAN,
            Permission.BANKS_READ,
            Permission.STATS_READ,
            Permission.CASES_READ,
            Permission.CASES_REVIEW,
            Permission.REPORTS_READ,
            Permission.AGES_READ,
            Permission.AGES_WRITE,
        }
    ),
    Role.AUDITOR: frozenset(
        {
            Permission.BANKS_READ,
            Permission.STATS_READ,
            Permission.AUDIT_READ,
            Permission.CASES_READ,
            Permission.REPORTS_READ,
            Permission.EVIDENCE_READ,
            Permission.AGES_READ,
            Permission.TRANSPARENCY_READ,
            Permission.METRICS_READ,
        }
    ),
    Role.LEGAL: frozenset(
        {
            Permission.STATS_READ,
            Permission.AUDIT_READ,
            Permission.CASES_READ,
            Permission.REPORTS_READ,
            Permission.REPORTS_WRITE,
            Permission.REPORTS_SUBMIT,
            Permission.EVIDENCE_READ,
            Permission.EVIDENCE_ACCESS,
            Permission.EVIDENCE_MANAGE,
            Permission.TRANSPARENCY_READ,
            Permission.TRANSPARENCY_WRITE,
        }
    ),
    Role.PLATFORM: frozenset(
        {Permission.SCAN, Permission.EVENTS_WRITE, Permission.SAFETY_CHECK, Permission.AGES_READ, Permission.AGES_WRITE}
    ),
    Role.PEER: frozenset({Permission.SHARING_PEER}),
}


#: Roles a console user may have (``platform`` is for API keys of the platform's own services only).
STAFF_ROLES = (Role.ADMIN, Role.SENIOR_REVIEWER, Role.REVIEWER, Role.AUDITOR, Role.LEGAL)


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise SafeholdError("auth.unknown_role", f"Unknown role {value!r}; known roles: {known}.") from None


def demand(audit, role: str, label: str, permission: Permission, route: str, doing: str = "use this route") -> None:
    """Refuse (403 ``auth.forbidden``) unless ``role`` grants ``permission``. Every refusal goes through
    ``audit.denied`` (throttled per caller and permission), whichever surface asked: API, console or a
    finer check inside a route such as overriding a claim."""
    if not allows(role, permission):
        audit.denied(label, permission.value, route)
        raise SafeholdError("auth.forbidden", f"The role {role!r} may not {doing} ({permission.value}).", status=403)


def allows(role: str, permission: Permission) -> bool:
    try:
        return permission in GRANTS[Role(role)]
    except ValueError:
        return False
