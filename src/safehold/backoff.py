"""Retry delays shared by everything that calls out (webhooks, the CyberTipline)."""

from __future__ import annotations

import datetime as dt
import random


def retry_delay(attempts: int, base: float, cap: float) -> dt.timedelta:
    """``base × 2^(attempts-1)`` seconds, capped at ``cap``, with ±20 % jitter so the retries of one outage do not
    all arrive in step."""
    delay = min(base * 2 ** (attempts - 1), cap)
    return dt.timedelta(seconds=delay * random.uniform(0.8, 1.2))
