"""A raw hash scanned under an alias of its signal type (``photodna``, the name NCMEC's lists use, for the
PhotoDNA-shaped test plug-in) matches exactly as under the type's own name."""

from __future__ import annotations

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


def test_a_hash_without_candidates_is_decided_without_the_database(svc, monkeypatch):
    """``scan_hash_unmatched``: the same answer and count as ``scan_hash`` for a miss, with no session opened;
    None for a hash the index has candidates for (an event loop hands it to ``scan_hash`` in a thread)."""
    banked, miss = "f" * 60 + "0000", "0123456789abcdef" * 4
    svc.banks.create("known", created_by="test")
    svc.banks.add_hash("known", "pdq", banked)
    expected = svc.scans.scan_hash("pdq", miss).to_dict()

    me, session = threading.get_ident(), svc.scans.db.session

    def no_session(*args, **kwargs):  # background threads may go on using the store
        assert threading.get_ident() != me, "a miss opened a database session"
        return session(*args, **kwargs)

    counted = []
    with monkeypatch.context() as patched:  # undone before the services close (they flush to the store)
        patched.setattr(svc.scans.db, "session", no_session)
        patched.setattr(svc.scans, "count", lambda *args: counted.append(args))
        assert svc.scans.scan_hash_unmatched("pdq", miss).to_dict() == expected
        assert counted == [("api", "hash", "no_match")]
        assert svc.scans.scan_hash_unmatched("pdq", banked) is None
        assert counted == [("api", "hash", "no_match")]  # not counted: scan_hash counts it
