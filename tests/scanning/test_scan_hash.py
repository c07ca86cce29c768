"""A raw hash scanned under an alias of its signal type (``photodna``, the name NCMEC's lists use, for the
PhotoDNA-shaped test plug-in) matches exactly as under the type's own name."""

from __future__ import annotations

import random
import threading

from tests.media import jpeg, variant
from tests.signals.test_plugin_photodna_like import b64, installed, pdna  # noqa: F401  (installed: autouse)


def test_a_raw_hash_scanned_by_an_alias_matches(svc):
    svc.banks.create("pdna", created_by="test")
    svc.banks.add_hash("pdna", "photodna_like", b64(pdna(jpeg(7))), category="A1")
    value = b64(pdna(variant(jpeg(7))))
    by_name = svc.scans.scan_hash("photodna_like", value)
    by_alias = svc.scans.scan_hash("photodna", value)
    assert by_name.verdict == by_alias.verdict == "match"
    assert by_alias.to_dict()["signals"] == by_name.to_dict()["signals"]
    assert [m.signal_type for m in by_alias.matches] == ["photodna_like"]


def _flip(value: str, bits: list[int]) -> str:
    b = bytearray(bytes.fromhex(value))
    for i in bits:
        b[i // 8] ^= 1 << (i % 8)
    return b.hex()


def test_the_index_alone_answers_as_a_scan_does_without_the_database(svc, monkeypatch):
    """``scan_hash_indexed``: for every hash, the verdict and the matches (bank, kind, entry, distance) that
    ``scan_hash`` gives reading the entries — across banks of their own thresholds, an allow bank, a disabled
    bank and disabled entries — counted the same, and not a database session opened."""
    rng = random.Random(5)
    base = [f"{rng.getrandbits(256):064x}" for _ in range(12)]
    svc.banks.create("wide", created_by="test", thresholds={"pdq": 60})
    svc.banks.create("narrow", created_by="test", thresholds={"pdq": 10})
    svc.banks.create("vouch", kind="allow", created_by="test")
    svc.banks.create("off", created_by="test", enabled=False)
    for i, value in enumerate(base):
        for bank in ("wide", "narrow", "off") if i % 3 else ("wide", "vouch"):
            entry = svc.banks.add_hash(bank, "pdq", value, added_by="test")
            if i % 4 == 1 and bank == "narrow":
                svc.banks.set_entry_enabled(entry["id"], False)
    queries = [_flip(v, rng.sample(range(256), rng.choice((0, 5, 20, 40, 70)))) for v in base for _ in range(3)]
    queries += [f"{rng.getrandbits(256):064x}" for _ in range(5)]
    expected = []
    for q in queries:
        result = svc.scans.scan_hash("pdq", q)
        expected.append((result.verdict, [(m.bank, m.bank_kind, m.entry_id, m.distance) for m in result.matches]))
    assert {verdict for verdict, _ in expected} == {"match", "no_match", "allowlisted"}

    me, session, connect = threading.get_ident(), svc.scans.db.session, svc.scans.db.engine.connect

    def here_never(real):
        def guarded(*args, **kwargs):  # background threads may go on using the store
            assert threading.get_ident() != me, "the index's answer touched the database"
            return real(*args, **kwargs)

        return guarded

    counted = []
    with monkeypatch.context() as patched:  # undone before the services close (they flush to the store)
        patched.setattr(svc.scans.db, "session", here_never(session))
        patched.setattr(svc.scans.db.engine, "connect", here_never(connect))
        patched.setattr(svc.scans, "count", lambda *args: counted.append(args))
        for q, (verdict, matches) in zip(queries, expected, strict=True):
            got, found = svc.scans.scan_hash_indexed("pdq", q)
            assert (got, [(m.bank, m.bank_kind, m.entry_id, m.distance) for m in found]) == (verdict, matches), q
    assert counted == [("api", "hash", verdict) for verdict, _ in expected]
