"""In-memory Kubernetes and Airbyte at the operator's client boundary, with a fake clock.

For tests that must decide the order of everything: which watch event arrives when, which
request is answered when, what fails. They stand in for `KubeClient` and `ClientPool`; the
real ones are tested against the real API server and the fake Airbyte elsewhere.

`MemoryKube` behaves as the API server does where the operator depends on it: uids, generations
that move only with the spec, resourceVersions that move with every write, finalizers holding
a delete, merge patches of status, Events refused as copies by name (409), and the CRD's
bounds on messages (422).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import datetime
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airbyte_watch.airbyte import model as at
from airbyte_watch.kube.client import KubeError, Page

CONDITION_MESSAGE_LIMIT = 32768  # the CRD's maxLength for a condition's message
EVENT_MESSAGE_LIMIT = 1024


class FakeClock:
    """Wall clock and monotonic clock that move only when a test says so."""

    def __init__(self, start: datetime.datetime | None = None) -> None:
        self.wall = start or datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)
        self.mono = 1000.0

    def now(self) -> datetime.datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += datetime.timedelta(seconds=seconds)
        self.mono += seconds


Hook = Callable[[str, str], Awaitable[None]]  # (verb, name) -> awaited before the write lands


@dataclass
class WriteRecord:
    verb: str
    name: str
    uid: str | None  # the uid of the object the write landed on
    sent_uid: str | None  # the uid the writer named as a precondition, if any


@dataclass
class MemoryKube:
    clock: FakeClock
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)  # resource, ns, name
    pending: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)  # the watch stream's
    writes: list[WriteRecord] = field(default_factory=list)
    fail_patches: int = 0  # the next n status patches fail as an unavailable API server would
    fail_events: int = 0  # the next n Event POSTs fail likewise
    before_write: Hook | None = None
    on_write: Callable[[str], None] = lambda kind: None
    component: str = "airbyte-watch"
    instance: str = "memory"
    _rv: itertools.count = field(default_factory=lambda: itertools.count(1))
    _uid: itertools.count = field(default_factory=lambda: itertools.count(1))

    # --- what users and the watch stream do ----------------------------------------------

    def _emit(self, type_: str | None, obj: dict[str, Any]) -> None:
        self.pending.append((type_, copy.deepcopy(obj)))

    def _bump(self, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))

    def create(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        assert (namespace, name) not in self.objects, "exists"
        obj = {
            "apiVersion": "airbyte.watch/v1alpha1",
            "kind": "AirbyteJobWatch",
            "metadata": {
                "namespace": namespace,
                "name": name,
                "uid": f"uid-{next(self._uid)}",
                "generation": 1,
                "finalizers": [],
                "labels": {},
            },
            "spec": copy.deepcopy(spec),
            "status": {"observedGeneration": -1},
        }
        self._bump(obj)
        self.objects[(namespace, name)] = obj
        self._emit("ADDED", obj)
        return obj

    def edit_spec(self, namespace: str, name: str, **changes: Any) -> None:
        obj = self.objects[(namespace, name)]
        obj["spec"].update(changes)
        obj["metadata"]["generation"] += 1
        self._bump(obj)
        self._emit("MODIFIED", obj)

    def edit_labels(self, namespace: str, name: str, **labels: str) -> None:
        obj = self.objects[(namespace, name)]
        obj["metadata"]["labels"].update(labels)
        self._bump(obj)
        self._emit("MODIFIED", obj)

    def delete(self, namespace: str, name: str) -> None:
        obj = self.objects.get((namespace, name))
        if obj is None:
            return
        if obj["metadata"]["finalizers"]:
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = self.clock.now().isoformat()
                self._bump(obj)
                self._emit("MODIFIED", obj)
            return
        del self.objects[(namespace, name)]
        self._emit("DELETED", obj)

    def put_data(self, resource: str, namespace: str, name: str, values: Mapping[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        self.data[(resource, namespace, name)] = encoded if resource == "secrets" else dict(values)

    def take_pending(self) -> list[tuple[str | None, dict[str, Any]]]:
        out, self.pending = self.pending, []
        return out

    def events_of(self, namespace: str, name: str, reason: str | None = None) -> list[dict[str, Any]]:
        return [
            e for (ns, _), e in self.events.items()
            if ns == namespace and e["involvedObject"]["name"] == name
            and (reason is None or e["reason"] == reason)
        ]  # fmt: skip

    # --- the KubeClient calls the operator makes ---------------------------------------------

    async def _hook(self, verb: str, name: str) -> None:
        if self.before_write is not None:
            await self.before_write(verb, name)

    async def replace_status(self, namespace: str, name: str, uid: str, status: Mapping[str, Any]) -> bool:
        await self._hook("replace_status", name)
        if self.fail_patches:
            self.fail_patches -= 1
            raise KubeError("injected: API server unavailable")
        obj = self.objects.get((namespace, name))
        if obj is None or obj["metadata"]["uid"] != uid:
            return False  # the JSON patch's uid test fails: the object we meant is gone
        for cond in status.get("conditions") or []:
            if len(cond.get("message", "")) > CONDITION_MESSAGE_LIMIT:
                raise KubeError("422: status.conditions[].message: Too long")  # as the CRD says
        obj["status"] = copy.deepcopy(dict(status))
        self.writes.append(WriteRecord("replace_status", name, obj["metadata"]["uid"], uid))
        self._bump(obj)
        self._emit("MODIFIED", obj)
        self.on_write("status_patch")
        return True

    async def post_event(
        self,
        obj: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
        now: datetime.datetime,
        name: str | None = None,
    ) -> bool:
        meta = obj["metadata"]
        await self._hook("post_event", meta["name"])
        if self.fail_events:
            self.fail_events -= 1
            raise KubeError("injected: API server unavailable")
        if len(message) > EVENT_MESSAGE_LIMIT:
            raise AssertionError(f"an Event message of {len(message)} characters")
        key = (meta["namespace"], name or f"{meta['name']}.{len(self.events)}")
        if key in self.events:
            return False
        self.events[key] = {
            "reason": reason, "type": type_, "message": message,
            "involvedObject": {"name": meta["name"], "uid": meta.get("uid")},
        }  # fmt: skip
        self.on_write("event")
        return True

    async def read_event(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.events.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def set_finalizer(
        self, namespace: str, name: str, finalizer: str, present: bool, uid: str | None = None
    ) -> bool:
        await self._hook("set_finalizer", name)
        obj = self.objects.get((namespace, name))
        if obj is None or (uid is not None and obj["metadata"]["uid"] != uid):
            return False
        current = obj["metadata"]["finalizers"]
        if (finalizer in current) == present:
            return True
        obj["metadata"]["finalizers"] = (
            [*current, finalizer] if present else [f for f in current if f != finalizer]
        )
        self.writes.append(WriteRecord("set_finalizer", name, obj["metadata"]["uid"], uid))
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"]["finalizers"]:
            del self.objects[(namespace, name)]
            self._emit("DELETED", obj)
        else:
            self._bump(obj)
            self._emit("MODIFIED", obj)
        return True

    async def read_data(
        self, resource: str, namespace: str, name: str
    ) -> tuple[int, Mapping[str, str] | None]:
        found = self.data.get((resource, namespace, name))
        return (200, dict(found)) if found is not None else (404, None)

    async def list_watches(self, namespace: str | None = None) -> AsyncIterator[Page]:
        items = [copy.deepcopy(o) for (ns, _), o in self.objects.items() if namespace in (None, ns)]
        version = str(next(self._rv))
        for start in range(0, max(1, len(items)), 2):  # small pages: events can land between them
            yield Page(items[start : start + 2], version)
            await asyncio.sleep(0)

    async def close(self) -> None:
        pass


@dataclass
class MemoryJob:
    job_id: int
    connection_id: str
    job_type: str
    status: str
    created: datetime.datetime  # Airbyte's clock
    failure: str | None = None
    updated: datetime.datetime | None = None  # Airbyte's clock; moves with every status change
    rows: int | None = None  # rowsSynced as Airbyte reports it; None: not reported

    def __post_init__(self) -> None:
        self.updated = self.updated or self.created


@dataclass
class MemoryAirbyte:
    """One Airbyte server with its own clock (`skew` seconds from the operator's)."""

    clock: FakeClock
    skew: float = 0.0
    jobs: dict[int, MemoryJob] = field(default_factory=dict)
    posts: int = 0
    cancels: list[int] = field(default_factory=list)
    requests: int = 0
    lists: int = 0  # of the requests, the pages of GET /jobs by update time
    faults: list[at.Problem | BaseException] = field(default_factory=list)  # next answers
    lose_next_post_answer: bool = False  # the job is created, the answer never arrives
    gate: asyncio.Event | None = None  # when set to an unset Event, requests wait for it
    shuffle_ties: random.Random | None = None  # set: rows of equal sort key in a new order each list
    page_size: int = 100  # the rows a list answers at most (the walks' LIST_PAGE must agree)
    list_faults: list[at.Problem] = field(default_factory=list)  # the next list requests fail so
    list_gate: asyncio.Event | None = None  # when set to an unset Event, list requests hang on it
    job_reads: int = 0  # GET /jobs/{id} asked (answered or not)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(100))

    def now(self) -> datetime.datetime:
        return self.clock.now() + datetime.timedelta(seconds=self.skew)

    def add_job(self, job_id: int, status: str, connection_id: str = "c-1", job_type: str = "sync",
                failure: str | None = None, rows: int | None = None) -> MemoryJob:  # fmt: skip
        job = MemoryJob(job_id, connection_id, job_type, status, self.now(), failure, rows=rows)
        self.jobs[job_id] = job
        return job

    async def _enter(self) -> None:
        self.requests += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, BaseException):
                raise fault
            raise _Answer(fault)

    def move(self, job: MemoryJob, status: str, failure: str | None = None) -> None:
        """The job changes status now, by Airbyte's clock."""
        job.status, job.failure, job.updated = status, failure, self.now()

    def _as_job(self, job: MemoryJob) -> at.Job:
        updated = int(job.updated.timestamp()) if job.updated else None  # whole seconds, as rendered
        return at.Job(job.job_id, job.status, job.job_type, job.connection_id, rows_synced=job.rows,
                      failure=job.failure, updated=updated, created=int(job.created.timestamp()))  # fmt: skip

    async def jobs_updated_since(self, start: float, offset: int = 0) -> at.Page | at.Problem:
        """GET /jobs?updatedAtStart&orderBy=updatedAt|ASC&limit=100&offset, as the server pages."""
        refused = await self._listing()
        if refused is not None:
            return refused
        found = self._ordered(
            [j for j in self.jobs.values() if j.updated and j.updated.timestamp() >= start],
            lambda j: j.updated,
        )
        return self._page(found, offset)

    async def jobs_updated_in_second(self, second: float, created_since: float, offset: int = 0
                                     ) -> at.Page | at.Problem:  # fmt: skip
        """GET /jobs?updatedAtStart&updatedAtEnd=+1s&createdAtStart&orderBy=createdAt|ASC."""
        refused = await self._listing()
        if refused is not None:
            return refused
        found = self._ordered(
            [j for j in self.jobs.values() if j.updated and second <= j.updated.timestamp() <= second + 1
             and j.created.timestamp() >= created_since],
            lambda j: j.created,
        )  # fmt: skip
        return self._page(found, offset)

    async def jobs_of_status_in_seconds(self, status: str, updated: float, created: float, offset: int = 0
                                        ) -> at.Page | at.Problem:  # fmt: skip
        """GET /jobs?status&updatedAtStart&updatedAtEnd=+1s&createdAtStart&createdAtEnd=+1s."""
        refused = await self._listing()
        if refused is not None:
            return refused
        found = self._ordered(
            [j for j in self.jobs.values() if j.status == status and j.updated
             and updated <= j.updated.timestamp() <= updated + 1
             and created <= j.created.timestamp() <= created + 1],
            lambda j: j.created,
        )  # fmt: skip
        return self._page(found, offset)

    async def _listing(self) -> at.Problem | None:
        """What every list request meets first: the list gate, the list faults, the rest."""
        self.lists += 1
        if self.list_gate is not None:
            await self.list_gate.wait()
        if self.list_faults:
            self.requests += 1
            return self.list_faults.pop(0)
        try:
            await self._enter()
        except _Answer as a:
            return a.problem
        return None

    def _page(self, found: list[MemoryJob], offset: int) -> at.Page:
        """The page at `offset`, as the server pages (from the start of the page it falls in)."""
        size = self.page_size
        first = (offset // size) * size
        return at.Page([self._as_job(j) for j in found[first : first + size]], int(self.now().timestamp()))

    def _ordered(self, jobs: list[MemoryJob], key: Callable[[MemoryJob], Any]) -> list[MemoryJob]:
        """Sorted by one field; rows equal in it in a new order on each request when
        `shuffle_ties` is set (as a database), else by id."""
        if self.shuffle_ties is None:
            return sorted(jobs, key=lambda j: (key(j), j.job_id))
        self.shuffle_ties.shuffle(jobs)
        return sorted(jobs, key=key)

    async def get_job(self, job_id: int, server_time: list[float] | None = None) -> at.Job | at.Problem:
        self.job_reads += 1
        try:
            await self._enter()
        except _Answer as a:
            return a.problem
        if server_time is not None:
            server_time.append(int(self.now().timestamp()))
        job = self.jobs.get(job_id)
        if job is None:
            return at.Problem(at.NOT_FOUND, f"404 job {job_id} not found", 404)
        return self._as_job(job)

    async def cancel_job(self, job_id: int) -> str | at.Problem:
        try:
            await self._enter()
        except _Answer as a:
            return a.problem
        job = self.jobs.get(job_id)
        if job is None:
            return at.Problem(at.NOT_FOUND, "404", 404)
        # As the real server: the connection's running job is cancelled, whatever id was named.
        running = [j for j in self.jobs.values() if j.connection_id == job.connection_id
                   and j.status in ("pending", "running", "incomplete")]  # fmt: skip
        if not running:
            return "finished"
        for j in running:
            self.move(j, "cancelled")
            self.cancels.append(j.job_id)
        return "cancelled"

    async def trigger_job(self, connection_id: str, job_type: str) -> at.Job | at.Problem:
        try:
            await self._enter()
        except _Answer as a:
            return a.problem
        self.posts += 1
        if any(j.connection_id == connection_id and j.status in ("pending", "running", "incomplete")
               for j in self.jobs.values()):  # fmt: skip
            return at.Problem(at.CONFLICT, "409 a sync is already running", 409)
        stored_type = "reset" if job_type == "clear" else job_type
        job = self.add_job(next(self._ids), "running", connection_id, stored_type)
        if self.lose_next_post_answer:
            self.lose_next_post_answer = False
            return at.Problem(at.TIMEOUT, "no answer in time")
        return self._as_job(job)

    async def list_jobs(self, connection_id: str, since: str | None = None) -> list[at.Job] | at.Problem:
        """Newest first; `since` compared with Airbyte's own createdAt, as the server does."""
        try:
            await self._enter()
        except _Answer as a:
            return a.problem
        start = datetime.datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        found = [j for j in self.jobs.values() if j.connection_id == connection_id
                 and (start is None or j.created.replace(microsecond=0) >= start)]  # fmt: skip
        return [self._as_job(j) for j in sorted(found, key=lambda j: -j.job_id)]

    async def close(self) -> None:
        pass


class _Answer(Exception):
    def __init__(self, problem: at.Problem) -> None:
        self.problem = problem


@dataclass
class MemoryLogin:
    """Who the MemoryAirbyte lets in: the credentials it accepts (None: any), at which URLs,
    and how its token endpoint fails next. A client of refused credentials learns it as the
    real transport does: its login fails, and (with a backoff) it asks again."""

    accepted: set[str] | None = None  # client secrets or static tokens; None: every one
    urls: set[str] | None = None  # where the server answers; None: at every URL
    token_faults: list[at.Problem] = field(default_factory=list)  # the next token fetches fail so
    token_fetches: int = 0

    def refuses(self, config: Any) -> at.Problem | None:
        if self.urls is not None and config.url not in self.urls:
            return at.Problem(at.UNREACHABLE, f"cannot connect to {config.host}")
        if config.client_id:
            self.token_fetches += 1
            if self.token_faults:
                return self.token_faults.pop(0)
        held = config.client_secret or config.token
        if self.accepted is not None and held not in self.accepted:
            return at.Problem(at.AUTH_FAILED, "Airbyte rejected the credentials: token endpoint answered 401")
        return None


class MemoryClient:
    """One server + credentials' client on the MemoryAirbyte: every call logs in first, and
    Airbyte's text that says `ECHOED` carries this client's own credential there (a server or
    proxy that echoes the request it answers)."""

    def __init__(self, airbyte: MemoryAirbyte, login: MemoryLogin, config: Any) -> None:
        self.airbyte, self.login, self.config = airbyte, login, config

    def _echo(self, answer: Any) -> Any:
        held = self.config.client_secret or self.config.token or self.config.password or ""
        if isinstance(answer, at.Problem) and ECHOED in answer.detail:
            return dataclasses.replace(answer, detail=answer.detail.replace(ECHOED, held))
        if isinstance(answer, at.Job) and answer.failure and ECHOED in answer.failure:
            return dataclasses.replace(answer, failure=answer.failure.replace(ECHOED, held))
        if isinstance(answer, at.Page):
            return dataclasses.replace(answer, jobs=[self._echo(j) for j in answer.jobs])
        if isinstance(answer, list):
            return [self._echo(j) for j in answer]
        return answer

    async def get_job(self, job_id: int, server_time: list[float] | None = None) -> at.Job | at.Problem:
        return self.login.refuses(self.config) or self._echo(await self.airbyte.get_job(job_id, server_time))

    async def jobs_updated_since(self, start: float, offset: int = 0) -> at.Page | at.Problem:
        refused = self.login.refuses(self.config)
        if refused is not None:
            self.airbyte.lists += 1
            return refused
        return self._echo(await self.airbyte.jobs_updated_since(start, offset))

    async def jobs_updated_in_second(self, second: float, created_since: float, offset: int = 0
                                     ) -> at.Page | at.Problem:  # fmt: skip
        refused = self.login.refuses(self.config)
        if refused is not None:
            self.airbyte.lists += 1
            return refused
        return self._echo(await self.airbyte.jobs_updated_in_second(second, created_since, offset))

    async def jobs_of_status_in_seconds(self, status: str, updated: float, created: float, offset: int = 0
                                        ) -> at.Page | at.Problem:  # fmt: skip
        refused = self.login.refuses(self.config)
        if refused is not None:
            self.airbyte.lists += 1
            return refused
        return self._echo(await self.airbyte.jobs_of_status_in_seconds(status, updated, created, offset))

    async def cancel_job(self, job_id: int) -> str | at.Problem:
        return self.login.refuses(self.config) or self._echo(await self.airbyte.cancel_job(job_id))

    async def trigger_job(self, connection_id: str, job_type: str) -> at.Job | at.Problem:
        refused = self.login.refuses(self.config)
        return refused or self._echo(await self.airbyte.trigger_job(connection_id, job_type))

    async def list_jobs(self, connection_id: str, since: str | None = None) -> list[at.Job] | at.Problem:
        refused = self.login.refuses(self.config)
        return refused or self._echo(await self.airbyte.list_jobs(connection_id, since))

    async def close(self) -> None:
        pass


@dataclass
class MemoryPool:
    """Stands in for ClientPool: every server and credentials reach the same MemoryAirbyte,
    through a client of their own that logs in as `login` says."""

    airbyte: MemoryAirbyte
    configs: list[Any] = field(default_factory=list)
    login: MemoryLogin = field(default_factory=MemoryLogin)

    def get(self, config: Any) -> MemoryClient:
        self.configs.append(config)
        return MemoryClient(self.airbyte, self.login, config)

    def close_unused(self, in_use: Any) -> None:
        pass

    async def close(self) -> None:
        pass


NAMESPACE = "team"
SECRET_VALUE = "cs-MEMORY-SENTINEL-5d1e"  # distinctive, so tests can look for leaks
ECHOED = "<the credential of this request>"  # MemoryClient puts its own credential here


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


class Harness:
    """The operator (Watches) on MemoryKube and MemoryAirbyte, driven step by step.

    `settle()` delivers the stream's pending events and runs every step that is due until nothing
    moves; `run_for(s)` moves the fake clock from one due step to the next. `hold = True`
    keeps the stream's events back (a watch stream that lags); `crash()` is a SIGKILL and restart.
    """

    def __init__(self, allowed_urls: tuple[str, ...] = (), pool: Any = None, **options: Any) -> None:
        """`poll_mode="list"` runs the list walks on the fake clock (no timers of their own)."""
        from airbyte_watch.runtime.connections import Connections
        from airbyte_watch.runtime.watches import Options, Watches

        self._connections_type, self._watches_type, self._options_type = Connections, Watches, Options
        self.clock = FakeClock()
        self.kube = MemoryKube(self.clock)
        self.airbyte = MemoryAirbyte(self.clock)
        self.real_io = pool is not None  # a real ClientPool: steps wait on real sockets
        self.pool = pool if pool is not None else MemoryPool(self.airbyte)
        self.allowed_urls = allowed_urls
        self.options = {"startup_spread": 0.0, "patch_retry_delay": 5.0, "poll_mode": "get", **options}
        self.hold = False
        login = {"url": "https://airbyte.test/v1", "clientId": "id", "clientSecret": SECRET_VALUE}
        self.kube.put_data("secrets", NAMESPACE, "airbyte-default", login)
        self.start()

    def start(self) -> None:
        """A new operator process: it knows only what a list of the watches tells."""
        self.connections = self._connections_type(
            self.kube,
            allowed_urls=self.allowed_urls,
            monotonic=self.clock.monotonic,  # type: ignore[arg-type]
        )
        self.watches = self._watches_type(
            self.kube, self.connections, self.pool, self._options_type(**self.options),  # type: ignore[arg-type]
            clock=self.clock.now, monotonic=self.clock.monotonic, sleep=_no_sleep, walks=False,
        )  # fmt: skip
        self._walked: dict[int, float] = {}
        self._maintained = self.clock.monotonic()
        self._walking: dict[int, asyncio.Future[None]] = {}
        self.kube.pending.clear()  # the list below saw all of it
        for item in [copy.deepcopy(o) for o in self.kube.objects.values()]:
            self.watches.observe(None, item)
        self.watches.listed = True

    def crash(self) -> None:
        """SIGKILL: every step and walk in flight stops at its await; a new process starts."""
        for task in [*self.watches.scheduler._tasks, *self._walking.values()]:
            task.cancel()
        self.start()

    def deliver(self) -> bool:
        events = self.kube.take_pending()
        for type_, body in events:
            self.watches.observe(type_, body)
        return bool(events)

    async def relist(self) -> None:
        """The operator's own full list (at start, and every --resync-period): events kopf's
        watch missed (a 410 Gone, a broken stream) are lost, and a list tells what exists;
        what was deleted meanwhile is not there."""
        self.kube.pending.clear()
        await self.watches.relist()

    def _due_now(self) -> bool:
        due = self.watches.scheduler.next_due()
        return due is not None and due <= self.clock.monotonic()

    async def settle(self, rounds: int = 200) -> None:
        for _ in range(rounds):
            moved = False if self.hold else self.deliver()
            await self.watches.scheduler.run_due()
            for _ in range(20):
                await asyncio.sleep(0)
            if self.real_io and self.watches.scheduler._tasks:
                await asyncio.wait(list(self.watches.scheduler._tasks), timeout=10)
            if not moved and not self._due_now() and (self.hold or not self.kube.pending):
                return

    async def walk_due(self) -> None:
        """Start the list walks whose cadence has come, as each feed's own loop would (a walk
        may wait on a hanging Airbyte: it runs as a task, like every step)."""
        for feed in list(self.watches.feeds._feeds.values()):
            last = self._walked.setdefault(id(feed), self.clock.monotonic())
            if self.clock.monotonic() - last < feed.cadence():
                continue
            self._walked[id(feed)] = self.clock.monotonic()  # due again one cadence from now
            running = self._walking.get(id(feed))
            if running is not None and not running.done():
                continue  # the last walk still waits on Airbyte
            if feed.fallback is None and feed.watermark is not None:
                self._walking[id(feed)] = asyncio.ensure_future(feed.walk())
                for _ in range(20):
                    await asyncio.sleep(0)

    async def run_for(self, seconds: float) -> None:
        end = self.clock.monotonic() + seconds
        while True:
            await self.settle()
            await self.walk_due()
            await self.settle()
            await self.watches.maintain_once()
            self._maintained = self.clock.monotonic()
            due = self.watches.scheduler.next_due()
            # The maintenance loop runs every second (Watches.maintain): its refresh of the
            # Secrets in use steps the watches whose Secret changed.
            tick = self._maintained + 1.0
            due = tick if due is None else min(due, tick)
            walk = min((self._walked.get(id(f), self.clock.monotonic()) + f.cadence()
                        for f in self.watches.feeds._feeds.values()), default=None)  # fmt: skip
            if walk is not None and (due is None or walk < due):
                due = walk
            if due is None or due > end:
                self.clock.advance(max(0.0, end - self.clock.monotonic()))
                await self.settle()
                await self.watches.maintain_once()
                return
            self.clock.advance(max(0.0, due - self.clock.monotonic()))

    def obj(self, name: str) -> dict[str, Any]:
        return self.kube.objects[(NAMESPACE, name)]

    def reasons(self, name: str) -> list[str]:
        return [e["reason"] for e in self.kube.events_of(NAMESPACE, name)]
