"""Upload forms of the scanning routes, parsed into memory (safehold.api.multipart): limits and malformed bodies."""

from __future__ import annotations

import pytest

from tests.media import jpeg

BOUNDARY = "b0undary"
HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def body(*parts: bytes, end: bool = True) -> bytes:
    out = b"".join(b"--" + BOUNDARY.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    return out + (b"--" + BOUNDARY.encode() + b"--\r\n" if end else b"")


def file_part(data: bytes, field: str = "file", filename: str = "a.jpg") -> bytes:
    head = f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
    return head.encode() + b"Content-Type: image/jpeg\r\n\r\n" + data


def text_part(name: str, value: bytes) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value


def post(client, key, path: str, content: bytes, headers=HEADERS):
    return client.post(path, content=content, headers={**key, **headers})


def test_a_file_and_its_fields_arrive_whole(client, keys):
    data = jpeg(3)
    r = post(client, keys["platform"], "/v1/scan", body(file_part(data), text_part("content_id", b"c-1")))
    assert r.status_code == 200, r.text
    assert r.json()["verdict"] == "no_match" and r.json()["media"] == "image"
    r = post(client, keys["platform"], "/v1/hash", body(file_part(data)))
    assert r.status_code == 200 and r.json()["size"] == len(data)


@pytest.mark.parametrize(
    ("content", "headers", "why"),
    [
        (body(file_part(b"x" * 100)), {"Content-Type": "multipart/form-data"}, "boundary"),
        (body(file_part(b"x")), {"Content-Type": "multipart/form-data; boundary=" + "a" * 300}, "boundary"),
        (body(file_part(jpeg(3)), end=False)[:-40], HEADERS, "middle of a part"),
        (body(b'Content-Disposition: attachment; name="file"\r\n\r\nxx'), HEADERS, "form-data"),
        (body(text_part("content_id", b"\xff\xfe")), HEADERS, "UTF-8"),
        (body(*[text_part(f"f{i}", b"v") for i in range(40)]), HEADERS, "text fields"),
        (body(text_part("content_id", b"v" * (1024 * 1024 + 1))), HEADERS, "longer than"),
        (body(file_part(b"a"), file_part(b"b")), HEADERS, "more than 1 files"),
    ],
)
def test_malformed_or_oversized_forms_are_400_with_a_stable_code(client, keys, content, headers, why):
    r = post(client, keys["platform"], "/v1/scan", content, headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "request.invalid_multipart" and why in r.json()["error"]["message"]


def test_a_batch_answers_each_file_even_when_one_is_too_large(client, keys, svc):
    svc.settings.max_upload_bytes = 80_000
    big, small = b"\xff\xd8\xff" + b"\0" * 90_000, jpeg(4)
    r = post(client, keys["platform"], "/v1/scan/batch", body(file_part(big, "files"), file_part(small, "files")))
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert first["error"]["code"] == "media.too_large" and first["verdict"] is None
    assert second["verdict"] == "no_match", second


def test_an_empty_file_and_a_missing_file_are_told_apart(client, keys):
    r = post(client, keys["platform"], "/v1/scan", body(file_part(b"")))
    assert r.status_code == 400 and r.json()["error"]["code"] == "media.empty"
    r = post(client, keys["platform"], "/v1/scan", body(text_part("content_id", b"c-1")))
    assert r.status_code == 400 and r.json()["error"]["code"] == "request.missing_file"


def test_a_file_name_in_another_encoding_is_kept_as_a_label(client, keys):
    part = b'Content-Disposition: form-data; name="file"; filename="\xe9t\xe9.jpg"\r\n\r\n' + jpeg(3)
    r = post(client, keys["platform"], "/v1/scan", body(part))
    assert r.status_code == 200 and r.json()["media"] == "image", r.text


def test_a_file_field_sent_without_a_file_name_is_still_the_file(client, keys):
    """curl -F 'file=<photo.jpg' and httpx files={"file": (None, data)} send no filename."""
    r = post(client, keys["platform"], "/v1/scan", body(text_part("file", jpeg(3))))
    assert r.status_code == 200 and r.json()["media"] == "image", r.text
