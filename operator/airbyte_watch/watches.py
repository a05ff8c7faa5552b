"""The watches this process knows, kept in sync by kopf's events, and one poll of one watch.

A poll's path: scheduler → `Watches.poll` → Secret → Airbyte client → decision core →
status patch (only if changed) → events → next poll time.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime
import hashlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import airbyte_types as at
from .airbyte_client import ClientPool
from .connections import Connections
from .decision import (
    Decision,
    Event,
    decide,
    decide_invalid_spec,
    is_final,
    restamp,
    timestamp,
    with_cancel_outcome,
)
from .durations import parse_duration
from .kube_client import KubeClient, KubeError
from .metrics import Metrics
from .scheduler import Scheduler
from .server_config import ServerConfig
from .sharding import Shard
from .spec import InvalidSpec, WatchSpec, parse_job_id, parse_spec

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
CANCEL_FINALIZER = "airbyte.watch/cancel-on-delete"
CANCELLED_ON_DELETE = "CancelledOnDelete"
CANCEL_UNCONFIRMED = "CancelUnconfirmed"


@dataclass
class Watch:
    namespace: str
    name: str
    uid: str
    generation: int
    spec: dict[str, Any]
    status: dict[str, Any]  # as last written by us (or as found at start)
    resource_version: str = ""  # of the object whose status we hold; names this state's Events
    finalizers: list[str] = field(default_factory=list)
    failures: int = 0
    deleted: bool = False
    cleaning: bool = False  # cancelling its job because it is being deleted
    server: str | None = None  # host of the Airbyte server it polled last, a metrics label

    @property
    def ref(self) -> dict[str, Any]:
        return {"metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid}}


@dataclass
class Options:
    default_server_secret: str = "airbyte-default"
    startup_spread: float = 5.0  # first polls are spread over this many seconds, at most
    patch_retry_delay: float = 5.0
    concurrency: int = 64  # polls in flight at once
    delete_cancel_timeout: float = 30.0  # at most this long on a cancel before a delete goes on
    shard: Shard = field(default_factory=Shard)


@dataclass
class Watches:
    kube: KubeClient
    connections: Connections
    clients: ClientPool
    options: Options = field(default_factory=Options)
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    known: dict[Key, Watch] = field(default_factory=dict)
    scheduler: Scheduler = field(init=False)

    def __post_init__(self) -> None:
        self.scheduler = Scheduler(self.poll, concurrency=self.options.concurrency)
        self._cleanups: set[asyncio.Task[None]] = set()

    # --- kept in sync by kopf ---------------------------------------------------------------

    def observe(self, event_type: str | None, body: Mapping[str, Any], owned: bool = False) -> None:
        """Every watch event of every AirbyteJobWatch lands here.

        `owned`: the body is ours to keep (read by us, not a view into kopf's event).
        """
        meta = body.get("metadata") or {}
        key: Key = (meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            self.forget(key)
            return
        if not self.options.shard.owns(meta.get("uid", "")):
            return  # another replica's watch
        if meta.get("deletionTimestamp"):
            self._deleting(key, body, owned)
            return
        watch = self.known.get(key)
        if watch is not None and watch.uid != meta.get("uid"):
            self.forget(key)  # deleted and re-created under the same name
            watch = None
        if watch is None:
            self._plan_first_poll(self._remember(key, body, owned))
            return
        watch.finalizers = list(meta.get("finalizers") or [])
        # Our own status writes come back here too: only spec changes matter.
        generation = int(meta.get("generation", watch.generation))
        if generation != watch.generation:
            watch.generation = generation
            watch.spec = copy.deepcopy(dict(body.get("spec") or {}))
            watch.resource_version = str(meta.get("resourceVersion", watch.resource_version))
            # Reconcile the edit now, so observedGeneration catches up without waiting out a
            # backoff; a poll in flight picks it up at its end.
            if not self.scheduler.is_running(key):
                self.scheduler.schedule(key, 0.0)

    def forget(self, key: Key) -> None:
        watch = self.known.pop(key, None)
        if watch is not None:
            watch.deleted = True  # a poll in flight sees this and writes nothing
            self.metrics.set_phase(key, None)
        self.scheduler.unschedule(key)

    def _remember(self, key: Key, body: Mapping[str, Any], owned: bool) -> Watch:
        meta = body.get("metadata") or {}
        watch = Watch(
            namespace=key[0],
            name=key[1],
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation", 1)),
            spec=_keep(body.get("spec"), owned),
            status=_keep(body.get("status"), owned),
            resource_version=str(meta.get("resourceVersion", "")),
            finalizers=list(meta.get("finalizers") or []),
        )
        self.known[key] = watch
        self.metrics.set_phase(key, watch.status.get("phase"))
        return watch

    def _deleting(self, key: Key, body: Mapping[str, Any], owned: bool) -> None:
        """A delete began: with our finalizer, cancel the job first; otherwise just let go."""
        finalizers = list((body.get("metadata") or {}).get("finalizers") or [])
        if CANCEL_FINALIZER not in finalizers:
            self.forget(key)
            return
        watch = self.known.get(key) or self._remember(key, body, owned)  # e.g. found mid-delete
        if not watch.cleaning:
            watch.cleaning = True
            self.scheduler.unschedule(key)
            task = asyncio.create_task(self._cancel_on_delete(watch))
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)

    async def _cancel_on_delete(self, watch: Watch) -> None:
        """Cancel a job that is not final, within a bounded time, then release the delete."""
        job_id = watch.status.get("jobId")
        said: str | None = None
        if isinstance(job_id, int) and not is_final(watch.status):
            try:
                async with asyncio.timeout(self.options.delete_cancel_timeout):
                    said = await self._cancel_if_running(watch, job_id)
            except TimeoutError:
                said = f"no answer within {self.options.delete_cancel_timeout:g}s"
            if said == "cancelled":
                await self.kube.post_event(watch.ref, "Normal", CANCELLED_ON_DELETE,
                                           f"Cancelled Airbyte job {job_id}: its watch was deleted",
                                           self.clock())  # fmt: skip
            elif said != "finished":
                await self.kube.post_event(watch.ref, "Warning", CANCEL_UNCONFIRMED,
                                           f"Could not confirm the cancel of Airbyte job {job_id} before "
                                           f"deleting its watch: {said}", self.clock())  # fmt: skip
        try:
            await self.kube.set_finalizer(watch.namespace, watch.name, CANCEL_FINALIZER, present=False)
        except KubeError as exc:
            log.warning("Finalizer of %s/%s not removed (%s); retrying", watch.namespace, watch.name, exc)
            watch.cleaning = False  # the next event about it starts over

    async def _cancel_if_running(self, watch: Watch, job_id: int) -> str:
        """ "cancelled", "finished", or why not: read the job first, as Airbyte cancels whatever
        its connection runs now, and cancel only a job still running."""
        spec = parse_spec(watch.spec, self.options.default_server_secret)
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
            await asyncio.sleep(2**attempt)
        return "gave up"  # pragma: no cover

    async def _trigger(self, watch: Watch, spec: WatchSpec, connection_id: str) -> int | at.Problem:
        """Start the job once: record the intent, then POST; after a restart or a lost answer,
        adopt the connection's job created since the intent instead of posting again."""
        config = await self.connections.resolve(watch.namespace, spec.server_secret)
        if not isinstance(config, ServerConfig):
            return config
        client = self.clients.get(config)
        intent = watch.status.get("triggeredAt")
        if intent:
            since = await client.list_jobs(connection_id, since=intent)
            if isinstance(since, at.Problem):
                return since
            ours = [j for j in since if j.job_type in (None, spec.job_type)]
            if ours:
                return min(ours, key=lambda j: j.job_id).job_id  # the first created after the intent
        else:
            stamp = timestamp(self.clock())
            if not await self._write(watch, {**watch.status, "triggeredAt": stamp}, ()):
                return at.Problem(at.UNREACHABLE, "could not record the intent to trigger; retrying")
        started = await client.trigger_job(connection_id, spec.job_type)
        if isinstance(started, at.Job):
            log.info("%s/%s: started Airbyte job %d on connection %s", watch.namespace, watch.name,
                     started.job_id, connection_id)  # fmt: skip
            return started.job_id
        if started.kind != at.CONFLICT:
            return started
        if spec.if_running == "Fail":
            return at.Problem(at.CONNECTION_BUSY, f"connection {connection_id} already runs a job "
                              f"(spec.ifRunning: Fail): {started.detail}")  # fmt: skip
        if spec.if_running == "Wait":
            # This POST created nothing: drop the intent, so that the next one is written just
            # before the next POST and never matches the job that is running now.
            await self._write(watch, {k: v for k, v in watch.status.items() if k != "triggeredAt"}, ())
            return at.Problem(
                at.WAITING_FOR_CONNECTION, f"connection {connection_id} runs a job: {started.detail}"
            )
        recent = await client.list_jobs(connection_id)
        if isinstance(recent, at.Problem):
            return recent
        running = [j for j in recent if j.status not in (at.SUCCEEDED, at.FAILED, at.CANCELLED)]
        if not running:
            return at.Problem(at.WAITING_FOR_CONNECTION, f"connection {connection_id} was busy; trying again")
        return running[0].job_id  # spec.ifRunning: Adopt

    async def _keep_finalizer_in_step(self, watch: Watch, spec: WatchSpec) -> None:
        """Hold deletes with our finalizer only while a cancel could be needed."""
        wanted = spec.cancel_on_delete and not is_final(watch.status) and not watch.deleted
        if wanted == (CANCEL_FINALIZER in watch.finalizers):
            return
        try:
            if await self.kube.set_finalizer(watch.namespace, watch.name, CANCEL_FINALIZER, wanted):
                watch.finalizers = [f for f in watch.finalizers if f != CANCEL_FINALIZER]
                if wanted:
                    watch.finalizers.append(CANCEL_FINALIZER)
        except KubeError as exc:
            log.warning(
                "Finalizer of %s/%s not set (%s); retrying at the next poll", watch.namespace, watch.name, exc
            )

    def _plan_first_poll(self, watch: Watch) -> None:
        if is_final(watch.status) and watch.status.get("observedGeneration") == watch.generation:
            return  # finished before; never polled again
        # Spread first polls so that many watches found at start do not poll in one instant.
        interval = _interval_hint(watch.spec)
        spread = min(interval, self.options.startup_spread)
        self.scheduler.schedule((watch.namespace, watch.name), random.uniform(0, spread))

    # --- one poll ---------------------------------------------------------------------------

    async def poll(self, key: Key) -> None:
        watch = self.known.get(key)
        if watch is None:
            return
        now = self.clock()
        if is_final(watch.status):
            if watch.status.get("observedGeneration") != watch.generation:
                await self._write(watch, restamp(watch.status, watch.generation), ())
            return
        generation = watch.generation
        try:
            spec = parse_spec(watch.spec, self.options.default_server_secret)
        except InvalidSpec as exc:
            await self._apply(watch, decide_invalid_spec(watch.status, exc, now, generation))
            return
        answer: at.Job | at.Problem | None = None
        if spec.job_id is None:
            found = await self._job_id_from(watch, spec)
            if isinstance(found, InvalidSpec):
                await self._apply(watch, decide_invalid_spec(watch.status, found, now, generation))
                return
            if isinstance(found, at.Problem):
                answer = found
            else:
                spec = dataclasses.replace(spec, job_id=found)
        config: ServerConfig | at.Problem | None = None
        if answer is None and spec.job_id is not None:
            config = await self.connections.resolve(watch.namespace, spec.server_secret)
            if isinstance(config, ServerConfig):
                answer = await self._read_job(watch, spec, config, spec.job_id)
            else:
                answer = config
        assert answer is not None
        if watch.deleted:
            return
        decision = decide(spec, watch.status, watch.failures, answer, self.clock(), generation)
        if decision.cancel_job and isinstance(config, ServerConfig) and spec.job_id is not None:
            # The job was read running in this very poll, so it is still the connection's job.
            outcome = await self.clients.get(config).cancel_job(spec.job_id)
            said = outcome.detail if isinstance(outcome, at.Problem) else outcome
            decision = with_cancel_outcome(decision, spec.job_id, said)
        await self._apply(watch, decision)
        await self._keep_finalizer_in_step(watch, spec)

    async def _read_job(
        self, watch: Watch, spec: WatchSpec, config: ServerConfig, job_id: int
    ) -> at.Job | at.Problem:
        watch.server = config.host
        started = self.clock()
        answer = await self.clients.get(config).get_job(job_id)
        self.metrics.observe_poll(config.host, answer, (self.clock() - started).total_seconds())
        if isinstance(answer, at.Problem) and answer.kind == at.AUTH_FAILED:
            self.connections.forget(watch.namespace, spec.server_secret)
        return answer

    async def _job_id_from(self, watch: Watch, spec: WatchSpec) -> int | at.Problem | InvalidSpec:
        """The job id: fixed in status once known; else from spec.jobIdFrom's ConfigMap key, or
        the job this watch starts on spec.connectionId."""
        known = watch.status.get("jobId")
        if isinstance(known, int):
            return known
        if spec.connection_id is not None:
            return await self._trigger(watch, spec, spec.connection_id)
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
            return InvalidSpec(
                "jobIdFrom", f"ConfigMap {name!r} key {key!r} holds {data[key]!r}, not a job id"
            )

    async def _apply(self, watch: Watch, decision: Decision) -> None:
        key = (watch.namespace, watch.name)
        if not await self._write(watch, decision.status, decision.events):
            return
        watch.failures = decision.failures
        if watch.deleted:
            return
        if decision.status.get("observedGeneration") != watch.generation:
            self.scheduler.schedule(key, 0.0)  # the spec was edited while this poll ran
        elif decision.next_poll_in is not None:
            self.scheduler.schedule(key, decision.next_poll_in)

    async def _write(self, watch: Watch, status: dict[str, Any], events: tuple[Event, ...]) -> bool:
        """Post the events, then patch what changed; False if nothing more is to be done.

        Each Event's name is derived from the watch, the reason and the version of the object it
        moves away from. A crash or a failed patch leaves that version in place, so the retry
        derives the same names, the API server refuses the copies, and every Event exists
        exactly once; a later transition starts from a newer version, so it gets new names.
        """
        key = (watch.namespace, watch.name)
        if watch.deleted:
            return False
        for event in events:
            name = event_name(watch, event.reason)
            if await self.kube.post_event(watch.ref, event.type, event.reason, event.message,
                                          self.clock(), name=name):  # fmt: skip
                self.metrics.observe_event(event.type, event.reason)
                log.info("%s/%s: %s %s: %s", *key, event.type, event.reason, event.message)
        patch = merge_patch(watch.status, status)
        if patch:
            try:
                version = await self.kube.patch_status(watch.namespace, watch.name, patch)
            except KubeError as exc:
                log.warning("Status of %s/%s not written (%s); retrying", *key, exc)
                self.scheduler.schedule(key, self.options.patch_retry_delay)
                return False
            if version is None:
                self.forget(key)
                return False
            finished = is_final(status) and not is_final(watch.status)
            watch.status, watch.resource_version = status, version
            self.metrics.set_phase(key, status.get("phase"))
            if finished:
                self.metrics.observe_completion(watch.server, status)
        return True


def event_name(watch: Watch, reason: str) -> str:
    """A name stable across retries of one transition: watch, reason, and the version left behind."""
    digest = hashlib.sha256(f"{watch.uid}/{watch.resource_version}/{reason}".encode()).hexdigest()[:16]
    return f"{watch.name[:200]}.{digest}"


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) turning `old` into `new` at the top level of status."""
    patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch


def _keep(value: Any, owned: bool) -> dict[str, Any]:
    return dict(value or {}) if owned else copy.deepcopy(dict(value or {}))


def _interval_hint(spec: Mapping[str, Any]) -> float:
    try:
        return max(1.0, parse_duration(spec.get("pollInterval", "30s")))
    except ValueError:
        return 30.0
