"""Who publishes an entry decides when a deletion withdraws it: a hash still listed under another id, by another
exchange, or by an import source that happens to share the exchange's name stays on; feedback goes to the exchanges
that publish the entry; changed settings restart the exchange from the beginning."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from safehold.banks.formats import EntryRecord
from safehold.sharing import registry
from safehold.sharing.base import Exchange, FetchBatch, Settings, tombstone

#: What each script's rounds yield, one batch per step; a round goes on from its checkpoint's step.
SCRIPTS: dict[str, list[list[EntryRecord]]] = {}


class ScriptSettings(Settings):
    script: str


class Steps(Exchange):
    name = "steps"
    title = "Scripted steps"
    settings_model = ScriptSettings

    def fetch(self, checkpoint: dict | None) -> Iterator[FetchBatch]:
        start = (checkpoint or {}).get("step", 0)
        steps = SCRIPTS[self.settings.script][start:] or [[]]
        for k, records in enumerate(steps):
            yield FetchBatch(list(records), {"step": start + k + 1}, done=k == len(steps) - 1)


def md5(i: int) -> str:
    return hashlib.md5(f"published {i}".encode()).hexdigest()


def enabled(svc, bank: str = "shared") -> dict[str, bool]:
    return {e["value"]: e["enabled"] for e in svc.banks.entries(bank, limit=1000)}


@pytest.fixture
def steps(svc, monkeypatch):
    monkeypatch.setitem(registry.BUILTIN, "steps", (__name__, "Steps"))
    SCRIPTS.clear()
    svc.banks.create("shared")

    def create(name: str, script: str, *records: list[EntryRecord]) -> None:
        SCRIPTS[script] = list(records)
        svc.exchanges.create(name, "steps", "shared", {"script": script})

    return create


def test_a_hash_listed_under_two_ids_stays_until_both_are_deleted(svc, steps):
    both = [EntryRecord("md5", md5(0), external_id="A"), EntryRecord("md5", md5(0), external_id="B")]
    steps("x", "x", both, [tombstone("A")])
    svc.exchanges.fetch_once("x")
    assert enabled(svc) == {md5(0): True}
    SCRIPTS["x"].append([tombstone("B")])
    assert svc.exchanges.fetch_once("x")["removed"] == 1
    assert enabled(svc) == {md5(0): False}
    SCRIPTS["x"].append([EntryRecord("md5", md5(0), external_id="C")])  # published again: back
    assert svc.exchanges.fetch_once("x")["added"] == 1
    assert enabled(svc) == {md5(0): True}


def test_two_exchanges_feeding_one_bank(svc, steps):
    steps("x", "x", [EntryRecord("md5", md5(0), external_id="A"), EntryRecord("md5", md5(1), external_id="A1")])
    steps("y", "y", [EntryRecord("md5", md5(0), external_id="Z")])
    svc.exchanges.fetch_once("x")
    svc.exchanges.fetch_once("y")
    SCRIPTS["x"].append([tombstone("A"), tombstone("A1")])
    assert svc.exchanges.fetch_once("x")["removed"] == 1  # md5(1) only: y still publishes md5(0)
    assert enabled(svc) == {md5(0): True, md5(1): False}
    SCRIPTS["y"].append([tombstone("Z")])
    assert svc.exchanges.fetch_once("y")["removed"] == 1
    assert enabled(svc) == {md5(0): False, md5(1): False}


def test_an_exchange_never_withdraws_what_an_import_of_the_same_name_added(svc, steps, tmp_path):
    """The reviewer's case: hashes imported with ``--source ncmec``, then an exchange named ``ncmec``."""
    svc.banks.add_hash("shared", "md5", md5(0), source="ncmec", external_id="N-1")
    svc.settings.feeds_dir.mkdir(parents=True, exist_ok=True)
    (svc.settings.feeds_dir / "list.csv").write_text(f"signal_type,value,external_id\nmd5,{md5(1)},N-2\n")
    svc.exchanges.create("ncmec", "feed", "shared", {"url": "list.csv"})
    svc.exchanges.fetch_once("ncmec")  # a whole list without md5(0): the manual entry is not its to withdraw
    assert enabled(svc) == {md5(0): True, md5(1): True}
    svc.exchanges.delete("ncmec")
    steps("ncmec", "n", [tombstone("N-1")])  # a deletion under the manual entry's id
    assert svc.exchanges.fetch_once("ncmec")["removed"] == 0
    assert enabled(svc)[md5(0)] is True


def test_changed_settings_restart_from_the_beginning(svc, steps):
    steps("x", "old", [EntryRecord("md5", md5(0))], [EntryRecord("md5", md5(1))])
    svc.exchanges.fetch_once("x")
    SCRIPTS["new"] = [[EntryRecord("md5", md5(2))], [EntryRecord("md5", md5(3))]]
    svc.exchanges.update("x", settings={"script": "old"})  # the same settings: the checkpoint stays
    assert svc.exchanges.fetch_once("x")["fetched"] == 0
    svc.exchanges.update("x", settings={"script": "new"})
    assert svc.exchanges.fetch_once("x")["added"] == 2  # read from its first step, not from step 3
    assert set(enabled(svc)) == {md5(i) for i in range(4)}
