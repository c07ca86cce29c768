"""live streams: which API process holds each registered stream

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "live_streams",
        sa.Column("stream_id", sa.String(120), primary_key=True),
        sa.Column("process", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("registered_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("live_streams")
