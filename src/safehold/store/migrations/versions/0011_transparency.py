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


def upgrade() -> None:
    # --- daily facts and their refresh state (safehold.transparency.engine)

    # --- timestamp indexes the facts of a day are read through (safehold.transparency.engine)

    # --- stored transparency reports (safehold.transparency.service)
    pass


def downgrade() -> None:
    # --- stored transparency reports (safehold.transparency.service)

    # --- timestamp indexes (safehold.transparency.engine)

    # --- daily facts (safehold.transparency.engine)
    pass
