import json
import os
import random
import shutil
import subprocess

import pytest

from safehold.errors import SafeholdError
from safehold.matching.vpdq import VpdqFrame, parse_vpdq, serialize_vpdq, vpdq_is_match, vpdq_match
from safehold.signals.vpdq import VpdqHasher, VpdqSignal

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed: cannot generate test videos")


def _rand_hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def _flip(hex_: str, bits: int, rng: random.Random) -> str:
    v = int(hex_, 16)
    for b in rng.sample(range(256), bits):
        v ^= 1 << b
    return f"{v:064x}"


# ------------------------------------------------------------------------------------------- format


def test_serialisation_matches_threatexchange_format():
    frames = [VpdqFrame("AB" * 32, 100, 0.0), VpdqFrame("cd" * 32, 49, 1.0), VpdqFrame("ef" * 32, 7, 123.456)]
    text = serialize_vpdq(frames)
    assert json.loads(text) == [f"{'ab' * 32},100,0.0", f"{'cd' * 32},49,1.0", f"{'ef' * 32},7,1.23e+02"]
    parsed = parse_vpdq(text)
    assert parsed[0] == VpdqFrame("ab" * 32, 100, 0.0)
    assert parsed[2].timestamp == 123.0
    assert VpdqSignal.normalize(text) == text
    assert VpdqSignal.normalize(json.dumps([f"{'AB' * 32},100,0"])) == json.dumps([f"{'ab' * 32},100,0.0"])


def test_values_round_trip_with_threatexchange():
    vu = pytest.importorskip("threatexchange.extensions.vpdq.vpdq_util")
    rng = random.Random(1)
    feats = [vu.VpdqCompactFeature(_rand_hex(rng), rng.randint(0, 100), float(i)) for i in range(20)]
    theirs = vu.vpdq_to_json(feats)
    assert VpdqSignal.normalize(theirs) == theirs
    ours = serialize_vpdq(parse_vpdq(theirs))
    assert [(f.pdq_hex, f.quality, f.timestamp) for f in vu.json_to_vpdq(ours)] == [
        (f.pdq_hex, f.quality, f.timestamp) for f in feats
    ]


def test_old_threatexchange_object_form_is_accepted():
    old = json.dumps({"1": {"quality": 90, "hash": "cd" * 32, "timestamp": 1.0},
                      "0": {"quality": 100, "hash": "ab" * 32, "timestamp": 0.0}})  # fmt: skip
    assert parse_vpdq(old) == [VpdqFrame("ab" * 32, 100, 0.0), VpdqFrame("cd" * 32, 90, 1.0)]


@pytest.mark.parametrize(
    "bad",
    [
        "", "not json", "{}", "[]", "42", json.dumps(["ab" * 32]), json.dumps([f"{'ab' * 31},100,0.0"]),
        json.dumps([f"{'zz' * 32},100,0.0"]), json.dumps([f"{'ab' * 32},101,0.0"]),
        json.dumps([f"{'ab' * 32},-1,0.0"]), json.dumps([f"{'ab' * 32},1.5,0.0"]),
        json.dumps([f"{'ab' * 32},100,-1"]), json.dumps([f"{'ab' * 32},100,nan"]), json.dumps([1, 2]),
        None,
    ],
)  # fmt: skip
def test_invalid_values(bad):
    with pytest.raises(SafeholdError) as ei:
        VpdqSignal.normalize(bad)
    assert ei.value.code == "signal.invalid_value"


# ----------------------------------------------------------------------------------------- matching


def test_match_rule_dedupe_and_quality():
    rng = random.Random(7)
    a, b, c = _rand_hex(rng), _rand_hex(rng), _rand_hex(rng)
    query = [VpdqFrame(a, 100, 0), VpdqFrame(a, 100, 1), VpdqFrame(a, 100, 2), VpdqFrame(b, 100, 3)]
    # duplicates of `a` count once: 1 of 2 unique query frames match
    target = [VpdqFrame(_flip(a, 31, rng), 100, 0), VpdqFrame(c, 100, 1)]
    assert vpdq_match(query, target) == (50.0, 50.0)
    # 32 bits away is no longer a match at the default threshold, but is at 32
    far = [VpdqFrame(_flip(a, 32, rng), 100, 0)]
    assert vpdq_match(query, far) == (0.0, 0.0)
    assert vpdq_match(query, far, distance_threshold=32) == (50.0, 100.0)
    # low-quality frames are ignored on both sides
    low = [VpdqFrame(a, 49, 0), VpdqFrame(b, 50, 1)]
    assert vpdq_match(query, low) == (50.0, 100.0)
    assert vpdq_match(query, low, quality_threshold=0) == (100.0, 100.0)
    # a side with no usable frames scores 0 instead of dividing by zero
    assert vpdq_match([VpdqFrame(a, 10, 0)], query) == (0.0, 0.0)


def test_match_decision_defaults_are_metas():
    rng = random.Random(3)
    base = [VpdqFrame(_rand_hex(rng), 100, i) for i in range(10)]
    clip = base[:8] + [VpdqFrame(_rand_hex(rng), 100, 8 + i) for i in range(2)]  # 80 % of frames shared
    assert vpdq_is_match(clip, base)
    assert VpdqSignal.distance(serialize_vpdq(clip), serialize_vpdq(base)) == 0
    worse = base[:7] + [VpdqFrame(_rand_hex(rng), 100, 7 + i) for i in range(3)]  # 70 %
    assert not vpdq_is_match(worse, base)
    # a short clip of a long video: query 100 %, target 10 % -> match under Meta's 80/0 default...
    assert vpdq_is_match(base[:1], base)
    # ...but not when the bank demands both sides
    assert not vpdq_is_match(base[:1], base, target_match_percent=80.0)


def test_match_agrees_with_threatexchange_brute_matcher():
    vu = pytest.importorskip("threatexchange.extensions.vpdq.vpdq_util")
    brute = pytest.importorskip("threatexchange.extensions.vpdq.vpdq_brute_matcher")
    rng = random.Random(11)
    for _ in range(15):
        seeds = [_rand_hex(rng) for _ in range(12)]

        def near(exact_share, seeds=seeds):
            seed = rng.choice(seeds)
            return seed if rng.random() < exact_share else _flip(seed, rng.randint(0, 45), rng)

        q = [VpdqFrame(near(0.3), rng.choice([20, 60, 100]), float(i)) for i in range(rng.randint(1, 40))]
        t = [VpdqFrame(near(0.0), rng.choice([20, 60, 100]), float(i)) for i in range(rng.randint(1, 40))]
        cq = [vu.VpdqCompactFeature(*f) for f in q]
        ct = [vu.VpdqCompactFeature(*f) for f in t]
        try:
            expected = brute.match_VPDQ_hash_brute(cq, ct, 50, 31)
        except ZeroDivisionError:
            continue  # Meta's code divides by zero when a side has no usable frame; we return 0
        got = vpdq_match(q, t)
        assert got == pytest.approx((expected.query_match_percent, expected.compared_match_percent))


def test_match_is_vectorised_for_long_videos():
    rng = random.Random(5)
    long = [VpdqFrame(_rand_hex(rng), 100, float(i)) for i in range(3000)]
    q, t = vpdq_match(long[1000:1500], long)
    assert q == 100.0 and t == pytest.approx(500 * 100 / 3000)


# ------------------------------------------------------------------------------------------ hashing


def _ffmpeg(out, *args):
    subprocess.run([FFMPEG, "-v", "error", "-y", *args, str(out)], check=True, timeout=60)
    return out.read_bytes()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed: cannot generate test videos")
    d = tmp_path_factory.mktemp("videos")
    enc = ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast"]
    v = {}
    v["a"] = _ffmpeg(d / "a.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-t", "4", *enc, "-crf", "18")
    # the same video re-encoded: smaller, lower bitrate, different container
    v["a_small"] = _ffmpeg(d / "a_small.webm", "-i", str(d / "a.mp4"), "-vf", "scale=200:150",
                           "-c:v", "libvpx", "-deadline", "realtime", "-b:v", "60k")  # fmt: skip
    v["b"] = _ffmpeg(d / "b.mp4", "-f", "lavfi", "-i", "mandelbrot=size=320x240:rate=10", "-t", "4", *enc)
    v["flat"] = _ffmpeg(d / "flat.mp4", "-f", "lavfi", "-i", "color=c=gray:size=160x120:rate=5", "-t", "3", *enc)
    v["long"] = _ffmpeg(d / "long.mp4", "-f", "lavfi", "-i", "color=c=red:size=32x32:rate=1", "-t", "20", *enc)
    v["audio"] = _ffmpeg(d / "audio.m4a", "-f", "lavfi", "-i", "sine=duration=1")
    png = d / "still.png"
    _ffmpeg(png, "-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1")
    v["png"] = png.read_bytes()
    return v


@pytest.fixture
def hasher(tmp_path):
    h = VpdqHasher(tmp_dir=str(tmp_path))
    yield h
    assert os.listdir(tmp_path) == []  # the private temporary copy is always deleted


@needs_ffmpeg
def test_reencoded_video_matches_and_other_video_does_not(videos, hasher):
    (a,) = hasher.hash_bytes(videos["a"])
    (a_small,) = hasher.hash_bytes(videos["a_small"])
    (b,) = hasher.hash_bytes(videos["b"])
    assert a.type == "vpdq" and a.quality == 100 and a.extra["frames"] == 4
    assert VpdqSignal.normalize(a.value) == a.value
    assert [f.timestamp for f in parse_vpdq(a.value)] == [0.0, 1.0, 2.0, 3.0]
    assert vpdq_is_match(a_small.value, a.value, target_match_percent=80)
    assert vpdq_is_match(a.value, a_small.value, target_match_percent=80)
    assert vpdq_match(b.value, a.value) == (0.0, 0.0)
    assert not vpdq_is_match(b.value, a.value)


@needs_ffmpeg
def test_same_value_as_threatexchange(videos, tmp_path):
    txv = pytest.importorskip("threatexchange.extensions.vpdq.vpdq")
    p = tmp_path / "a.mp4"
    p.write_bytes(videos["a"])
    (ours,) = VpdqHasher().hash_file(p)
    assert ours.value == txv.VPDQSignal.hash_from_file(p)


@needs_ffmpeg
def test_flat_video_has_no_usable_frames(videos, hasher):
    (flat,) = hasher.hash_bytes(videos["flat"])
    assert all(f.quality < 50 for f in parse_vpdq(flat.value))
    assert vpdq_match(flat.value, flat.value) == (0.0, 0.0)


@needs_ffmpeg
def test_inline_mode_gives_same_hash(videos, hasher):
    inline = VpdqHasher(isolate=False)
    assert inline.hash_bytes(videos["a"])[0].value == hasher.hash_bytes(videos["a"])[0].value


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda v: os.urandom(4096), "media.unsupported_format"),
        (lambda v: b"", "media.unsupported_format"),
        (lambda v: v["a"][:3000], "media.corrupt"),  # truncated MP4: recognised but damaged
        (lambda v: v["a"][:64] + os.urandom(8000), "media.corrupt"),
        (lambda v: v["png"], "media.unsupported_format"),  # an image is not a video
        (lambda v: v["audio"], "media.unsupported_format"),  # nor is audio
    ],
)
@needs_ffmpeg
def test_bad_input_is_rejected_cleanly(videos, hasher, make, code):
    with pytest.raises(SafeholdError) as ei:
        hasher.hash_bytes(make(videos))
    assert ei.value.code == code


@needs_ffmpeg
def test_limits(videos, tmp_path):
    with pytest.raises(SafeholdError) as ei:
        VpdqHasher(max_duration_seconds=10, tmp_dir=str(tmp_path)).hash_bytes(videos["long"])
    assert ei.value.code == "media.too_large" and ei.value.detail["duration"] == pytest.approx(20, abs=1)
    # without ffprobe the frame count is the backstop
    with pytest.raises(SafeholdError) as ei:
        VpdqHasher(max_frames=5, ffprobe_path="", tmp_dir=str(tmp_path)).hash_bytes(videos["long"])
    assert ei.value.code == "media.too_large"
    # a hash that takes too long is killed, not waited for
    with pytest.raises(SafeholdError) as ei:
        VpdqHasher(timeout_seconds=0.01, tmp_dir=str(tmp_path)).hash_bytes(videos["a"])
    assert ei.value.code == "media.too_large"
    with pytest.raises(SafeholdError) as ei:
        VpdqHasher(max_bytes=100, tmp_dir=str(tmp_path)).hash_bytes(videos["a"])
    assert ei.value.code == "media.too_large"
    with pytest.raises(SafeholdError) as ei:
        VpdqHasher(max_pixels=100 * 100, tmp_dir=str(tmp_path)).hash_bytes(videos["a"])
    assert ei.value.code == "media.too_large"
    assert os.listdir(tmp_path) == []
