"""What one replica runs beside kopf: the Lease, the first list, the step scheduler and the
maintenance loop, started by kopf's startup handler and stopped by its cleanup handler.

kopf takes the AirbyteJobWatch events in (handlers.py) and hands each to `Watches.observe`;
everything that acts on a watch runs here, in one scheduler, so each watch keeps one owner.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

from ..airbyte.client import ClientPool
from ..kube.client import KubeClient, KubeError
from ..kube.leadership import Leadership
from ..monitoring.endpoints import build_app, serve
from ..monitoring.metrics import Metrics
from .watches import Watches

log = logging.getLogger(__name__)


@dataclass
class Service:
    kube: KubeClient
    clients: ClientPool
    watches: Watches
    metrics: Metrics
    leadership: Leadership | None = None
    # Set when the process must end: leadership lost, or a task of ours ended (a bug). kopf's
    # operator stops on it (its stop flag); `failed` then makes the exit code 1.
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False
    listed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _endpoints: object | None = None
    _stopped: bool = False

    async def serve_endpoints(self, host: str, port: int) -> None:
        """/metrics, /healthz, /readyz: from the start, so a standby answers too."""
        app = build_app(self.metrics.registry, ready=self.ready, alive=self.alive, role=self.role)
        self._endpoints = await serve(app, host, port)

    async def start(self) -> None:
        """Acquire the Lease (a standby waits here, and kopf's intake with it: kopf starts its
        watchers only after the startup handlers), wait for the CRD, list every watch, then run
        the scheduler and maintenance. Returns once the intake may begin."""
        if self.leadership is not None:
            await self.leadership.acquire()
            self._spawn(self.leadership.keep(), bug=False)
        await self.kube.wait_for_crd()
        await self._list_until_done()
        settle_gc()
        self.watches.listed = True
        # kopf's listing then makes a memory per watch (several objects each, which the
        # collector's full scans would walk again and again at 50,000 watches): those leave
        # the scans too, once it is in.
        self.watches.on_listing_taken_in = settle_gc
        self.watches.expect_listing()
        self.listed.set()
        self._spawn(self.watches.scheduler.run())
        self._spawn(self.watches.maintain())
        log.info("airbyte-watch serves %d watches", len(self.watches.known))

    async def _list_until_done(self) -> None:
        """Every existing watch is read before the intake starts, so readiness means "all
        watches are known" and their first polls are spread (kopf's own first list gives no
        sign of its end). The same list, repeated every --resync-period, catches deletes no
        event told, which kopf does not."""
        while True:
            try:
                await self.watches.relist()
                return
            except KubeError as exc:  # seeing a watch twice is harmless: the list starts again
                log.warning("Cannot list the existing watches yet (%s); retrying in 5s", exc)
                await asyncio.sleep(5)

    def _spawn(self, work: Awaitable[None], bug: bool = True) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.append(task)
        task.add_done_callback(lambda t: self._ended(t, bug))

    def _ended(self, task: asyncio.Task[None], bug: bool) -> None:
        if task.cancelled() or self._stopped:
            return
        if bug and task.exception() is not None:
            # A bug: exit, so that the pod restarts instead of serving half an operator.
            log.error("%s ended unexpectedly", task.get_coro().__qualname__, exc_info=task.exception())
        # Lost leadership ends the keeper: stop at once (controller-runtime's convention: exit,
        # restart as a standby).
        self.failed = True
        self.stop.set()

    async def close(self) -> None:
        """Stop polling, then give the Lease up, so that a standby takes over at once. Safe to
        call twice (kopf's cleanup handler, then the CLI's own `finally`)."""
        if self._stopped:
            return
        self._stopped = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.leadership is not None and self.leadership.leading:
            await self.leadership.release()
        await self.watches.feeds.close()
        await self.clients.close()
        await self.kube.close()
        if self._endpoints is not None:
            await self._endpoints.cleanup()  # type: ignore[attr-defined]
        if self.leadership is not None and self.leadership.lost.is_set():
            self.failed = True

    def ready(self) -> bool:
        return self.listed.is_set() or self.standing_by()

    def alive(self) -> bool:
        return not any(t.done() for t in self.tasks)

    def standing_by(self) -> bool:
        """A standby is ready as a standby: it serves nothing until it leads."""
        lead = self.leadership
        return lead is not None and not lead.leading and not lead.lost.is_set()

    def role(self) -> str:
        lead = self.leadership
        if lead is None:
            return "leader (no election)"
        if lead.leading:
            return f"leader of Lease {lead.namespace}/{lead.name}"
        return f"standby for Lease {lead.namespace}/{lead.name} (held by {lead.holder})"


def settle_gc() -> None:
    """Python's cyclic GC rescans every live object as the heap grows: with 10,000 watches it
    was a fifth of the CPU of a cold start (measured with gc.callbacks). The watches loaded at
    start live on, so they leave the scans (freeze), and young objects are collected in larger
    batches. Garbage without cycles is still freed at once, by reference counting."""
    gc.collect()
    gc.freeze()
