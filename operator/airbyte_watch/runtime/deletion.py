"""Deleting a watch with `spec.cancelOnDelete`: a finalizer held only while a cancel could be
needed, and on delete a bounded attempt to cancel the job before letting the object go.

A delete never hangs: whatever happens on the way (Airbyte silent, answers that make no sense,
a bug of ours), once `delete_cancel_timeout` has passed since the delete was seen the
finalizer goes, with a Warning Event saying the cancel could not be confirmed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..airbyte import model as at
from ..airbyte.client import ClientPool
from ..airbyte.server_config import ServerConfig
from ..core import names as n
from ..core.decision import is_final
from ..core.spec import WatchSpec, parse_spec
from ..core.text import MESSAGE_LIMIT, clean
from ..kube.client import KubeClient, KubeError
from ..kube.status_writer import named
from .connections import Connections
from .table import Watch

log = logging.getLogger(__name__)


class Deletion:
    def __init__(self, kube: KubeClient, connections: Connections, clients: ClientPool,
                 clock: Callable[[], Any], monotonic: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]], default_server_secret: str,
                 timeout: float, secrets: Callable[[], Iterable[str]] = tuple) -> None:  # fmt: skip
        self.kube = kube
        self.connections = connections
        self.clients = clients
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.default_server_secret = default_server_secret
        self.timeout = timeout
        self.secrets = secrets
        self._said: dict[str, str] = {}  # uid -> what the cancel came to, kept until let go

    async def keep_finalizer_in_step(self, watch: Watch, spec: WatchSpec) -> None:
        """Hold deletes with our finalizer only while a cancel could be needed."""
        wanted = spec.cancel_on_delete and not is_final(watch.status) and not watch.deleted
        if wanted == (n.CANCEL_FINALIZER in watch.finalizers) or watch.deleting:
            return
        try:
            if await self.kube.set_finalizer(
                watch.namespace, watch.name, n.CANCEL_FINALIZER, wanted, uid=watch.uid
            ):
                watch.finalizers = [f for f in watch.finalizers if f != n.CANCEL_FINALIZER]
                if wanted:
                    watch.finalizers.append(n.CANCEL_FINALIZER)
        except KubeError as exc:
            log.warning("Finalizer of %s/%s not set (%s); retrying at the next poll", *watch.key, exc)

    async def let_go(self, watch: Watch) -> bool:
        """Cancel a job that is not final (within the time left), then remove the finalizer.
        False when the finalizer could not be removed yet: call again."""
        if watch.delete_seen_at is None:
            watch.delete_seen_at = self.monotonic()
        said = self._said.get(watch.uid)
        if said is None:
            said = await self._cancel(watch)
            self._said[watch.uid] = said
            await self._announce(watch, said)
        try:
            await self.kube.set_finalizer(
                watch.namespace, watch.name, n.CANCEL_FINALIZER, False, uid=watch.uid
            )
        except KubeError as exc:
            log.warning("Finalizer of %s/%s not removed (%s); retrying", *watch.key, exc)
            return False
        self._said.pop(watch.uid, None)
        return True

    def forget(self, uid: str) -> None:
        self._said.pop(uid, None)

    async def _cancel(self, watch: Watch) -> str:
        """ "cancelled", "finished", "nothing" (no job to cancel), or why it is unconfirmed."""
        job_id = watch.status.get("jobId")
        if not isinstance(job_id, int) or is_final(watch.status):
            return "nothing"
        left = self.timeout - (self.monotonic() - (watch.delete_seen_at or 0.0))
        if left <= 0:
            return f"no answer within {self.timeout:g}s"
        try:
            async with asyncio.timeout(left):
                return await self._cancel_if_running(watch, job_id)
        except TimeoutError:
            return f"no answer within {self.timeout:g}s"
        except Exception as exc:  # a bug or an answer that makes no sense: never hold the delete
            log.exception("%s/%s: cancelling Airbyte job %s on delete failed", *watch.key, job_id)
            return f"unexpected error ({type(exc).__name__})"

    async def _cancel_if_running(self, watch: Watch, job_id: int) -> str:
        """Read the job first, as Airbyte cancels whatever its connection runs now, and cancel
        only a job still running."""
        spec = parse_spec(watch.spec, self.default_server_secret)
        for attempt in range(3):
            config = await self.connections.resolve(watch.namespace, spec.server_secret)
            if not isinstance(config, ServerConfig):
                return config.detail
            job = await self.clients.get(config).get_job(job_id)
            if isinstance(job, at.Job):
                if job.status in (at.SUCCEEDED, at.FAILED, at.CANCELLED):
                    return "finished"
                outcome = await self.clients.get(config).cancel_job(job_id)
                if isinstance(outcome, str):
                    return outcome
                job = outcome
            if not job.transient or attempt == 2:
                return job.detail
            await self.sleep(2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _announce(self, watch: Watch, said: str) -> None:
        job_id = watch.status.get("jobId")
        if said in ("nothing", "finished"):
            return
        if said == "cancelled":
            type_, reason = n.NORMAL, n.CANCELLED_ON_DELETE
            message = f"Cancelled Airbyte job {job_id}: its watch was deleted"
        else:
            type_, reason = n.WARNING, n.CANCEL_UNCONFIRMED
            message = (
                f"Could not confirm the cancel of Airbyte job {job_id} before deleting its watch: {said}"
            )
        message = clean(message, self.secrets(), MESSAGE_LIMIT)
        # Named by the uid: a retry after a failed finalizer patch or a restart posts it once.
        name = named(watch, f"delete/{reason}")
        try:
            await self.kube.post_event(watch.ref, type_, reason, message, self.clock(), name=name)
        except KubeError as exc:  # the object is going away: never hold the delete on an Event
            log.warning("%s/%s: event %s not posted (%s)", *watch.key, reason, exc)
