"""A raw hash scanned under an alias of its signal type (``photodna``, the name NCMEC's lists use, for the
PhotoDNA-shaped test plug-in) matches exactly as under the type's own name."""

from __future__ import annotations

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
