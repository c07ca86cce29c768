"""Keyframes and scene changes of a video (safehold.signals.keyframes): where a picture shown inside a video is
found, how many frames a minute at most, and hostile files refused with the video hash's error codes."""

from __future__ import annotations

import pytest

from safehold.errors import SafeholdError
from safehold.signals.keyframes import KeyframeSampler
from safehold.signals.pdq import hamming, hash_image
from tests.media import H264, ellipses, ffmpeg, jpeg


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("keyframes")
    (d / "picture.png").write_bytes(ellipses())
    src = ("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=8")
    shown = ("-i", str(d / "picture.png"), "-filter_complex", "[0][1]overlay=enable='between(t,3,5)'")
    shown_video = ffmpeg(d / "shown.mp4", *src, *shown, *H264)
    return {
        "shown": shown_video,
        "all_keyframes": ffmpeg(d / "k.mp4", *src, *H264, "-g", "1"),
        "truncated": shown_video[: len(shown_video) // 2],
    }


def test_a_picture_shown_inside_a_video_is_a_frame_with_its_timestamp(videos):
    banked = hash_image(ellipses())[0]
    frames = list(KeyframeSampler().frames(videos["shown"]))
    near = [f.timestamp for f in frames if hamming(hash_image(f.image)[0], banked) <= 31]
    assert near and 2.9 <= near[0] <= 3.5, [(f.timestamp, hamming(hash_image(f.image)[0], banked)) for f in frames]
    assert frames[0].timestamp == 0.0 and all(max(f.image.size) <= 512 for f in frames)
    assert [f.timestamp for f in frames] == sorted(f.timestamp for f in frames)


@pytest.mark.parametrize("scenes", [True, False])
def test_frames_per_minute_are_bounded(videos, scenes):
    # Every frame is a keyframe (80 of them, 10 a second): at most one each quarter second goes through the pipe,
    # and at most 6 in any minute are given.
    times = [f.timestamp for f in KeyframeSampler(max_per_minute=6, scenes=scenes).frames(videos["all_keyframes"])]
    assert times[0] == 0.0 and len(times) == 6, times
    assert all(b - a >= 0.25 - 1e-6 for a, b in zip(times, times[1:], strict=False))
    dense = [f.timestamp for f in KeyframeSampler(max_per_minute=600, scenes=scenes).frames(videos["all_keyframes"])]
    assert 20 <= len(dense) <= 33, dense  # 8 s at one frame each 0.3 s (the first frame at or after 0.25 s)


def test_a_picture_right_after_another_frame_still_gets_its_frame(tmp_path):
    # A cut at 2 s, the picture at 2.5 s for 2 s: an even spacing of 2 s would have lost it.
    (tmp_path / "p.png").write_bytes(ellipses())
    args = ("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=3", "-f", "lavfi",
            "-i", "smptebars=size=160x120:rate=10:duration=4", "-i", str(tmp_path / "p.png"), "-filter_complex",
            "[0][1]concat=n=2:v=1:a=0[v];[v][2]overlay=enable='between(t,3.5,5.5)'")  # fmt: skip
    video = ffmpeg(tmp_path / "v.mp4", *args, *H264)
    banked = hash_image(ellipses())[0]
    frames = list(KeyframeSampler().frames(video))
    assert any(3.4 <= f.timestamp <= 3.8 and hamming(hash_image(f.image)[0], banked) <= 31 for f in frames), [
        (f.timestamp, hamming(hash_image(f.image)[0], banked)) for f in frames
    ]


@pytest.mark.parametrize(
    ("content", "options", "code"),
    [
        ("truncated", {}, "media.corrupt"),
        (b"\x00not a video at all" * 50, {}, "media.unsupported_format"),
        ("image", {}, "media.unsupported_format"),
        ("shown", {"max_pixels": 160 * 119}, "media.too_large"),  # frames too big
        ("shown", {"max_duration_seconds": 5}, "media.too_large"),  # too long
        ("shown", {"timeout_seconds": 0.0001}, "media.too_large"),  # wall-clock limit
        ("shown", {"max_bytes": 1000}, "media.too_large"),
    ],
)
def test_hostile_files_are_refused(videos, content, options, code):
    data = jpeg(1) if content == "image" else videos[content] if isinstance(content, str) else content
    with pytest.raises(SafeholdError) as e:
        list(KeyframeSampler(**options).frames(data))
    assert e.value.code == code, e.value.message


def test_closing_early_stops_the_decoder(videos):
    frames = KeyframeSampler().frames(videos["shown"])
    assert next(frames).timestamp == 0.0
    frames.close()  # ffmpeg is killed and the private copy removed; nothing left behind to wait for
