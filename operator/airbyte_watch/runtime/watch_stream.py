"""The AirbyteJobWatch intake: list, then watch from the list's resourceVersion, per scope.

Every event goes straight to `Watches.observe`, which only updates a table and asks for a
step. This replaces kopf's handler machinery, which the operator used for nothing but that
one call: kopf built causes, loggers, patches and a worker task per event. Without it the
operator's all-in CPU in list mode fell by more than a third at 10,000 and 50,000 watches
(README, "Performance and scaling": before and after).

The protocol is Kubernetes' own (client-go's reflector does the same): a watch continues from
the last resourceVersion it saw (events and bookmarks), so a watch the API server ends (every
WATCH_SERVER_TIMEOUT) or a broken connection loses nothing; 410 Gone means that version is too
old, so the scope is listed again, and what the list no longer shows is forgotten (its
DELETED event was lost with the stream).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..kube.client import Gone, KubeError
from .watches import Watches

log = logging.getLogger(__name__)

BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # seconds between attempts after failures in a row
QUIET_END = 1.0  # a watch that ends sooner than this with no event at all counts as a failure


class WatchStream:
    def __init__(self, watches: Watches, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.watches = watches
        self.kube = watches.kube
        self.sleep = sleep

    async def run(self, versions: dict[str | None, str]) -> None:
        """Watch every scope from its list's resourceVersion (from `Watches.relist`), forever."""
        scopes = self.watches.scopes()
        await asyncio.gather(*(self.follow(scope, versions.get(scope, "")) for scope in scopes))

    async def follow(self, scope: str | None, since: str) -> None:
        where = scope or "all namespaces"
        failures = 0
        while True:
            try:
                if not since:  # never listed, or too old: list first
                    since = (await self.watches.relist([scope])).get(scope, "")
                opened, heard = self.watches.monotonic(), False
                log.debug("Watching %s from resourceVersion %s", where, since)
                async for event in self.kube.watch_watches(scope, since):
                    since = str(event.object.get("metadata", {}).get("resourceVersion") or since)
                    failures, heard = 0, True
                    if event.type == "BOOKMARK":
                        continue
                    if event.type in ("ADDED", "MODIFIED", "DELETED"):
                        self.watches.observe(event.type, event.object)
                if heard or self.watches.monotonic() - opened >= QUIET_END:
                    continue  # the API server ended the watch on time: go on from `since`
                # Ended at once with nothing said (a proxy that closes streams): not a retry storm.
                raise KubeError("the watch ended as soon as it opened")
            except Gone:
                log.info("The watch of %s is too old to continue; listing again", where)
                since = ""
                if failures:  # a list right away is the recovery; a second 410 in a row waits
                    await self._back_off(failures, where, "410 Gone again")
                failures += 1
            except KubeError as exc:
                await self._back_off(failures, where, str(exc))
                failures += 1

    async def _back_off(self, failures: int, where: str, why: str) -> None:
        delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
        log.warning("The watch of %s failed (%s); again in %gs", where, why, delay)
        await self.sleep(delay)
