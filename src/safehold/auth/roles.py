"""Roles and the permissions they grant. Routes and commands ask for a permission, never for a role.

Staff roles (admin, senior_reviewer, reviewer, auditor) match the review console's; ``platform`` is the role of
the integrating platform's own services: they scan and send events, and see nothing else.
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


class Role(StrEnum):
    ADMIN = "admin"
    SENIOR_REVIEWER = "senior_reviewer"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"
    PLATFORM = "platform"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.SENIOR_REVIEWER: frozenset(
        {Permission.SCAN, Permission.BANKS_READ, Permission.BANKS_WRITE, Permission.STATS_READ}
    ),
    Role.REVIEWER: frozenset({Permission.SCAN, Permission.BANKS_READ, Permission.STATS_READ}),
    Role.AUDITOR: frozenset({Permission.BANKS_READ, Permission.STATS_READ, Permission.AUDIT_READ}),
    Role.PLATFORM: frozenset({Permission.SCAN}),
}


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise SafeholdError("auth.unknown_role", f"Unknown role {value!r}; known roles: {known}.") from None


def allows(role: str, permission: Permission) -> bool:
    try:
        return permission in GRANTS[Role(role)]
    except ValueError:
        return False
