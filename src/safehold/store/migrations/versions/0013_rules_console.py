"""rules review findings: the person behind a rule version, pending named-list changes, shadow hits' cases

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("rule_versions") as t:
        t.add_column(sa.Column("author", sa.String(128), nullable=True))
        t.add_column(sa.Column("approver", sa.String(128), nullable=True))
    with op.batch_alter_table("rule_lists") as t:
        t.add_column(sa.Column("pending_kind", sa.String(16), nullable=True))
        t.add_column(sa.Column("pending_items", sa.JSON(), nullable=True))
        t.add_column(sa.Column("pending_by", sa.String(128), nullable=True))
        t.add_column(sa.Column("pending_author", sa.String(128), nullable=True))
        t.add_column(sa.Column("pending_at", _TS, nullable=True))
    with op.batch_alter_table("rule_shadow_hits") as t:
        t.add_column(sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rule_shadow_hits") as t:
        t.drop_column("case_id")
    with op.batch_alter_table("rule_lists") as t:
        for c in ("pending_at", "pending_author", "pending_by", "pending_items", "pending_kind"):
            t.drop_column(c)
    with op.batch_alter_table("rule_versions") as t:
        t.drop_column("approver")
        t.drop_column("author")
