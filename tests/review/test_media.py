"""Previews hold no detail (tiny, greyscale, blurred); metadata is plain JSON; content types come from bytes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from safehold.review import media
from tests.media import H264, encode, ffmpeg, jpeg, photo


def test_image_preview_is_small_grey_and_holds_no_detail():
    data = jpeg(3, (1200, 800))
    out, ctype = media.preview(data, "image", "x.jpg")
    assert ctype == "image/jpeg"
    img = Image.open(io.BytesIO(out))
    assert img.mode == "L" and max(img.size) == media.PREVIEW_SIZE and img.size[0] > img.size[1]
    # Fine detail (a strong pixel-level pattern over the same picture) changes nothing in the preview.
    base = 60 + np.asarray(photo(3, (1200, 800)), dtype=np.int16) // 2  # 60..187: room for the pattern
    pattern = np.where(np.indices(base.shape[:2]).sum(axis=0) % 2 == 0, 60, -60)[..., None]

    def grey_preview(pixels) -> np.ndarray:
        png = encode(Image.fromarray(pixels.astype(np.uint8), "RGB"), "PNG")
        return np.asarray(Image.open(io.BytesIO(media.preview(png, "image")[0])), dtype=np.float64)

    assert np.abs(grey_preview(base) - grey_preview(base + pattern)).mean() < 2


def test_other_modes_and_formats_preview():
    for img, fmt in ((photo(4).convert("RGBA"), "PNG"), (photo(5).convert("P"), "GIF"), (photo(6), "WEBP")):
        out, ctype = media.preview(encode(img, fmt), "image")
        assert ctype == "image/jpeg" and Image.open(io.BytesIO(out)).mode == "L"


def test_undecodable_media_gets_a_placeholder():
    for data, what in ((b"\xff\xd8\xff" + b"\x00" * 200, "image"), (b"not media at all", None)):
        out, ctype = media.preview(data, what)
        assert ctype == "image/png" and out == media.placeholder(media.kind(data, what))


def test_video_preview_is_its_first_frame_blurred(tmp_path):
    data = ffmpeg(tmp_path / "v.mp4", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=1", *H264)
    out, ctype = media.preview(data, "video", "v.mp4")
    assert ctype == "image/jpeg"
    img = Image.open(io.BytesIO(out))
    assert img.mode == "L" and max(img.size) <= media.PREVIEW_SIZE
    assert media.content_type(data) == "video/mp4"
    assert media.metadata(data, "video")["streams"][0]["codec_name"] == "h264"


def test_content_types():
    assert media.content_type(jpeg(1)) == "image/jpeg"
    assert media.content_type(encode(photo(1), "PNG")) == "image/png"
    assert media.content_type(b"<svg xmlns='http://www.w3.org/2000/svg'/>") == "application/octet-stream"


def test_exif_metadata_is_plain_json():
    exif = Image.Exif()
    exif[0x010F] = "ExampleCam"  # Make
    exif[0x0110] = "Model 1"  # Model
    exif[0x927C] = b"\x01\x02" * 400  # MakerNote: binary, summarised
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (51.0, 30.0, 0.0)
    buf = io.BytesIO()
    photo(7).save(buf, "JPEG", exif=exif)
    out = media.metadata(buf.getvalue(), "image")
    assert out["media"] == "image" and out["width"] == 640 and out["format"] == "JPEG"
    assert out["exif"]["Make"] == "ExampleCam" and out["exif"]["Model"] == "Model 1"
    assert out["gps"]["GPSLatitudeRef"] == "N" and out["gps"]["GPSLatitude"] == [51.0, 30.0, 0.0]
    import json

    json.dumps(out)  # plain JSON throughout
    assert media.metadata(b"junk", None) == {"media": "other", "content_type": "application/octet-stream", "size": 4}
