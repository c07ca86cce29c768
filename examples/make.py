"""Regenerate the quick start's example files (docs/quickstart.md): run ``.venv/bin/python examples/make.py``.

Every picture is drawn here from a fixed seed — a smooth colour background with a few coloured shapes — so
the files are benign, tiny and the same on every run (with the same Pillow). Nothing here is real material.

- ``known/``: three pictures to put in a bank ("known material" in the walk-through);
- ``uploads/``: what a platform might receive: a resized, re-encoded copy of ``known/shapes-1.jpg`` (matches),
  a harmless meme that an imported partner list flags by mistake (matches until allow-listed), an unrelated
  picture (no match) and a damaged JPEG (unhashable);
- ``hashes.csv``, ``md5s.txt``, ``ncmec-entries.xml``: hash lists in the three import formats, made from pictures
  generated here and not shipped (plus the meme's PDQ in ``hashes.csv``);
- ``urls.csv``: a URL list for a URL bank (URLs as written, and one already hashed);
- ``my-terms.csv``: a term list of invented words, with the ``# source:`` line its ``source`` column needs.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

from safehold.signals import registry
from safehold.signals.url import url_hash

HERE = Path(__file__).resolve().parent
SIZE = (240, 180)


def shapes(seed: int, size: tuple[int, int] = SIZE) -> Image.Image:
    """A picture of coloured shapes on a smooth background, the same for the same seed. Ten shapes give PDQ
    enough edges to hash well (quality above 50); a flatter picture would be refused as featureless."""
    rng = random.Random(seed)
    grid = Image.new("RGB", (4, 3))
    grid.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(12)])
    img = grid.resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    w, h = size
    for _ in range(10):
        x0, y0 = rng.randrange(w - 20), rng.randrange(h - 20)
        box = [x0, y0, x0 + rng.randrange(15, w // 3), y0 + rng.randrange(15, h // 3)]
        colour = tuple(rng.randrange(256) for _ in range(3))
        [draw.ellipse, draw.rectangle][rng.randrange(2)](box, fill=colour)
    return img


def jpeg(img: Image.Image, quality: int = 80) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def hashes(data: bytes) -> dict[str, str]:
    """The signal values Safehold computes for a picture (as ``safehold hash`` prints them)."""
    return {s.type: s.value for s in registry.hash_content(data, pdq_mode="reference").signals}


def write(name: str, data: bytes | str) -> None:
    path = HERE / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    print(f"{path.relative_to(HERE.parent)}  {path.stat().st_size} bytes")


def ncmec_xml(entries: list[tuple[str, dict[str, str]]]) -> str:
    """An NCMEC hash-sharing API v2 ``GET /v2/entries`` answer; member, ids and times are invented."""
    images = "".join(
        f"""
    <image>
      <member id="1000">Example Member</member>
      <timestamp>2024-01-01T00:00:00Z</timestamp>
      <id>{entry_id}</id>
      <classification>A2</classification>
      <fingerprints><md5>{h["md5"]}</md5><sha1>{h["sha1"]}</sha1><pdq>{h["pdq"]}</pdq></fingerprints>
    </image>"""
        for entry_id, h in entries
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Example only: pictures of coloured shapes made by examples/make.py, not real list content. -->
<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">
  <images count="{len(entries)}" maxTimestamp="2024-01-01T00:00:00Z">{images}
  </images>
</queryResult>
"""


def main() -> None:
    known = {n: jpeg(shapes(n)) for n in (1, 2, 3)}
    for n, data in known.items():
        write(f"known/shapes-{n}.jpg", data)

    copy = shapes(1).resize((168, 126), Image.LANCZOS)  # 70 %, re-encoded at a lower quality
    write("uploads/copy-of-shapes-1.jpg", jpeg(copy, quality=60))
    meme = jpeg(shapes(7))
    write("uploads/meme.jpg", meme)
    write("uploads/holiday.jpg", jpeg(shapes(8)))
    write("uploads/damaged.jpg", jpeg(shapes(9))[:1500])  # cut short: the decoder cannot finish it

    listed = {n: hashes(jpeg(shapes(n))) for n in range(20, 26)}  # pictures only the hash lists know
    csv_rows = [f"pdq,{listed[20]['pdq']},A1,partner-1017,", f"md5,{listed[21]['md5']},B1,partner-1018,"]
    csv_rows.append(f"pdq,{hashes(meme)['pdq']},B2,partner-1019,flagged by a partner")
    write("hashes.csv", "signal_type,value,category,external_id,note\n" + "\n".join(csv_rows) + "\n")
    write("md5s.txt", "".join(f"{listed[n]['md5']}\n" for n in (22, 23)))
    write("ncmec-entries.xml", ncmec_xml([(f"example-{n}", listed[n]) for n in (24, 25)]))

    write(
        "urls.csv",
        "signal_type,value,category,note\n"
        "url,bad.example.net/,B1,the whole site\n"
        "url,http://files.example.org/shared/,B1,one folder and everything under it\n"
        f"url,{url_hash('trade.example.com/')},B1,a partner's entry: already hashed\n",
    )
    write(
        "my-terms.csv",
        "# house term list: invented words standing in for a platform's own slang\n"
        "# source: house = our own review of user reports (example)\n"
        "term,category,severity,language,source\n"
        "zorblat pack,csam,3,en,house\n"
        "quendle,minor_ambiguous,1,en,house\n",
    )


if __name__ == "__main__":
    main()
