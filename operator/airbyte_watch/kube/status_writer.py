"""Writing a watch's outcome: its Events first, then its status, each exactly once.

Each Event's name is derived from the watch's uid, the reason, and `status.transitions`, a
counter that only this writer moves (once per write that carries Events). A crash, a failed
Event or a failed status patch leaves the counter where it was, so the retry derives the same
names and the API server refuses the copies (409); the next transition starts from the next
count, so a status that recurs (running, outage, running, outage) still announces each time.
Nobody else moves the counter: not our finalizer patch, not anyone's label edit.

An Event that could not be posted (the API server unavailable) holds the status back: the
step is retried, and the Event with it, instead of the status moving on without it.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..core import decision
from ..core.decision import Event
from ..core.text import MESSAGE_LIMIT, clean
from ..monitoring.metrics import Metrics
from ..runtime.table import Watch, compact
from .client import KubeClient, KubeError

log = logging.getLogger(__name__)

TRANSITIONS = "transitions"  # the status field that names Events


class Written(enum.Enum):
    DONE = "done"
    RETRY = "retry"  # the API server could not take it now; try the step again later
    GONE = "gone"  # the object is deleted, or another object now has its name


class StatusWriter:
    def __init__(self, kube: KubeClient, metrics: Metrics, clock: Callable[[], Any],
                 secrets: Callable[[], Iterable[str]] = tuple) -> None:  # fmt: skip
        self.kube = kube
        self.metrics = metrics
        self.clock = clock
        self.secrets = secrets  # credential values that must never be written

    async def write(self, watch: Watch, status: Mapping[str, Any], events: Iterable[Event]) -> Written:
        if watch.deleted:
            return Written.GONE
        secrets = list(self.secrets())
        new = scrub_status(status, secrets)
        events = [Event(e.type, e.reason, clean(e.message, secrets, MESSAGE_LIMIT)) for e in events]
        if events:
            new[TRANSITIONS] = int(watch.status.get(TRANSITIONS) or 0) + 1
        for event in events:
            final = event.reason in decision.FINAL_REASONS
            name = final_event_name(watch) if final else event_name(watch, event.reason)
            try:
                created = await self.kube.post_event(
                    watch.ref, event.type, event.reason, event.message, self.clock(), name=name
                )
                announced = (
                    None if created or not final else await self.kube.read_event(watch.namespace, name)
                )
            except KubeError as exc:
                log.warning("%s/%s: event %s not posted (%s); retrying", *watch.key, event.reason, exc)
                return Written.RETRY
            if created:
                self.metrics.observe_event(event.type, event.reason)
                log.info("%s/%s: %s %s: %s", *watch.key, event.type, event.reason, event.message)
            elif announced and announced.get("reason") != event.reason:
                # An earlier attempt announced another outcome, then crashed or failed to write
                # the status: that outcome stands, never a second one.
                log.info(
                    "%s/%s: keeping the outcome announced before, %s", *watch.key, announced.get("reason")
                )
                reason, message = str(announced.get("reason")), str(announced.get("message", ""))
                new = decision.as_announced(new, reason, message, watch.generation, self.clock())
            if watch.deleted:
                return Written.GONE
        if new == watch.status:
            return Written.DONE
        try:
            landed = await self.kube.replace_status(watch.namespace, watch.name, watch.uid, new)
        except KubeError as exc:
            log.warning("Status of %s/%s not written (%s); retrying", *watch.key, exc)
            return Written.RETRY
        if not landed:
            return Written.GONE
        finished = decision.is_final(new) and not decision.is_final(watch.status)
        watch.status = compact(new)
        if not watch.deleted:
            self.metrics.set_phase(watch.key, new.get("phase"))
            if finished:
                self.metrics.observe_completion(watch.server, new)
        return Written.DONE


def named(watch: Watch, what: str) -> str:
    """An Event name of this watch for `what`: the same for every retry and restart that means
    the same Event, so the API server refuses the copies (409)."""
    digest = hashlib.sha256(f"{watch.uid}/{what}".encode()).hexdigest()[:16]
    return f"{watch.name[:200]}.{digest}"


def event_name(watch: Watch, reason: str) -> str:
    """Stable across retries of one transition: the watch's uid, its transition count, the reason."""
    return named(watch, f"{int(watch.status.get(TRANSITIONS) or 0)}/{reason}")


def final_event_name(watch: Watch) -> str:
    """One name for the outcome of a watch, whatever it is: the API server lets only one exist."""
    return named(watch, "outcome")


def scrub_status(status: Mapping[str, Any], secrets: list[str]) -> dict[str, Any]:
    """The status with every message redacted and bounded."""
    new = dict(status)
    if isinstance(new.get("message"), str):
        new["message"] = clean(new["message"], secrets, MESSAGE_LIMIT)
    if new.get("conditions"):
        new["conditions"] = [
            {**x, "message": clean(str(x.get("message", "")), secrets, MESSAGE_LIMIT)}
            for x in new["conditions"]
        ]
    return new
