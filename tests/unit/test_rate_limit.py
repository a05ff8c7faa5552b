from __future__ import annotations

from airbyte_watch.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_are_spaced_at_the_rate_after_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=3, clock=clock)
    waits = [limiter.reserve() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert [round(w, 3) for w in waits[3:]] == [0.1, 0.2, 0.3]


def test_a_quiet_spell_refills_the_burst_but_no_more() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=2, clock=clock)
    limiter.reserve(), limiter.reserve(), limiter.reserve()
    clock.now += 60
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.5]


def test_sustained_load_never_exceeds_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=50, burst=10, clock=clock)
    starts = []
    for _ in range(1000):
        starts.append(clock.now + limiter.reserve())
    span = starts[-1] - starts[0]
    assert (len(starts) - 10) / span <= 50.0001
