"""Nothing the console sends a browser loads from another host: no CDN, web font or remote image in any template
or static file. (The browser tests also block every non-loopback request while they drive the console.)"""

from __future__ import annotations

import re

import pytest

from safehold.web.render import HERE

#: What makes a browser fetch: an attribute holding a URL, a CSS url() or @import, a script's fetch or import.
LOADS = re.compile(
    r"""(?: \b(?:src|href|action|srcset|poster|data) \s*=\s* ["']?   # an attribute holding a URL
          | url\( \s* ["']? | @import \s+ ["']?                     # CSS
          | \bfetch\( \s* ["'`] | \bimport \s*\(? \s* ["'`]           # script
        ) (?:https?:)?//""",
    re.I | re.X,
)
FILES = sorted(p for folder in ("templates", "static") for p in (HERE / folder).iterdir() if p.is_file())


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_file_loads_from_another_host(path):
    text = path.read_text(encoding="utf-8")
    assert not LOADS.search(text), LOADS.search(text).group(0)


def test_the_check_catches_what_it_is_for():
    for loads in ('<link href="https://fonts.example/css">', "<script src='//cdn.example/x.js'>",
                  "a { background: url(https://x.example/a.png) }", '@import "https://x.example/a.css";'):  # fmt: skip
        assert LOADS.search(loads), loads
    assert not LOADS.search('<svg xmlns="http://www.w3.org/2000/svg">')
    assert not LOADS.search('<input type="url" placeholder="https://platform.example/safehold">')
