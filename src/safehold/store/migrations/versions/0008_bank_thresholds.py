"""bank thresholds per signal type: banks.thresholds (JSON) replaces banks.pdq_threshold

Each bank's PDQ threshold is kept as ``{"pdq": n}``; a type a bank sets nothing for uses the type's default.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_banks = sa.table(
    "banks",
    sa.column("id", sa.Integer()),
    sa.column("pdq_threshold", sa.Integer()),
    sa.column("thresholds", sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table("banks") as b:
        b.add_column(sa.Column("thresholds", sa.JSON(), nullable=False, server_default="{}"))
    conn = op.get_bind()
    for bank_id, pdq in conn.execute(sa.select(_banks.c.id, _banks.c.pdq_threshold)).all():
        conn.execute(sa.update(_banks).where(_banks.c.id == bank_id).values(thresholds={"pdq": pdq}))
    with op.batch_alter_table("banks") as b:
        b.alter_column("thresholds", server_default=None, existing_type=sa.JSON(), existing_nullable=False)
        b.drop_column("pdq_threshold")


def downgrade() -> None:
    with op.batch_alter_table("banks") as b:
        b.add_column(sa.Column("pdq_threshold", sa.Integer(), nullable=False, server_default="31"))
    conn = op.get_bind()
    for bank_id, thresholds in conn.execute(sa.select(_banks.c.id, _banks.c.thresholds)).all():
        pdq = (thresholds or {}).get("pdq", 31)
        conn.execute(sa.update(_banks).where(_banks.c.id == bank_id).values(pdq_threshold=pdq))
    with op.batch_alter_table("banks") as b:
        b.alter_column("pdq_threshold", server_default=None, existing_type=sa.Integer(), existing_nullable=False)
        b.drop_column("thresholds")
