"""``safehold live watch``: a pull the operator has not allowed is refused with its code before ffmpeg starts."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_watch_refuses_a_stream_outside_the_allowed_networks(cli):
    result = cli("live", "watch", "rtmp://127.0.0.1/live/s1", "--id", "s1", code=2)
    assert "live.pull_not_allowed" in result.stderr
