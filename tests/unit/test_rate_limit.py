"""The per-server request budget, timed on the real event loop with short intervals."""

from __future__ import annotations

import asyncio
import time

import pytest
from airbyte_watch.airbyte.rate_limit import RateLimiter


async def timed(limiter: RateLimiter, n: int) -> list[float]:
    start = time.monotonic()
    at = []
    for _ in range(n):
        await limiter.acquire()
        at.append(time.monotonic() - start)
    return at


async def test_a_burst_goes_at_once_then_requests_are_spaced_at_the_rate() -> None:
    at = await timed(RateLimiter(rate=20, burst=3), 6)
    assert at[2] < 0.03, "the burst is not held back"
    assert at[5] >= 3 / 20 * 0.9, "after the burst, one request per 1/rate"


async def test_sustained_load_never_exceeds_the_rate() -> None:
    at = await timed(RateLimiter(rate=200, burst=10), 50)
    assert (50 - 10) / at[-1] <= 200 * 1.05


async def test_a_request_cancelled_while_it_waits_gives_its_slot_back() -> None:
    """A poll cancelled in the queue (its watch deleted, the operator stopping) must not push
    every later request back by one slot."""
    limiter = RateLimiter(rate=5, burst=1)
    await limiter.acquire()  # the burst of one is used: the next slot is 0.2 s away
    start = time.monotonic()
    doomed = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    doomed.cancel()
    await limiter.acquire()
    waited = time.monotonic() - start
    assert 0.15 < waited < 0.33, f"waited {waited:.2f}s: one slot (0.2 s), not two (0.4 s)"


def test_the_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0)
