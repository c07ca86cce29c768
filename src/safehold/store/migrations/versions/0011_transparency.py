"""transparency (Principle 11): daily facts rolled up for the overview and the reports, the stored reports, and
the indexes that let the facts of a day be re-read without scanning every case

The one migration of issue [11]: every table, column and index [11] needs is added here.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op  # noqa: F401 (the sections below fill in)

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)

#: The timestamp indexes the transparency facts of one day are read through (name, table, column).
_INDEXES = (
    ("ix_cases_opened_at", "cases", "opened_at"),
    ("ix_cases_due_at", "cases", "due_at"),
    ("ix_case_decisions_at", "case_decisions", "at"),
    ("ix_case_signals_at", "case_signals", "at"),
    ("ix_case_actions_created_at", "case_actions", "created_at"),
    ("ix_reports_created_at", "reports", "created_at"),
    ("ix_cases_updated_at", "cases", "updated_at"),
)


def upgrade() -> None:
    # --- daily facts and their refresh state (safehold.transparency.engine)
    op.create_table(
        "transparency_facts",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("dims", sa.String(1024), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.UniqueConstraint("day", "family", "dims", name="uq_transparency_fact"),
    )
    op.create_index(
        "ix_transparency_facts_family_day", "transparency_facts", ["family", "day", "dims", "value", "total"]
    )
    op.create_table(
        "transparency_refresh",
        sa.Column("family", sa.String(64), primary_key=True),
        sa.Column("refreshed_at", _TS, nullable=True),
    )

    # --- timestamp indexes the facts of a day are read through (safehold.transparency.engine)
    for name, table, column in _INDEXES:
        op.create_index(name, table, [column])
    op.create_index("ix_cases_live", "cases", ["status", "due_at", "band", "source", "queue"])
    op.create_index("ix_cases_closed_at", "cases", ["closed_at", "opened_at", "band", "source", "queue"])

    # --- stored transparency reports (safehold.transparency.service)
    op.create_table(
        "transparency_reports",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("period_name", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("figures_digest", sa.String(length=64), nullable=False),
        sa.Column("definitions_version", sa.String(length=16), nullable=False),
        sa.Column("as_of", _TS, nullable=False),
        sa.Column("partial", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("min_cell", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("content_bytes", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("extension", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_transparency_reports_created_at", "transparency_reports", ["created_at"])


def downgrade() -> None:
    # --- stored transparency reports (safehold.transparency.service)
    op.drop_index("ix_transparency_reports_created_at", table_name="transparency_reports")
    op.drop_table("transparency_reports")

    # --- timestamp indexes (safehold.transparency.engine)
    op.drop_index("ix_cases_closed_at", table_name="cases")
    op.drop_index("ix_cases_live", table_name="cases")
    for name, table, _column in reversed(_INDEXES):
        op.drop_index(name, table_name=table)

    # --- daily facts (safehold.transparency.engine)
    op.drop_table("transparency_refresh")
    op.drop_index("ix_transparency_facts_family_day", table_name="transparency_facts")
    op.drop_table("transparency_facts")
    pass
