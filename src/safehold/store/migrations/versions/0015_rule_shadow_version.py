"""a live rule's shadow version: a changed version runs in shadow beside the live one

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rules") as t:
        t.add_column(sa.Column("shadow_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rules") as t:
        t.drop_column("shadow_version")
