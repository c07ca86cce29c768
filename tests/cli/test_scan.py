"""`safehold scan`: every file that needs a look is named whole, and every unhashable one says why."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from safehold.cli import scan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_paths_are_never_cut_and_unhashable_files_say_why(cli, tmp_path, monkeypatch):
    deep = tmp_path / ("a folder with a long name " * 3).strip() / "and another level below it"
    shutil.copytree(EXAMPLES / "uploads", deep)
    cli("bank", "create", "known")
    cli("bank", "add", "known", EXAMPLES / "known")
    copy, damaged = deep / "copy-of-shapes-1.jpg", deep / "damaged.jpg"

    lines = cli("scan", tmp_path).stdout.splitlines()  # not a terminal: tab-separated, nothing wrapped or cut
    assert [line.split("\t") for line in lines] == [
        ["match", "known", "pdq", lines[0].split("\t")[3], "shapes-1.jpg", str(copy)],
        ["unhashable", "", "", "", "[media.truncated] The JPEG file ends early.", str(damaged)],
    ]

    terminal = io.StringIO()
    monkeypatch.setattr(scan, "out", Console(file=terminal, force_terminal=True, width=40))
    cli("scan", tmp_path)
    shown = terminal.getvalue()
    assert str(copy) in shown and str(damaged) in shown and "…" not in shown  # one piece, to copy and paste
    assert "[media.truncated] The JPEG file ends early." in shown


def test_reason_of_a_featureless_image():
    row = {"verdict": "unhashable", "error": None, "warnings": ["pdq.low_quality"]}
    assert scan.unhashable_reason(row) == "[pdq.low_quality] too featureless to match (PDQ quality below 50)"


def test_the_cli_hashes_with_the_apis_limits(cli, svc, client, keys, tmp_path, monkeypatch):
    """Was: ``safehold hash``/``scan`` hashed with the hashers' own defaults (3 h videos, no pixel or JPEG caps, no
    decode timeout) while the API used the settings; both now take them from one options builder."""
    import json

    from safehold.scanning.service import hash_options
    from tests.media import jpeg

    monkeypatch.setenv("SAFEHOLD_MAX_IMAGE_PIXELS", "1000")  # the CLI's process reads its settings
    svc.settings.max_image_pixels = 1000
    (tmp_path / "big.jpg").write_bytes(jpeg(7))
    by_cli = json.loads(cli("hash", "--json", tmp_path / "big.jpg", code=2).stdout)["error"]["code"]
    by_api = client.post("/v1/scan", files={"file": ("big.jpg", jpeg(7))}, headers=keys["platform"]).json()
    assert by_cli == by_api["error"]["code"] == "media.decompression_bomb"
    options = hash_options(svc.settings, dihedral=False)
    assert options["vpdq_options"]["max_duration_seconds"] == svc.settings.video_max_seconds
    assert options["pdq_options"]["isolation"].timeout == svc.settings.image_decode_timeout


def test_scan_record_writes_the_hashes_it_saw(cli, svc, tmp_path, monkeypatch):
    """Was: ``safehold scan --record`` flushed its verdict counts but not the seen-hash buffer, so with the store on
    nothing it recorded was ever re-matched."""
    from sqlalchemy import select

    from safehold.store.models import SeenHash
    from tests.media import jpeg

    monkeypatch.setenv("SAFEHOLD_SEEN_HASHES", "true")
    (tmp_path / "a.jpg").write_bytes(jpeg(3))
    cli("scan", "--record", "--content-id", "cli-seen-1", tmp_path / "a.jpg")
    with svc.db.session() as s:  # another connection: what the command wrote, not what it still holds
        rows = s.scalars(select(SeenHash.content_id)).all()
    assert rows and set(rows) == {"cli-seen-1"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_known_image_inside_a_video_matches_on_the_command_line(cli, tmp_path):
    from tests.media import H264, ellipses, ffmpeg

    (tmp_path / "known").mkdir()
    (tmp_path / "known" / "picture.png").write_bytes(ellipses())
    src = ("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=6", "-i", str(tmp_path / "known/picture.png"))
    ffmpeg(tmp_path / "v.mp4", *src, "-filter_complex", "[0][1]overlay=enable='between(t,3,5)'", *H264)
    cli("bank", "create", "known")
    cli("bank", "add", "known", tmp_path / "known")
    row = json.loads(cli("scan", "--json", tmp_path / "v.mp4", code=0).stdout.splitlines()[0])
    assert row["verdict"] == "match" and row["matches"][0]["variant"] == "frame", row
    assert 2.9 <= row["matches"][0]["detail"]["timestamp"] <= 3.5
