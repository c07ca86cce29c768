"""Proof that a signal type is the unit of extension: a plug-in shaped like PhotoDNA (144-byte vector, L2 distance,
its own threshold, index class and image hasher), installed as a package with an entry point exactly as pip would
install it, is imported into banks from CSV and NCMEC XML and matches through the API (raw hash, file, event) and
the CLI — with nothing in Safehold knowing its name."""

from __future__ import annotations

import base64
import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from safehold.banks.index import BankIndex
from safehold.signals import registry
from tests.media import jpeg, variant

FIXTURE = Path(__file__).parent / "photodna_like" / "safehold_photodna_like.py"
KNOWN = jpeg(7)
COPY = variant(KNOWN)  # re-encoded and scaled: L2 distance 5 from KNOWN in this hash


@pytest.fixture(autouse=True)
def installed(tmp_path_factory, monkeypatch):
    """The plug-in as an installed distribution: its module and a ``*.dist-info`` with ``entry_points.txt``
    in a directory on ``sys.path``, found by ``importlib.metadata`` like any pip-installed package."""
    site = tmp_path_factory.mktemp("site-packages")
    shutil.copy(FIXTURE, site)
    info = site / "safehold_photodna_like-1.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: safehold-photodna-like\nVersion: 1.0.0\n")
    (info / "entry_points.txt").write_text("[safehold.signals]\nphotodna_like = safehold_photodna_like:PLUGIN\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("SAFEHOLD_SIGNAL_PLUGINS", raising=False)
    registry.reload()
    yield
    sys.modules.pop("safehold_photodna_like", None)
    registry.reload()


def pdna(data: bytes) -> str:
    """The plug-in's hash of ``data`` (hex)."""
    hasher = importlib.import_module("safehold_photodna_like").PhotoDnaLikeHasher()
    return hasher.hash_bytes(data)[0].value


def b64(hex_value: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_value)).decode()


def ncmec_xml(hex_value: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">
  <images count="1" maxTimestamp="2024-01-02T00:00:00Z">
    <image>
      <member id="42">Example Member</member>
      <timestamp>2024-01-01T10:00:00Z</timestamp>
      <id>img-1</id>
      <classification>A1</classification>
      <fingerprints><pdna>{hex_value}</pdna></fingerprints>
    </image>
  </images>
</queryResult>""".encode()


def test_the_installed_package_provides_the_type():
    st = registry.signal_type("photodna_like")
    assert registry.load_errors() == []
    assert [p.name for p in registry.plugins().plugins] == ["photodna_like"]
    assert registry.signal_type("photodna") is st  # the name NCMEC's lists use
    assert st.index_cls().__name__ == "PhotoDnaLikeIndex"
    assert "photodna_like" in registry.perceptual_types("image")
    assert st.distance(pdna(KNOWN), b64(pdna(COPY))) == 5


def test_csv_import_and_api_scan_by_hash_and_by_file(client, keys):
    admin, platform = keys["admin"], keys["platform"]
    assert client.post("/v1/banks", json={"name": "pdna"}, headers=admin).status_code == 201
    csv = f"signal_type,value,external_id,category\nphotodna_like,{b64(pdna(KNOWN))},x-1,A1\n"
    r = client.post("/v1/banks/pdna/import", headers=admin, files={"file": ("list.csv", csv.encode())})
    assert r.status_code == 200 and r.json()["added"] == 1, r.text
    entry = client.get("/v1/banks/pdna/entries", headers=admin).json()["entries"][0]
    assert entry["signal_type"] == "photodna_like" and entry["value"] == pdna(KNOWN)

    # a raw hash, in either spelling
    r = client.post("/v1/scan", json={"signal_type": "photodna_like", "value": b64(pdna(COPY))}, headers=platform)
    match = r.json()["matches"][0]
    assert r.json()["verdict"] == "match" and (match["signal_type"], match["distance"]) == ("photodna_like", 5)
    far = client.post("/v1/scan", json={"signal_type": "photodna_like", "value": pdna(jpeg(8))}, headers=platform)
    assert far.json()["verdict"] == "no_match"

    # a file: the plug-in's hasher runs beside PDQ, and the bank (which holds no PDQ) matches by the plug-in
    r = client.post("/v1/scan", files={"file": ("copy.jpg", COPY, "image/jpeg")}, headers=platform).json()
    assert r["verdict"] == "match" and {m["signal_type"] for m in r["matches"]} == {"photodna_like"}
    assert "photodna_like" in {s["type"] for s in r["signals"]}

    # the bank's own threshold for the type applies; out of range is refused with the type's maximum
    r = client.patch("/v1/banks/pdna", json={"thresholds": {"photodna_like": 4}}, headers=admin)
    assert r.json()["thresholds"] == {"photodna_like": 4} and r.json()["pdq_threshold"] == 31
    assert client.post("/v1/scan", files={"file": ("c.jpg", COPY)}, headers=platform).json()["verdict"] == "no_match"
    r = client.patch("/v1/banks/pdna", json={"thresholds": {"photodna_like": 5000}}, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bank.invalid_threshold"
    assert r.json()["error"]["detail"] == {"signal_type": "photodna_like", "max": 3060}
    r = client.patch("/v1/banks/pdna", json={"thresholds": {"photodna_like": None}}, headers=admin)
    assert r.json()["thresholds"] == {}  # back to the type's default (100)
    assert client.post("/v1/scan", files={"file": ("c.jpg", COPY)}, headers=platform).json()["verdict"] == "match"


def test_ncmec_xml_pdna_becomes_the_plugin_type_and_an_event_opens_a_case(client, keys, svc):
    admin, platform = keys["admin"], keys["platform"]
    client.post("/v1/banks", json={"name": "ncmec", "thresholds": {"photodna": 50}}, headers=admin)
    xml = ncmec_xml(pdna(KNOWN))
    r = client.post("/v1/banks/ncmec/import", headers=admin, files={"file": ("ncmec.xml", xml)})
    assert r.status_code == 200 and r.json()["added"] == 1, r.text
    entries = client.get("/v1/banks/ncmec/entries", headers=admin).json()["entries"]
    assert [(e["signal_type"], e["external_id"]) for e in entries] == [("photodna_like", "img-1")]
    assert client.get("/v1/banks/ncmec", headers=admin).json()["thresholds"] == {"photodna_like": 50}

    body = {"type": "content", "content": {"id": "post-1"}, "account": {"id": "user-1"}}
    r = client.post(
        "/v1/events",
        data={"event": json.dumps(body)},
        files={"file": ("p.jpg", COPY, "image/jpeg")},
        headers={**platform, "Idempotency-Key": "pdna-1"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["scan"]["verdict"] == "match" and out["cases"][0]["created"]
    case = client.get(f"/v1/cases/{out['cases'][0]['id']}", headers=keys["reviewer"]).json()
    assert case["category"] == "A1" and case["content_id"] == "post-1"
    signal = svc.cases.get(out["cases"][0]["id"])["signals"][0]
    # the signal type's confidence rule: 1 - distance / (2 × the bank's threshold for the type)
    assert (signal["signal_type"], signal["distance"], signal["confidence"]) == ("photodna_like", 5, 0.95)


def test_cli_import_and_scan(cli, tmp_path):
    (tmp_path / "list.csv").write_text(f"signal_type,value\nphotodna_like,{pdna(KNOWN)}\n")
    cli("bank", "create", "pdna", "--threshold", "photodna_like=20", "--threshold", "25")
    cli("bank", "import", "pdna", tmp_path / "list.csv")
    shown = json.loads(cli("bank", "show", "pdna", "--json").stdout)
    assert shown["thresholds"] == {"photodna_like": 20, "pdq": 25}
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "copy.jpg").write_bytes(COPY)
    (uploads / "other.jpg").write_bytes(jpeg(8))
    rows = {Path(r["name"]).name: r for r in map(json.loads, cli("scan", uploads, "--json").stdout.splitlines())}
    assert rows["copy.jpg"]["verdict"] == "match" and rows["copy.jpg"]["matches"][0]["signal_type"] == "photodna_like"
    assert rows["other.jpg"]["verdict"] == "no_match"
    assert "bank.invalid_threshold" in cli("bank", "set", "pdna", "--threshold", "photodna_like=x", code=2).output


def test_the_bank_index_snapshot_holds_the_plugin_index(svc, settings):
    svc.banks.create("pdna")
    svc.banks.add_hash("pdna", "photodna_like", pdna(KNOWN))
    svc.index.save_snapshot()
    fresh = BankIndex(svc.db, snapshot_dir=settings.index_dir)
    assert fresh._load_snapshot()  # the plug-in's index saved and loaded itself
    assert type(fresh.indexes["photodna_like"]).__name__ == "PhotoDnaLikeIndex"
    assert [c.distance for c in fresh.lookup("photodna_like", pdna(COPY))] == []  # banks not read yet
    fresh.load()
    assert [c.distance for c in fresh.lookup("photodna_like", pdna(COPY))] == [5]


def test_entries_of_an_uninstalled_type_are_skipped_then_indexed_once_it_is_back(svc, settings, monkeypatch, caplog):
    svc.banks.create("pdna")
    svc.banks.add_hash("pdna", "photodna_like", pdna(KNOWN))
    monkeypatch.setenv("SAFEHOLD_SIGNAL_PLUGINS", "none")  # the package is removed
    registry.reload()
    gone = BankIndex(svc.db, snapshot_dir=settings.index_dir)
    gone.load()
    assert "photodna_like" in gone.unindexable and "not matchable" in caplog.text
    assert gone.lookup("photodna_like", pdna(COPY)) == []
    gone.save_snapshot()

    monkeypatch.delenv("SAFEHOLD_SIGNAL_PLUGINS")  # installed again: that snapshot would miss its entries
    registry.reload()
    back = BankIndex(svc.db, snapshot_dir=settings.index_dir)
    back.load()
    assert [c.distance for c in back.lookup("photodna_like", pdna(COPY))] == [5]
