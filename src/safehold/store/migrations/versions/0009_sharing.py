"""sharing (Principle 10): exchanges and the hashes of unknown types they fetched, feedback and contributions,
peers, match statistics and the entry quarantine, and the seen hashes re-matched

The one migration of issue [9]: every table and column [9] needs is added here.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
#: The app_settings key of the feedback cursor (safehold.sharing.feedback.CURSOR_KEY; a migration imports no app code).
FEEDBACK_CURSOR = "sharing.feedback_cursor"
#: The app_settings key of the re-match cursor (safehold.sharing.rematch).
REMATCH_CURSOR = "sharing.rematch"


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("credentials", sa.Text(), nullable=True),
        sa.Column("every_seconds", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.JSON(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", _TS, nullable=True),
        sa.Column("next_fetch_at", _TS, nullable=True),
        sa.Column("last_fetch_at", _TS, nullable=True),
        sa.Column("last_success_at", _TS, nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", _TS, nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("fetched_total", sa.BigInteger(), nullable=False),
        sa.Column("added_total", sa.BigInteger(), nullable=False),
        sa.Column("removed_total", sa.BigInteger(), nullable=False),
        sa.Column("malformed_total", sa.BigInteger(), nullable=False),
        sa.Column("unknown_types", sa.JSON(), nullable=False),
        sa.Column("last_round", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["bank_id"], ["banks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index("ix_exchanges_bank_id", "exchanges", ["bank_id"])
    op.create_table(
        "exchange_unknown_signals",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("exchange_id", sa.Integer(), nullable=False),
        sa.Column("signal_type", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["exchange_id"], ["exchanges.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("exchange_id", "signal_type", "fingerprint", name="uq_unknown_signal"),
    )
    op.create_index("ix_exchange_unknown_signals_exchange_id", "exchange_unknown_signals", ["exchange_id"])
    op.create_table(
        "entry_match_counts",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("hour", sa.String(length=13), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_at", _TS, nullable=False),
        sa.Column("last_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hour", "entry_id", name="uq_entry_match_count"),
    )
    op.create_index("ix_entry_match_counts_entry_id", "entry_match_counts", ["entry_id"])
    with op.batch_alter_table("bank_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quarantined_at", _TS, nullable=True))
        batch_op.add_column(sa.Column("quarantine_reason", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("quarantine_released_at", _TS, nullable=True))

    op.create_table(
        "exchange_feedback",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("exchange_id", sa.Integer(), nullable=True),
        sa.Column("exchange_name", sa.String(length=64), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("signal_type", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("case_id", _BIG_ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", _TS, nullable=False),
        sa.Column("lease_until", _TS, nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["exchange_id"], ["exchanges.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("exchange_id", "entry_id", "verdict", name="uq_feedback_opinion"),
    )
    op.create_index("ix_exchange_feedback_exchange_id", "exchange_feedback", ["exchange_id"])
    op.create_index("ix_exchange_feedback_entry_id", "exchange_feedback", ["entry_id"])
    op.create_index("ix_feedback_due", "exchange_feedback", ["status", "next_at"])
    op.create_table(
        "exchange_contributions",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("case_id", _BIG_ID, nullable=False),
        sa.Column("exchange_id", sa.Integer(), nullable=True),
        sa.Column("exchange_name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hashes", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["exchange_id"], ["exchanges.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "exchange_id", name="uq_contribution"),
    )
    op.create_index("ix_exchange_contributions_case_id", "exchange_contributions", ["case_id"])
    op.create_index("ix_exchange_contributions_exchange_id", "exchange_contributions", ["exchange_id"])
    # Feedback is queued from case decisions recorded after this point (safehold.sharing.feedback): decisions
    # taken before sharing existed send nothing.
    head = op.get_bind().scalar(sa.text("SELECT max(seq) FROM audit_log")) or 0
    settings = sa.table(
        "app_settings", sa.column("key", sa.String), sa.column("value", sa.JSON), sa.column("updated_at", _TS)
    )
    op.bulk_insert(settings, [{"key": FEEDBACK_CURSOR, "value": {"seq": head}, "updated_at": dt.datetime.now(dt.UTC)}])
    with op.batch_alter_table("bank_entries") as batch_op:
        batch_op.add_column(sa.Column("withdrawn", sa.Boolean(), server_default=sa.false(), nullable=False))
    # A source's deletion withdraws by external id: without this, each tombstone scans the whole table.
    op.create_index("ix_entries_external", "bank_entries", ["bank_id", "external_id"])
    # Peer exchange: the change log says which bank a change is in, so a peer's feed reads its shared banks alone.
    op.add_column("index_changes", sa.Column("bank_id", sa.Integer(), nullable=True))
    op.create_index("ix_index_changes_bank_seq", "index_changes", ["bank_id", "seq"])
    op.create_table(
        "peers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=32), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=True),
        sa.Column("contributions_bank_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["contributions_bank_id"], ["banks.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("key_prefix"),
    )
    op.create_table(
        "peer_shares",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("peer_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["bank_id"], ["banks.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["peer_id"], ["peers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bank_id", "peer_id", name="uq_peer_share"),
    )
    op.create_index("ix_peer_shares_bank_id", "peer_shares", ["bank_id"])
    op.create_table(
        "peer_feedback",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("peer_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", _BIG_ID, nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["peer_id"], ["peers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["entry_id"], ["bank_entries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("peer_id", "entry_id", name="uq_peer_feedback"),
    )
    op.create_index("ix_peer_feedback_entry_id", "peer_feedback", ["entry_id"])
    op.create_table(
        "seen_hashes",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("signal_type", sa.String(length=32), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("content_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=True),
        sa.Column("seen_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_seen_hashes_seen_at", "seen_hashes", ["seen_at"])
    op.create_table(
        "bank_entry_publishers",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("entry_id", _BIG_ID, nullable=False),
        sa.Column("publisher", sa.String(length=80), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["bank_entries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entry_id", "publisher", "external_id", name="uq_entry_publisher"),
    )
    op.create_index("ix_entry_publishers_lookup", "bank_entry_publishers", ["publisher", "external_id"])
    # Entries imported with a source before sharing: that source publishes them (no exchange exists yet).
    op.execute(
        "INSERT INTO bank_entry_publishers (entry_id, publisher, external_id) "
        "SELECT id, 'source:' || source, COALESCE(external_id, '') FROM bank_entries WHERE source IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("bank_entry_publishers")
    op.drop_table("seen_hashes")
    op.drop_table("peer_feedback")
    op.drop_table("peer_shares")
    op.drop_table("peers")
    op.drop_index("ix_index_changes_bank_seq", table_name="index_changes")
    with op.batch_alter_table("index_changes") as batch:
        batch.drop_column("bank_id")
    op.drop_index("ix_entries_external", table_name="bank_entries")
    with op.batch_alter_table("bank_entries") as batch_op:
        batch_op.drop_column("withdrawn")
    for key in (FEEDBACK_CURSOR, REMATCH_CURSOR):
        op.execute(sa.text("DELETE FROM app_settings WHERE key = :key").bindparams(key=key))
    op.drop_table("exchange_contributions")
    op.drop_table("exchange_feedback")
    with op.batch_alter_table("bank_entries", schema=None) as batch_op:
        batch_op.drop_column("quarantine_released_at")
        batch_op.drop_column("quarantine_reason")
        batch_op.drop_column("quarantined_at")
    op.drop_table("entry_match_counts")
    op.drop_table("exchange_unknown_signals")
    op.drop_table("exchanges")
