"""Which Airbyte job a watch watches: `spec.jobId`, a ConfigMap key (`spec.jobIdFrom`), or the
job it starts itself on `spec.connectionId` (trigger, then watch; never twice).

Once known, the id is fixed in `status.jobId` and read from there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..airbyte import model as at
from ..airbyte.client import ClientPool
from ..airbyte.server_config import ServerConfig
from ..core.decision import timestamp
from ..core.spec import InvalidSpec, WatchSpec, parse_job_id
from ..core.text import bound
from ..kube.client import KubeClient, KubeError
from ..kube.status_writer import StatusWriter, Written
from .connections import Connections
from .table import Watch

log = logging.getLogger(__name__)


def same_job_type(a: str | None, b: str | None) -> bool:
    """True when a job Airbyte reports as type `a` may be the job of type `b` we asked for:
    Airbyte runs a clear as a reset and reads it back as one."""
    return a is None or b is None or at.normalize_job_type(a) == at.normalize_job_type(b)


class JobSource:
    def __init__(self, kube: KubeClient, connections: Connections, clients: ClientPool,
                 writer: StatusWriter, clock: Callable[[], Any]) -> None:  # fmt: skip
        self.kube = kube
        self.connections = connections
        self.clients = clients
        self.writer = writer
        self.clock = clock

    async def job_id(self, watch: Watch, spec: WatchSpec) -> int | at.Problem:
        known = watch.status.get("jobId")
        if isinstance(known, int) and not isinstance(known, bool):
            return known
        if spec.connection_id is not None:
            return await self._trigger(watch, spec, spec.connection_id)
        assert spec.job_id_from is not None
        return await self._from_config_map(watch, spec)

    async def _from_config_map(self, watch: Watch, spec: WatchSpec) -> int | at.Problem:
        """Read on every step until it holds a job id: a missing ConfigMap or key is waited
        for, a bad value stalls the watch until someone corrects it or the deadline passes."""
        assert spec.job_id_from is not None
        name, key = spec.job_id_from.config_map, spec.job_id_from.key
        try:
            status, data = await self.kube.read_data("configmaps", watch.namespace, name)
        except KubeError as exc:
            return at.Problem(at.WAITING_FOR_JOB_ID, f"cannot read ConfigMap {name!r}: {exc}")
        if status != 200 or data is None:
            why = "not found" if status == 404 else f"not readable ({status})"
            return at.Problem(at.WAITING_FOR_JOB_ID, f"ConfigMap {name!r} {why}")
        if key not in data:
            return at.Problem(at.WAITING_FOR_JOB_ID, f"ConfigMap {name!r} has no key {key!r} yet")
        try:
            return parse_job_id(data[key].strip(), field="jobIdFrom")
        except InvalidSpec:
            held = bound(repr(data[key]), 80)
            return at.Problem(
                at.INVALID_JOB_ID,
                f"spec.jobIdFrom: ConfigMap {name!r} key {key!r} holds {held}, not a job id",
            )

    async def _trigger(self, watch: Watch, spec: WatchSpec, connection_id: str) -> int | at.Problem:
        """Start the job once. Before `POST /jobs` the intent is written with the newest job id
        Airbyte had on the connection; after a restart or a lost answer, a job of ours with a
        higher id is adopted instead of posting again. Airbyte's job ids grow with every job it
        creates, so this needs no clock to agree with Airbyte's."""
        config = await self.connections.resolve(watch.namespace, spec.server_secret)
        if not isinstance(config, ServerConfig):
            return config
        client = self.clients.get(config)
        if watch.status.get("triggeredAt"):
            adopted = await self._adopt(watch, spec, client, connection_id)
            if adopted is not None:
                return adopted
        else:
            jobs = await client.list_jobs(connection_id)
            if isinstance(jobs, at.Problem):
                return jobs
            newest = max((j.job_id for j in jobs), default=0)
            intent = {**watch.status, "triggeredAt": timestamp(self.clock()), "triggerAfterJobId": newest}
            if await self.writer.write(watch, intent, ()) is not Written.DONE:
                return at.Problem(at.UNREACHABLE, "could not record the intent to trigger; retrying")
        started = await client.trigger_job(connection_id, spec.job_type)
        if isinstance(started, at.Job):
            log.info(
                "%s/%s: started Airbyte job %d on connection %s", *watch.key, started.job_id, connection_id
            )
            return started.job_id
        if started.kind != at.CONFLICT:
            return started
        return await self._busy(watch, spec, client, connection_id, started)

    async def _adopt(
        self, watch: Watch, spec: WatchSpec, client: Any, connection_id: str
    ) -> int | at.Problem | None:
        """The job our earlier POST created, if Airbyte has it; None if there is none."""
        after = watch.status.get("triggerAfterJobId")
        if isinstance(after, int) and not isinstance(after, bool):
            jobs = await client.list_jobs(connection_id)
            if isinstance(jobs, at.Problem):
                return jobs
            ours = [j for j in jobs if j.job_id > after and same_job_type(j.job_type, spec.job_type)]
        else:
            # An intent written by an earlier version of the operator carries only its time.
            jobs = await client.list_jobs(connection_id, since=watch.status["triggeredAt"])
            if isinstance(jobs, at.Problem):
                return jobs
            ours = [j for j in jobs if same_job_type(j.job_type, spec.job_type)]
        return min(j.job_id for j in ours) if ours else None  # the first created after the intent

    async def _busy(self, watch: Watch, spec: WatchSpec, client: Any, connection_id: str,
                    conflict: at.Problem) -> int | at.Problem:  # fmt: skip
        """The connection runs a job already: spec.ifRunning says what to do."""
        if spec.if_running == "Fail":
            return at.Problem(at.CONNECTION_BUSY, f"connection {connection_id} already runs a job "
                              f"(spec.ifRunning: Fail): {conflict.detail}")  # fmt: skip
        if spec.if_running == "Wait":
            # This POST created nothing: drop the intent, so that the next one is written just
            # before the next POST and never matches the job that is running now.
            dropped = {k: v for k, v in watch.status.items() if k not in ("triggeredAt", "triggerAfterJobId")}
            await self.writer.write(watch, dropped, ())
            return at.Problem(
                at.WAITING_FOR_CONNECTION, f"connection {connection_id} runs a job: {conflict.detail}"
            )
        recent = await client.list_jobs(connection_id)
        if isinstance(recent, at.Problem):
            return recent
        running = [j for j in recent if j.status not in (at.SUCCEEDED, at.FAILED, at.CANCELLED)]
        if not running:
            return at.Problem(at.WAITING_FOR_CONNECTION, f"connection {connection_id} was busy; trying again")
        return max(running, key=lambda j: j.job_id).job_id  # spec.ifRunning: Adopt
