"""One heap of next-poll times for every watch, served by a bounded number of concurrent polls.

Chosen over a kopf daemon per watch: a heap entry costs a few hundred bytes where a daemon
costs a task, its memory and its own sleep, and one place sees every poll (for rate limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        poll: Callable[[Hashable], Awaitable[None]],
        concurrency: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._poll = poll
        self._clock = clock
        self._heap: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, float] = {}  # the live entry per key; heap entries may be stale
        self._seq = itertools.count()
        self._running: set[Hashable] = set()
        self._held: set[Hashable] = set()  # due while their step runs: dispatched when it ends
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._due)

    @property
    def heap_size(self) -> int:
        return len(self._heap)

    @property
    def running(self) -> int:
        return len(self._running)

    def schedule(self, key: Hashable, delay: float) -> None:
        """Poll `key` after `delay` seconds, replacing any earlier plan for it."""
        due = self._clock() + max(0.0, delay)
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        if self._heap[0][2] == key:
            self._wake.set()
        self._compact()

    def unschedule(self, key: Hashable) -> None:
        self._due.pop(key, None)
        self._held.discard(key)
        self._compact()

    def next_due(self) -> float | None:
        """When the earliest planned poll is due (the scheduler's clock), None if none is."""
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # replaced or unscheduled since it was pushed
        return self._heap[0][0] if self._heap else None

    def _compact(self) -> None:
        """Replaced and unscheduled entries stay in the heap until popped; rebuild it when they
        outnumber the live ones, so watches that are gone do not keep memory for days."""
        if len(self._heap) > 2 * len(self._due) + 64:
            self._heap = [(due, next(self._seq), key) for key, due in self._due.items()]
            heapq.heapify(self._heap)

    def is_scheduled(self, key: Hashable) -> bool:
        return key in self._due

    def is_running(self, key: Hashable) -> bool:
        return key in self._running

    async def run(self) -> None:
        try:
            while True:
                await self._dispatch_due()
                delay = self._heap[0][0] - self._clock() if self._heap else 3600.0
                self._wake.clear()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=delay)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run_due(self) -> None:
        """Start every poll that is due (waiting for a free slot if all are busy)."""
        await self._dispatch_due()

    async def _dispatch_due(self) -> None:
        while self._heap and self._heap[0][0] <= self._clock():
            due, _, key = heapq.heappop(self._heap)
            if self._due.get(key) != due:
                continue  # replaced or unscheduled since it was pushed
            if key in self._running:
                # Never two steps of one watch at once: this one starts when the running one ends.
                self._held.add(key)
                continue
            del self._due[key]
            await self._slots.acquire()
            self._running.add(key)
            task = asyncio.create_task(self._run_one(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_one(self, key: Hashable) -> None:
        try:
            await self._poll(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug, not an Airbyte fault (those are values): keep the watch, try again later.
            log.exception("Poll of %s failed unexpectedly; retrying in 30s", key)
            self.schedule(key, 30.0)
        finally:
            self._running.discard(key)
            self._slots.release()
            if key in self._held:
                self._held.discard(key)
                if key in self._due:
                    heapq.heappush(self._heap, (self._due[key], next(self._seq), key))
                    self._wake.set()
