"""A per-server request budget shared by every watch polling that server.

aiolimiter's leaky bucket does the work. It serves waiters in arrival order, and a request
cancelled while it waits (its watch deleted, the operator stopping) takes no capacity: the
hand-written limiter this replaces reserved a slot up front and never gave it back.
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter


class RateLimiter:
    """`rate` requests per second, with bursts of up to `burst` after a quiet spell."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        capacity = max(1.0, burst)  # at least one request fits, however low the rate
        self._bucket = AsyncLimiter(capacity, capacity / rate)

    async def acquire(self) -> None:
        await self._bucket.acquire()
