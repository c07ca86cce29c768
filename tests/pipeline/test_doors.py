"""Same input, same result, whatever the door: files scanned through POST /v1/scan and `safehold scan --record`
open the same cases, with the same signals, items and automatic actions."""

from __future__ import annotations

import getpass
import json
import re

import pytest
from PIL import Image

from safehold.config import Settings
from tests.media import encode, jpeg, photo, variant

KNOWN = jpeg(7)
#: A bright picture: the built-in test classifier's hit (mean brightness >= 0.9), and a perceptual hash.
BRIGHT = encode(Image.eval(photo(11), lambda v: 230 + v // 10))


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(home=tmp_path / "home", database_url=database_url, classifiers=["test_brightness"])


@pytest.fixture
def files(tmp_path, svc):
    svc.banks.create("known", created_by="test")
    svc.banks.add_file("known", KNOWN, filename="known.jpg", category="A1", external_id="x-7")
    svc.banks.create("auto", created_by="test")
    svc.banks.update("auto", on_match="auto", actor="test")
    svc.banks.add_file("auto", jpeg(8), filename="auto.jpg", category="A2")
    svc.actions.create_policy("auto-block", "auto", {"bank": "auto"}, ["block_content"], actor="test")
    folder = tmp_path / "uploads"
    folder.mkdir()
    contents = {"known.jpg": KNOWN, "copy.jpg": variant(KNOWN), "auto.jpg": jpeg(8), "other.jpg": jpeg(9)}
    contents["bright.jpg"] = BRIGHT
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return folder


def _case(svc, ref: dict) -> dict:
    """What a case is, without what differs by door (ids, times, the subject's name)."""
    case = svc.cases.get(ref["id"])
    keep = ("source", "queue", "status", "band", "priority", "known_match", "account_id")
    return {
        **{k: case[k] for k in keep},
        "signals": sorted(
            (json.dumps({k: v for k, v in sig.items() if k not in ("id", "item_id", "at")}, sort_keys=True))
            for sig in case["signals"]
        ),
        "items": [
            {k: v for k, v in item.items() if k not in ("id", "case_id", "content_id", "added_at")}
            for item in case["items"]
        ],
        "actions": [(a["kind"], a["policy"]) for a in case["actions"]],
    }


def test_api_and_cli_open_the_same_cases_for_the_same_files(svc, client, keys, cli, files, monkeypatch):
    monkeypatch.setenv("SAFEHOLD_CLASSIFIERS", "test_brightness")  # the CLI's process reads its settings
    paths = sorted(files.iterdir())
    api = {}
    for path in paths:
        form = {"content_id": f"api-{path.name}", "account_id": "u1"}
        r = client.post("/v1/scan", files={"file": (path.name, path.read_bytes())}, data=form, headers=keys["admin"])
        assert r.status_code == 200, r.text
        api[path.name] = r.json()
    out = cli("scan", "--record", "--content-id", "cli-{name}", "--account-id", "u1", "--json", files).stdout
    by_cli = {json.loads(line)["name"].rsplit("/", 1)[-1]: json.loads(line) for line in out.splitlines()}
    assert set(by_cli) == set(api)

    for name in api:
        a, c = api[name], by_cli[name]
        assert (a["verdict"], a["signals"], len(a["matches"])) == (c["verdict"], c["signals"], len(c["matches"]))
        assert len(a.get("cases", [])) == len(c.get("cases", [])), name
        for ra, rc in zip(a.get("cases", []), c.get("cases", []), strict=True):
            assert ra["created"] and rc["created"] and ra["id"] != rc["id"]
            assert _case(svc, ra) == _case(svc, rc), name
    assert "cases" not in api["other.jpg"] and "cases" not in by_cli["other.jpg"]  # nothing found: nothing kept
    sources = {name: svc.cases.get(api[name]["cases"][0]["id"])["source"] for name in api if "cases" in api[name]}
    assert sources == {"known.jpg": "hash_match", "copy.jpg": "hash_match", "auto.jpg": "hash_match",
                       "bright.jpg": "classifier"}  # fmt: skip
    assert _case(svc, api["auto.jpg"]["cases"][0])["actions"] == [("block_content", "auto-block")]
    assert _case(svc, api["bright.jpg"]["cases"][0])["actions"] == []

    # The CLI is an actor of its own in the audit log, and its retries are duplicates as the API's are.
    case = svc.cases.get(by_cli["known.jpg"]["cases"][0]["id"])
    assert {h["actor"] for h in case["history"] if h["action"] == "case.open"} == {f"cli:{getpass.getuser()}"}
    again = cli("scan", "--record", "--content-id", "cli-{name}", "--account-id", "u1", "--json", files / "known.jpg")
    repeat = json.loads(again.stdout)
    assert repeat["duplicate"] and repeat["cases"] == by_cli["known.jpg"]["cases"]


def test_record_needs_a_subject_and_a_subject_needs_record(cli, files):
    def refused(*args) -> str:
        return re.sub(r"[\s│]+", " ", cli("scan", *args, code=2).output)  # the message, unboxed and unwrapped

    assert "--record needs --content-id or --account-id" in refused("--record", files)
    assert "add --record" in refused("--content-id", "c1", files)
    assert "1 to 128 characters" in refused("--record", "--content-id", "x" * 129, files / "known.jpg")


def test_the_listing_names_the_cases(cli, files, monkeypatch):
    monkeypatch.setenv("SAFEHOLD_CLASSIFIERS", "test_brightness")
    out = cli("scan", "--record", "--content-id", "c-{name}", files / "known.jpg", files / "bright.jpg").stdout
    assert "case 1 opened" in out and "case 2 opened" in out


def test_the_same_image_by_url_or_by_file_opens_the_same_case(svc, client, keys, files):
    """A URL scan naming a subject hands what the URL served to the pipeline: the media is kept and classified
    exactly as the same file uploaded."""
    from safehold.scanning.fetch import UrlGuard
    from tests.api.test_scan_api import _ImageServer

    svc.scans.guard = UrlGuard(["127.0.0.1/32"])
    for name in ("known.jpg", "bright.jpg"):
        data = (files / name).read_bytes()
        server = _ImageServer(data)
        try:
            url = f"http://127.0.0.1:{server.port}/img.jpg"
            by_url = client.post("/v1/scan", json={"url": url, "content_id": f"u-{name}"}, headers=keys["platform"])
        finally:
            server.server.shutdown()
        form = {"content_id": f"f-{name}"}
        by_file = client.post("/v1/scan", files={"file": (name, data)}, data=form, headers=keys["platform"])
        [ru], [rf] = by_url.json()["cases"], by_file.json()["cases"]
        case_url, case_file = _case(svc, ru), _case(svc, rf)
        for case in (case_url, case_file):
            case["items"] = [{k: v for k, v in i.items() if k not in ("url", "filename")} for i in case["items"]]
        assert case_url == case_file, name
        assert case_url["items"][0]["has_media"], name  # kept in the vault
