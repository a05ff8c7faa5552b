"""The scheduler on a fake clock: order, replacement, one step per key at a time, bounded memory."""

from __future__ import annotations

import asyncio

from airbyte_watch.runtime.scheduler import Scheduler


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def turn() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_due_keys_run_in_time_order_and_not_before() -> None:
    clock, ran = Clock(), []

    async def step(key: object) -> None:
        ran.append(key)

    s = Scheduler(step, clock=clock)
    s.schedule("b", 20)
    s.schedule("a", 10)
    await s.run_due()
    await turn()
    assert ran == [] and s.next_due() == 110.0
    clock.now = 115.0
    await s.run_due()
    await turn()
    assert ran == ["a"] and s.next_due() == 120.0
    clock.now = 120.0
    await s.run_due()
    await turn()
    assert ran == ["a", "b"] and s.next_due() is None and len(s) == 0


async def test_a_new_plan_replaces_the_old_and_unschedule_removes_it() -> None:
    clock, ran = Clock(), []

    async def step(key: object) -> None:
        ran.append(key)

    s = Scheduler(step, clock=clock)
    s.schedule("a", 50)
    s.schedule("a", 5)
    s.schedule("b", 5)
    s.unschedule("b")
    clock.now = 106.0
    await s.run_due()
    await turn()
    assert ran == ["a"]
    clock.now = 200.0
    await s.run_due()
    await turn()
    assert ran == ["a"]  # the replaced plan at +50 did not run a second time


async def test_a_key_due_while_its_step_runs_starts_when_that_step_ends() -> None:
    clock, gate, ran = Clock(), asyncio.Event(), []

    async def step(key: object) -> None:
        ran.append(("start", key))
        await gate.wait()
        ran.append(("end", key))

    s = Scheduler(step, clock=clock)
    s.schedule("a", 0)
    await s.run_due()
    await turn()
    s.schedule("a", 0)  # e.g. an edit arrives while the step runs
    await s.run_due()
    await turn()
    assert ran == [("start", "a")] and s.running == 1
    gate.set()
    await turn()
    await s.run_due()
    await turn()
    assert ran == [("start", "a"), ("end", "a"), ("start", "a"), ("end", "a")]


async def test_concurrency_is_bounded() -> None:
    clock, gate, running, most = Clock(), asyncio.Event(), [0], [0]

    async def step(key: object) -> None:
        running[0] += 1
        most[0] = max(most[0], running[0])
        await gate.wait()
        running[0] -= 1

    s = Scheduler(step, concurrency=3, clock=clock)
    for i in range(10):
        s.schedule(i, 0)
    dispatch = asyncio.ensure_future(s.run_due())
    await turn()
    assert most[0] == 3 and not dispatch.done()
    gate.set()
    await dispatch
    await turn()
    assert most[0] == 3 and running[0] == 0


async def test_a_failing_step_is_retried_later_not_lost() -> None:
    clock, calls = Clock(), []

    async def step(key: object) -> None:
        calls.append(key)
        raise RuntimeError("bug")

    s = Scheduler(step, clock=clock)
    s.schedule("a", 0)
    await s.run_due()
    await turn()
    assert calls == ["a"] and s.next_due() == 130.0


def test_the_heap_does_not_keep_what_was_unscheduled() -> None:
    async def step(key: object) -> None:
        pass

    s = Scheduler(step, clock=Clock())
    for i in range(10_000):
        s.schedule(i, 3600)
        s.schedule(i, 1800)  # a replaced plan leaves a stale entry
    for i in range(10_000):
        s.unschedule(i)
    assert len(s) == 0 and s.heap_size <= 64
