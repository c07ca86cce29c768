"""Decoding is bounded before it starts: pixels per image, pixels in flight, JPEG structure (issue [6], item 3).

The hostile files are built here: a PNG that declares 49 megapixels in 143 KB, a progressive JPEG whose smallest
scan is repeated thousands of times, a JPEG with hundreds of EXIF (APP1) segments.
"""

from __future__ import annotations

import gc
import io
import re
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from safehold.errors import SafeholdError
from safehold.signals.budget import WorkBudget
from safehold.signals.image import jpeg_structure, load_image
from safehold.signals.pdq import PdqHasher


def png_bomb(width: int, height: int) -> bytes:
    """A valid RGB PNG of width × height black pixels; zlib makes it tiny (7000 × 7000: 143 KB)."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _photo(side: int = 256) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def many_scans(repeat: int) -> bytes:
    """A progressive JPEG with its last scan repeated ``repeat`` more times (the probe's 60,000-scan file)."""
    data = _jpeg(Image.new("RGB", (1024, 1024), (120, 30, 200)), progressive=True)
    last_sos = data.rfind(b"\xff\xda")
    eoi = data.rfind(b"\xff\xd9")
    return data[:eoi] + data[last_sos:eoi] * repeat + data[eoi:]


def many_app1(count: int, size: int = 65_000) -> bytes:
    """A JPEG with ``count`` EXIF segments (Pillow concatenates them: quadratic)."""
    data = _jpeg(Image.new("RGB", (64, 64), (10, 200, 30)))
    payload = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08" + b"\x00" * (size - 14)
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment * count + data[2:]


# ------------------------------------------------------------------------------------------ JPEG structure


def test_ordinary_jpegs_pass_the_structure_check():
    img = _photo()
    baseline = _jpeg(img, exif=Image.Exif().tobytes(), icc_profile=b"\0" * 150_000)  # ICC split over 3 APP2
    progressive = _jpeg(img, progressive=True)
    assert jpeg_structure(baseline)[0] == 1 and jpeg_structure(baseline)[1] <= 8
    assert 5 <= jpeg_structure(progressive)[0] <= 12
    for data in (baseline, progressive):
        assert PdqHasher().hash_bytes(data)[0].quality > 0


def test_many_scans_are_refused_before_decoding():
    """Was: 60,000 repeated scans (730 KB) cost ~7.5 s of CPU in libjpeg."""
    data = many_scans(60_000)
    assert data.count(b"\xff\xda") > 60_000
    t = time.process_time()
    with pytest.raises(SafeholdError) as ei:
        PdqHasher().hash_bytes(data)
    assert time.process_time() - t < 0.5
    assert ei.value.code == "media.too_complex" and ei.value.status == 422
    assert ei.value.detail["max_scans"] == 100
    # the limit is a parameter: 150 scans pass at 200
    assert PdqHasher(max_jpeg_scans=200).hash_bytes(many_scans(140))[0].value


def test_many_app_segments_are_refused_before_decoding():
    """Was: 1,000 EXIF segments of 65 KB cost ~20 s of CPU (Pillow's bytes += is quadratic)."""
    data = many_app1(1000)
    t = time.process_time()
    with pytest.raises(SafeholdError) as ei:
        load_image(data)
    assert time.process_time() - t < 0.5
    assert ei.value.code == "media.too_complex" and ei.value.detail["app_segments"] > 64
    assert load_image(many_app1(10, 100)).size == (64, 64)


def test_structure_walk_skips_entropy_data_and_stops_early():
    data = many_scans(5000)
    scans, _apps, _tables = jpeg_structure(data, stop_after=100)
    assert scans == 101
    # stuffed FF00 and restart markers inside entropy-coded data are not markers
    img = _photo(512)
    data = _jpeg(img, restart_marker_blocks=1)
    assert re.search(rb"\xff[\xd0-\xd7]", data) and jpeg_structure(data)[0] == 1


# ------------------------------------------------------------------------------------------ pixels per image


def test_png_bomb_is_refused_from_its_header():
    data = png_bomb(7000, 7000)
    assert len(data) < 150_000
    with pytest.raises(SafeholdError) as ei:
        PdqHasher(max_pixels=20_000_000).hash_bytes(data)
    assert ei.value.code == "media.decompression_bomb" and ei.value.status == 413


def test_gif_frame_larger_than_its_screen_is_refused():
    """A GIF's first frame may claim more than its logical screen; Pillow grows the image to fit it."""
    buf = io.BytesIO()
    Image.new("P", (4, 4)).save(buf, "GIF")
    data = bytearray(buf.getvalue())
    desc = data.index(b"\x2c")  # image descriptor: left, top, width, height (little-endian)
    data[desc + 5 : desc + 9] = struct.pack("<HH", 60000, 60000)
    with pytest.raises(SafeholdError) as ei:
        PdqHasher(max_pixels=1_000_000).hash_bytes(bytes(data))
    assert ei.value.code in ("media.decompression_bomb", "media.too_large", "media.corrupt", "media.truncated")


def test_the_setting_reaches_the_scan_service(svc):
    """Was: SAFEHOLD_MAX_IMAGE_PIXELS was never passed to the PDQ hasher (its own 50 MP default applied)."""
    svc.settings.max_image_pixels = 1_000_000
    from safehold.scanning.service import ScanService

    scans = ScanService(svc.db, svc.index, svc.settings)
    hashed = scans.hash_bytes(png_bomb(2000, 2000))
    assert hashed.media == "image" and hashed.get("pdq") is None
    assert hashed.errors[0].code == "media.decompression_bomb"
    assert hashed.get("sha256") is not None  # the other signals are still there


# ------------------------------------------------------------------------------------------ pixels in flight


def test_budget_never_exceeds_its_capacity_and_refuses_after_the_wait():
    budget = WorkBudget(100, wait=0.2)
    peak, lock = [0], threading.Lock()

    def work(weight):
        try:
            with budget.hold(weight):
                with lock:
                    peak[0] = max(peak[0], budget.in_use)
                time.sleep(0.02)
        except SafeholdError:
            pass

    threads = [threading.Thread(target=work, args=(w,)) for w in (60, 50, 40, 30, 70, 100, 500) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert 0 < peak[0] <= 100 and budget.in_use == 0
    with budget.hold(100):
        t0 = time.monotonic()
        with pytest.raises(SafeholdError) as ei:
            budget.acquire(1)
        assert 0.15 < time.monotonic() - t0 < 2
    err = ei.value
    assert err.code == "media.busy" and err.status == 503 and err.headers["Retry-After"] == "1"


def test_hasher_reserves_the_decoded_size_before_decoding():
    budget = WorkBudget(2_000_000, wait=0.1)
    big = png_bomb(1500, 1000)  # 1.5 MP
    seen = []
    real_acquire = budget.acquire
    budget.acquire = lambda w, wait=None: seen.append(w) or real_acquire(w, wait)  # type: ignore[method-assign]
    hasher = PdqHasher(budget=budget)
    hasher.hash_bytes(big)
    # a fast-mode JPEG is reserved at its draft size (libjpeg scales 4000 × 4000 to 2000 × 2000 while decoding)
    hasher.hash_bytes(_jpeg(Image.new("RGB", (4000, 4000), (1, 2, 3))))
    assert seen == [1_500_000, 2000 * 2000]
    assert budget.in_use == 0
    with budget.hold(1_000_000):  # half taken: 1.5 MP does not fit
        with pytest.raises(SafeholdError) as ei:
            hasher.hash_bytes(big)
        assert ei.value.code == "media.busy"
        hasher.hash_bytes(png_bomb(500, 500))  # a small image still fits


def test_scan_answers_503_with_retry_after_when_pixels_are_taken(client, keys, svc):
    svc.scans.pixels.wait = 0.1
    data = png_bomb(300, 300)
    with svc.scans.pixels.hold(svc.scans.pixels.capacity):
        r = client.post("/v1/scan", headers=keys["platform"], files={"file": ("a.png", data, "image/png")})
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "media.busy" and int(r.headers["Retry-After"]) >= 1
    r = client.post("/v1/scan", headers=keys["platform"], files={"file": ("a.png", data, "image/png")})
    assert r.status_code == 200 and r.json()["signals"]


# ------------------------------------------------------------------------------------------ video


def test_video_slots_and_deadline(tmp_path):
    """A video hash holds one of the process's slots (media.busy when none frees in time), and one deadline
    covers ffprobe and the hash."""
    from safehold.signals.vpdq import VpdqHasher

    data = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64  # never decoded: refused before
    slots = WorkBudget(1, wait=0.1, what="hashing videos")
    with slots.hold(1):
        with pytest.raises(SafeholdError) as ei:
            VpdqHasher(slots=slots, tmp_dir=str(tmp_path)).hash_bytes(data)
    assert ei.value.code == "media.busy" and ei.value.status == 503
    with pytest.raises(SafeholdError) as ei:
        VpdqHasher(timeout_seconds=1e-9, slots=slots, tmp_dir=str(tmp_path)).hash_bytes(data)
    assert ei.value.code == "media.too_large" and "timeout_seconds" in ei.value.detail
    assert slots.in_use == 0


def test_video_settings_reach_the_hasher(svc, monkeypatch):
    """Was: the scan service built VpdqHasher with its own defaults (3 h, 600 s), whatever the settings said."""
    from safehold.signals import vpdq

    seen = {}
    real = vpdq.VpdqHasher.__init__

    def spy(self, **kw):
        seen.update(kw)
        real(self, **kw)

    monkeypatch.setattr(vpdq.VpdqHasher, "__init__", spy)
    svc.scans.hash_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    st = svc.settings
    assert seen["max_duration_seconds"] == st.video_max_seconds == 900
    assert seen["timeout_seconds"] == st.video_hash_timeout == 60
    assert seen["max_pixels"] == st.video_max_pixels and seen["slots"] is svc.scans.videos


@pytest.mark.parametrize("content", [b"\xff\xd8\xff" + b"not a jpeg" * 100, None])
def test_a_refused_upload_is_freed_at_once_not_by_the_cycle_collector(content):
    """A hasher error kept in the result must not hold the frames that hold the upload: 65 MB uploads refused
    under load were kept until Python's cyclic collector ran, and the server grew by gigabytes."""
    from safehold.signals.registry import hash_content

    data = content if content is not None else many_app1(100, size=1000)
    hash_content(data, filename="upload.jpg")  # first-use imports and caches leave cycles of their own
    gc.collect()
    gc.disable()
    try:
        result = hash_content(data, filename="upload.jpg")
        assert result.errors, "the content must be refused for this test to mean anything"
        del result
        assert gc.collect() == 0
    finally:
        gc.enable()
