"""The actions tests' local webhook receiver, for the workers' tests."""

from __future__ import annotations

import pytest

from tests.actions.conftest import Receiver


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()
