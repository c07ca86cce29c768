"""user and trusted-flagger reports (Principle 8), appeals, the report form's public tokens

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "user_reports",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("platform", sa.String(128), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("content_id", sa.String(128), nullable=True),
        sa.Column("account_id", sa.String(128), nullable=True),
        sa.Column("reporter_id", sa.String(128), nullable=False),
        sa.Column("trusted", sa.Boolean(), nullable=False),
        sa.Column("reporter_band", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(128), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("reliability", sa.JSON(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("case_id", _BIG_ID, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("decided_at", _TS, nullable=True),
    )
    op.create_index("ix_user_reports_reporter", "user_reports", ["platform", "reporter_id", "created_at"])
    op.create_index("ix_user_reports_account", "user_reports", ["platform", "account_id", "created_at"])
    op.create_index("ix_user_reports_case", "user_reports", ["case_id"])
    op.create_table(
        "appeals",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("platform", sa.String(128), nullable=False),
        sa.Column("case_id", _BIG_ID, nullable=False),
        sa.Column("account_id", sa.String(128), nullable=True),
        sa.Column("reference", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("reviewed_at", _TS, nullable=True),
    )
    op.create_index("ix_appeals_case", "appeals", ["case_id"])
    op.create_index("ix_appeals_status", "appeals", ["status", "created_at"])
    op.create_table(
        "report_form_tokens",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("platform", sa.String(128), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.UniqueConstraint("token_sha256"),
    )


def downgrade() -> None:
    op.drop_table("report_form_tokens")
    op.drop_index("ix_appeals_status", table_name="appeals")
    op.drop_index("ix_appeals_case", table_name="appeals")
    op.drop_table("appeals")
    op.drop_index("ix_user_reports_case", table_name="user_reports")
    op.drop_index("ix_user_reports_account", table_name="user_reports")
    op.drop_index("ix_user_reports_reporter", table_name="user_reports")
    op.drop_table("user_reports")
