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
        sa.Column("changes_at", _TS, nullable=True),
        sa.Column("sender_band", sa.String(length=8), server_default="unknown", nullable=False),
        sa.Column("age_conflict", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_index("ix_account_ages_resolved_at", "account_ages", ["resolved_at"])
    op.create_index("ix_account_ages_band", "account_ages", ["band"])
    op.create_index("ix_account_ages_changes_at", "account_ages", ["changes_at"])

    # --- classifier thresholds and labelled outcomes
    op.create_table(
        "classifier_policies",
        sa.Column("classifier", sa.String(length=64), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("needs_age_signal", sa.Boolean(), nullable=True),
        sa.Column("alone", sa.String(length=8), nullable=True),
        sa.Column("auto_action", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("updated_by", sa.String(length=128), nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("classifier"),
    )
    op.create_table(
        "classifier_outcomes",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("signal_id", _BIG_ID, nullable=False),
        sa.Column("case_id", _BIG_ID, nullable=False),
        sa.Column("classifier", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["signal_id"], ["case_signals.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("signal_id"),
    )
    op.create_index("ix_classifier_outcomes_case_id", "classifier_outcomes", ["case_id"])
    op.create_index("ix_classifier_outcomes_score", "classifier_outcomes", ["classifier", "label", "score"])

    # --- external classification services and their job queue
    op.create_table(
        "screening_services",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("credentials", sa.Text(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("next_call_at", _TS, nullable=True),
        sa.Column("sent_total", sa.BigInteger(), nullable=False),
        sa.Column("hits_total", sa.BigInteger(), nullable=False),
        sa.Column("failed_total", sa.BigInteger(), nullable=False),
        sa.Column("skipped_total", sa.BigInteger(), nullable=False),
        sa.Column("last_ok_at", _TS, nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", _TS, nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "screening_jobs",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("service_id", _BIG_ID, nullable=False),
        sa.Column("content_id", sa.String(length=128), nullable=True),
        sa.Column("account_id", sa.String(length=128), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("pdq", sa.String(length=64), nullable=True),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("age", sa.JSON(), nullable=True),
        sa.Column("media", sa.LargeBinary(), nullable=True),
        sa.Column("media_bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", _TS, nullable=False),
        sa.Column("lease_until", _TS, nullable=True),
        sa.Column("lease_owner", sa.String(length=36), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("case_id", _BIG_ID, nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["service_id"], ["screening_services.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_screening_jobs_service_id", "screening_jobs", ["service_id"])
    op.create_index("ix_screening_jobs_due", "screening_jobs", ["status", "next_at"])
    op.create_index("ix_screening_jobs_md5", "screening_jobs", ["md5"])

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
    op.create_table(
        "safety_prompts",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=35), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("help", sa.JSON(), nullable=True),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("key", "locale"),
    )


def downgrade() -> None:
    # --- safety prompts
    op.drop_table("safety_prompts")

    # --- contact policy
    op.drop_table("contact_policies")

    # --- external classification services and their job queue
    op.drop_table("screening_jobs")
    op.drop_table("screening_services")

    # --- classifier thresholds and labelled outcomes
    op.drop_table("classifier_outcomes")
    op.drop_table("classifier_policies")

    # --- account age signals and resolved bands
    op.drop_table("account_ages")
    op.drop_table("account_age_signals")
