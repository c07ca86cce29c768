"""Classifying a video by its sampled frames: few, evenly spread, bounded like the video hash, the video's score
its highest frame's with that frame's time; and the pipeline classifies a video where it classifies an image."""

from __future__ import annotations

import pytest

from safehold.auth.apikeys import Principal
from safehold.classifiers.base import Classification, Score
from safehold.classifiers.registry import FrameClassification, load, video_scores
from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.signals.frames import FrameSampler, sample_times
from tests.media import H264, ffmpeg, jpeg

PLATFORM = Principal(name="platform", role="platform", key_prefix="sh_one")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    # Dark for 3 s, then white for 3 s: the brightest frame is in the second half.
    dark_then_bright = ffmpeg(
        d / "db.mp4", "-f", "lavfi", "-i", "color=c=0x101010:size=320x240:rate=10:duration=3",
        "-f", "lavfi", "-i", "color=c=white:size=320x240:rate=10:duration=3",
        "-filter_complex", "[0][1]concat=n=2:v=1", *H264,
    )  # fmt: skip
    wide = ffmpeg(d / "w.mp4", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=10", "-t", "20", *H264)
    return {"dark_then_bright": dark_then_bright, "wide": wide}


def test_sample_times_are_the_middles_of_equal_parts_at_most_one_a_second():
    assert sample_times(20.0, 4) == [2.5, 7.5, 12.5, 17.5]
    assert sample_times(3.0, 16) == [0.5, 1.5, 2.5]
    assert sample_times(0.4, 16) == [0.2]
    assert sample_times(None, 16) == [0.0]


def test_frames_are_few_spread_and_scaled_down(videos):
    frames = list(FrameSampler(count=5, side=256).frames(videos["wide"]))
    assert [f.timestamp for f in frames] == [2.0, 6.0, 10.0, 14.0, 18.0]
    assert all(f.image.size == (456, 256) and f.image.mode == "RGB" for f in frames)
    [small] = FrameSampler(count=1, side=720).frames(videos["dark_then_bright"])
    assert small.image.size == (320, 240)  # never scaled up


def test_a_video_beyond_the_bounds_is_refused_before_decoding(videos):
    with pytest.raises(SafeholdError) as exc:
        list(FrameSampler(max_duration_seconds=10).frames(videos["wide"]))
    assert exc.value.code == "media.too_large" and exc.value.detail["max_duration_seconds"] == 10
    with pytest.raises(SafeholdError) as exc:
        list(FrameSampler(max_pixels=640 * 480).frames(videos["wide"]))
    assert exc.value.code == "media.too_large" and exc.value.detail["max_pixels"] == 640 * 480
    with pytest.raises(SafeholdError) as exc:
        list(FrameSampler(max_bytes=1000).frames(videos["wide"]))
    assert exc.value.code == "media.too_large"


def test_damaged_or_wrong_content_is_refused_with_the_scans_codes(videos):
    half = videos["wide"][: len(videos["wide"]) // 3]
    for data, codes in (
        (half, {"media.corrupt"}),
        (jpeg(1), {"media.unsupported_format"}),
        (b"", {"media.unsupported_format"}),
    ):
        with pytest.raises(SafeholdError) as exc:
            list(FrameSampler().frames(data))
        assert exc.value.code in codes


def test_the_videos_score_is_its_highest_frames_with_its_time(videos):
    found = load(["test_brightness"], video_frames=6)
    [c] = found.classify_video(videos["dark_then_bright"])
    [s] = c.scores
    assert s.score > 0.9 and s.detail["timestamp"] >= 3.0 and s.detail["frames"] == 6
    assert c.hits == (s,)
    frames = list(found.classify_frames(videos["dark_then_bright"]))
    assert [f.timestamp for f in frames] == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    brightness = {f.timestamp: f.classifications[0].scores[0].score for f in frames}
    assert brightness[2.5] < 0.1 < 0.9 < brightness[3.5]  # each frame is the one shown at its time


def test_video_scores_takes_each_labels_maximum():
    def frame(t, a, b):
        return FrameClassification(t, [Classification("two", "1", 0.5, (Score("a", a), Score("b", b)))])

    [c] = video_scores([frame(0.5, 0.2, 0.9), frame(1.5, 0.7, 0.1)])
    assert {s.label: (s.score, s.detail["timestamp"]) for s in c.scores} == {"a": (0.7, 1.5), "b": (0.9, 0.5)}
    assert video_scores([]) == []


def test_a_bad_video_is_not_classified_and_a_busy_server_says_so(videos):
    found = load(["test_brightness"])
    assert found.classify_video(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200) == []
    with pytest.raises(SafeholdError) as exc:
        found.classify_file(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, "x.mp4")
    assert exc.value.code == "media.corrupt"
    from safehold.signals.budget import WorkBudget

    slots = WorkBudget(1, wait=0, what="hashing videos")
    busy = load(["test_brightness"], video_slots=slots)
    with slots.hold(1), pytest.raises(SafeholdError) as exc:
        busy.classify_video(videos["dark_then_bright"])
    assert exc.value.code == "media.busy"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_pipeline_classifies_a_videos_frames(tmp_path, database_url, videos):
    from safehold.services import Services

    svc = Services(Settings(home=tmp_path / "home", database_url=database_url, classifiers=["test_brightness"]))
    try:
        data = videos["dark_then_bright"]
        out = svc.events.scanned(PLATFORM, svc.scans.scan_bytes(data, filename="v.mp4"), data, content_id="v1")
        [ref] = out["cases"]
        [sig] = svc.cases.get(ref["id"])["signals"]
        assert sig["source"] == "classifier" and sig["category"] == "test_bright"
        assert sig["detail"]["reasons"]["timestamp"] >= 3.0
    finally:
        svc.close()
