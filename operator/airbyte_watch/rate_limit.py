"""A per-server request budget shared by every watch polling that server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    """Spaces requests `1/rate` apart, allowing a burst of `burst` after a quiet spell.

    Callers are served in arrival order: each reserves the next free slot, then sleeps until it.
    """

    def __init__(self, rate: float, burst: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate, self.burst = rate, max(1.0, burst)
        self._clock = clock
        self._next = 0.0  # when the next request may go, before the burst allowance

    def reserve(self) -> float:
        """Take a slot; the seconds to wait before using it."""
        now = self._clock()
        self._next = max(self._next, now - (self.burst - 1) / self.rate)
        wait = self._next - now
        self._next += 1 / self.rate
        return max(0.0, wait)

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
