"""What a server process sets on itself once ready (safehold.runtime.settle_heap), checked in a fresh interpreter:
it changes the process's collector for good."""

from __future__ import annotations

import json
import subprocess
import sys

from safehold.runtime import YOUNG_THRESHOLD


def test_a_settled_heap_is_frozen_and_collected_young_less_often():
    code = (
        "import gc, json; from safehold.runtime import settle_heap; before = gc.get_threshold(); settle_heap(); "
        "print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count()]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after, frozen = json.loads(out)
    assert after == [YOUNG_THRESHOLD, *before[1:]] and YOUNG_THRESHOLD > before[0]
    assert frozen > 0
