"""Every watch has one owner: its step, run by the scheduler, never two at once.

Kubernetes' watch events only record what Kubernetes says in the table (no awaits, so an event
lands whole between two steps) and ask for a step. A step reads the watch as it is when it starts,
makes one decision, writes it (Events, then status), and plans the next step; if the spec
moved or a delete began while it ran, the next step comes at once. A delete, an edit of a
finished watch and a poll are all steps, so "the spec moved while I was writing" is handled in
one place.

A step's path: table → spec → job id (ConfigMap or trigger) → Secret → Airbyte → decision
core → StatusWriter (Events, then status) → finalizer → next step time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..airbyte import model as at
from ..airbyte.client import ClientPool
from ..airbyte.job_feed import Feeds
from ..airbyte.server_config import ServerConfig
from ..core.decision import Decision, decide, is_final, parse_timestamp, wants_cancel
from ..core.durations import parse_duration
from ..core.spec import InvalidSpec, WatchSpec, parse_spec
from ..core.text import DETAIL_LIMIT, clean
from ..kube.client import KubeClient, KubeError
from ..kube.namespaces import list_scopes, serves
from ..kube.sharding import Shard
from ..kube.status_writer import StatusWriter, Written
from ..monitoring.metrics import Metrics
from .connections import Connections
from .deletion import Deletion
from .job_source import JobSource
from .scheduler import Scheduler
from .table import Change, Key, Watch, WatchTable

log = logging.getLogger(__name__)

__all__ = ["Key", "Options", "Watch", "Watches"]


@dataclass
class Options:
    default_server_secret: str = "airbyte-default"
    startup_spread: float = 5.0  # first polls are spread over this many seconds, at most
    patch_retry_delay: float = 5.0  # after the API server refused a write
    concurrency: int = 64  # steps in flight at once
    delete_cancel_timeout: float = 30.0  # at most this long on a cancel before a delete goes on
    shard: Shard = field(default_factory=Shard)
    namespaces: list[str] = field(default_factory=list)  # watched namespaces or globs; [] = all
    resync_period: float = 600.0  # a full list this often catches deletes that no event told
    poll_mode: str = "list"  # list: one GET /jobs walk per server tells every watch; get: per job
    list_interval: float = 5.0  # seconds between two walks of a server (sooner if a watch asks)
    walk_budget: float | None = None  # requests/s per server (--max-requests-per-second)


class Decided(NamedTuple):
    """One step's decision and what it was made from."""

    decision: Decision
    spec: WatchSpec | InvalidSpec
    served: bool = False  # the list walks told Airbyte's answer: no request of its own
    answer: at.Job | at.Problem | None = None


class Watches:
    def __init__(
        self,
        kube: KubeClient,
        connections: Connections,
        clients: ClientPool,
        options: Options | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        walks: bool = True,  # False: the list walks are driven from outside (tests on a fake clock)
    ) -> None:
        self.kube = kube
        self.connections = connections
        self.clients = clients
        self.options = options = options or Options()
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.table = WatchTable(options.shard)
        self.scheduler = Scheduler(self.step, concurrency=options.concurrency, clock=monotonic)
        self.writer = StatusWriter(kube, self.metrics, clock, connections.secret_values)
        self.jobs = JobSource(kube, connections, clients, self.writer, clock)
        self.deletion = Deletion(kube, connections, clients, clock, monotonic, sleep,
                                 options.default_server_secret, options.delete_cancel_timeout,
                                 connections.secret_values)  # fmt: skip
        self.feeds = Feeds(
            monotonic,
            self._moved,
            on_fallback=lambda host: self.metrics.list_fallback.labels(host).set(1),
            on_page=self.metrics.observe_list_page,
            autostart=walks,
            sleep=sleep,
            list_interval=options.list_interval,
            budget=options.walk_budget,
        )
        self.listed = False  # the first list is in (readiness)
        # kopf's own first listing comes after ours: how many of the watches known then it has
        # yet to bring again, and what runs once it has (Service: settle the GC once more).
        self._unlisted: int | None = None
        self.on_listing_taken_in: Callable[[], None] = lambda: None
        self._resync_at = monotonic() + options.resync_period

    @property
    def known(self) -> dict[Key, Watch]:
        return self.table.known

    # --- what Kubernetes says ---------------------------------------------------------------

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Every watch event of every AirbyteJobWatch lands here (ADDED, MODIFIED, DELETED), and
        every listed object (type None). A list or watch of all namespaces also brings those
        the `--namespace` patterns leave out: they stop here."""
        if not self.serves(body):
            return
        try:
            change, watch = self.table.apply(event_type, body)
            if (
                event_type is None
                and self._unlisted is not None
                and watch is not None
                and change is not Change.NEW
            ):
                self._count_listed()
            self._changed(change, watch)
        except Exception:  # a bug or an object the schema let through: not a crash loop
            meta = body.get("metadata") or {}
            log.exception("%s/%s: could not take in its %s", meta.get("namespace"), meta.get("name"),
                          event_type or "listing")  # fmt: skip

    def expect_listing(self) -> None:
        """Our first list is in; kopf's own listing follows, bringing each watch again and
        making kopf's memory of it. Once it has brought as many as are known now,
        `on_listing_taken_in` runs, once (a watch deleted meanwhile: the next list counts)."""
        self._unlisted = len(self.table.known) or None

    def _count_listed(self) -> None:
        assert self._unlisted is not None
        self._unlisted -= 1
        if self._unlisted <= 0:
            self._unlisted = None
            self.on_listing_taken_in()

    def _changed(self, change: Change, watch: Watch | None) -> None:
        """What a change Kubernetes told (by an event or a full list) asks of the scheduler."""
        if watch is None:
            return
        if change is Change.GONE:
            self._let_go(watch)
        elif change is Change.NEW:
            self.metrics.set_phase(watch.key, watch.status.get("phase"))
            self._plan_first_step(watch)
        elif change in (Change.EDITED, Change.DELETING):
            self.scheduler.schedule(watch.key, 0.0)  # after the running step, if one runs

    def forget(self, key: Key) -> None:
        watch = self.table.forget(key)
        if watch is not None:
            self._let_go(watch)

    def _let_go(self, watch: Watch) -> None:
        if self.table.get(watch.key) is None:  # not replaced by a new watch of the same name
            self.metrics.set_phase(watch.key, None)
            self.scheduler.unschedule(watch.key)
            self.feeds.unwatch(watch.key)
            self.connections.release(watch.key)
        self.deletion.forget(watch.uid)

    def _moved(self, keys: Any) -> None:
        """A list walk saw these watches' jobs move (or their server go down or come back)."""
        for key in keys:
            if key in self.table.known:
                self.scheduler.schedule(key, 0.0)

    def _plan_first_step(self, watch: Watch) -> None:
        if is_final(watch.status) and not watch.stale:
            self.scheduler.unschedule(watch.key)
            return  # finished before; never polled again
        if self.listed:
            self.scheduler.schedule(watch.key, 0.0)  # created while we run: `kubectl wait` waits
            return
        # Spread first polls so that many watches found at start do not poll in one instant.
        spread = min(_interval_hint(watch.spec), self.options.startup_spread)
        self.scheduler.schedule(watch.key, random.uniform(0, spread))

    # --- keeping the table true and the caches small -----------------------------------------

    async def maintain(self, period: float = 1.0) -> None:
        """Runs beside the scheduler: resyncs when due, drops what nothing uses."""
        while True:
            await self.sleep(period)
            await self.maintain_once()

    async def maintain_once(self) -> None:
        if self.monotonic() >= self._resync_at:
            try:
                await self.resync()
            except KubeError as exc:
                log.warning("Resync of the watches failed (%s); retrying in 30s", exc)
                self._resync_at = self.monotonic() + 30.0
        # A Secret in use now says something else; the walks have not vouched for a job in time.
        for key in [*await self.connections.refresh(), *self.feeds.overdue()]:
            if key in self.table.known:
                self.scheduler.schedule(key, 0.0)
        self.connections.prune()
        await self.feeds.prune()
        self.clients.close_unused({w.server_key for w in self.known.values() if w.server_key})

    def scopes(self) -> list[str | None]:
        """What to list and watch: each named namespace, or all namespaces (None) when none is
        named or any pattern is a glob (then filtered by `serves`)."""
        return list_scopes(self.options.namespaces)

    def serves(self, item: Mapping[str, Any]) -> bool:
        patterns = self.options.namespaces
        return not patterns or serves(patterns, _namespace_of(item))

    async def relist(self, scopes: list[str | None] | None = None) -> dict[str | None, str]:
        """List every watch of `scopes` (default: all served); forget the ones that are gone
        though no event said so (a watch stream that broke misses DELETED events). Returns each
        scope's list resourceVersion, for a watch that continues from it."""
        scopes = self.scopes() if scopes is None else scopes
        if set(scopes) >= set(self.scopes()):
            self._resync_at = self.monotonic() + self.options.resync_period
        mark = self.table.mark()
        versions: dict[str | None, str] = {}
        for scope in scopes:
            async for page in self.kube.list_watches(scope):
                versions[scope] = page.resource_version
                for item in page.items:
                    self.observe(None, item)
        for watch in self.table.unseen_since(mark):
            if None in scopes or watch.namespace in scopes:
                log.info("%s/%s is gone (found by a list)", *watch.key)
                self.forget(watch.key)
        return versions

    async def resync(self) -> None:
        await self.relist()

    # --- one step of one watch ----------------------------------------------------------------

    async def step(self, key: Key) -> None:
        watch = self.table.get(key)
        if watch is None:
            return
        if watch.deleting:
            if not await self.deletion.let_go(watch) and not watch.deleted:
                self.scheduler.schedule(key, self.options.patch_retry_delay)
            return
        decided = await self._decide(watch)
        if decided is None:
            return  # deleted while it ran
        decision, spec, served, answer = decided
        before = watch.status
        written = await self.writer.write(watch, decision.status, decision.events)
        if written is Written.GONE:
            if self.table.get(key) is watch:
                self.forget(key)
            return
        if written is Written.RETRY:
            self.scheduler.schedule(key, self.options.patch_retry_delay)
            return
        watch.failures = decision.failures
        if not is_final(before) and is_final(watch.status):
            self._observe_detection(watch, before, answer)
        if isinstance(spec, WatchSpec):
            await self.deletion.keep_finalizer_in_step(watch, spec)
        delay = decision.next_poll_in
        if is_final(watch.status):
            self.feeds.unwatch(key)
            self.connections.release(key)
        elif served and delay is not None and decision.failures == 0:
            delay = self._quiet_until(watch, delay)
        self._plan_next(watch, delay)

    def _observe_detection(
        self, watch: Watch, before: Mapping[str, Any], answer: at.Job | at.Problem | None
    ) -> None:
        """How long after the job ended (by Airbyte's clock) its watch said so. Only for a job
        this watch saw waiting: not for one that had ended before the watch first read it (its
        "delay" would be the watch's lateness), nor for a watch that ended otherwise (timed out,
        job not found), whose job has not ended."""
        if not isinstance(answer, at.Job) or answer.status in at.WAITING or answer.updated is None:
            return
        if before.get("jobId") == answer.job_id and before.get("jobStatus") in at.WAITING:
            self.metrics.observe_detection(watch.server, self.clock().timestamp() - answer.updated)

    def _plan_next(self, watch: Watch, delay: float | None) -> None:
        if watch.deleted:
            return
        if watch.deleting or watch.stale:
            self.scheduler.schedule(watch.key, 0.0)  # moved while this step ran
        elif delay is not None:
            self.scheduler.schedule(watch.key, delay)
        else:
            self.scheduler.unschedule(watch.key)

    def _quiet_until(self, watch: Watch, delay: float) -> float:
        """A watch served by the list walks needs no step until its job moves (the walk says
        so), its deadline, or its safety re-read: whichever comes first."""
        try:
            deadline = parse_timestamp(str(watch.status["deadline"]))
        except (KeyError, ValueError):
            return delay
        until_deadline = (deadline - self.clock()).total_seconds()
        reread = self.feeds.next_reread(watch.key)
        until_reread = reread - self.monotonic() if reread is not None else delay
        return max(delay, min(until_deadline, until_reread))

    async def _decide(self, watch: Watch) -> Decided | None:
        """Gather what the decision needs (spec, job id, Airbyte's answer, a cancel at the
        deadline) and make the one decision of this step."""
        generation = watch.generation
        try:
            spec: WatchSpec | InvalidSpec = parse_spec(watch.spec, self.options.default_server_secret)
        except InvalidSpec as exc:
            spec = exc
        if is_final(watch.status) or isinstance(spec, InvalidSpec):
            return Decided(decide(spec, watch.status, watch.failures, None, self.clock(), generation), spec)
        answer: at.Job | at.Problem | None = None
        if spec.job_id is None:
            found = await self.jobs.job_id(watch, spec)
            if isinstance(found, at.Problem):
                answer = found
            else:
                spec = dataclasses.replace(spec, job_id=found)
        config: ServerConfig | at.Problem | None = None
        served = False
        if answer is None:
            config = await self.connections.resolve(watch.namespace, spec.server_secret)
            self.connections.use(watch.namespace, spec.server_secret, watch.key, spec.poll_interval)
            if isinstance(config, ServerConfig):
                answer, served, config = await self._read_job(watch, spec, config)
            else:
                answer = config
        assert answer is not None
        answer = self._clean(answer, config)
        if log.isEnabledFor(logging.DEBUG):
            said = f"{answer.kind}: {answer.detail}" if isinstance(answer, at.Problem) else answer.status
            log.debug("%s/%s: Airbyte says %s%s", *watch.key, said, " (from the list)" if served else "")
        now = self.clock()
        cancelled = None
        if (
            isinstance(config, ServerConfig)
            and spec.job_id is not None
            and wants_cancel(spec, watch.status, answer, now)
        ):
            client = self.clients.get(config)
            if served:
                # The walk's news may be an interval old, and Airbyte cancels whatever the
                # connection runs now: read the job itself before cancelling.
                answer, served = self._clean(await client.get_job(spec.job_id), config), False
            if wants_cancel(spec, watch.status, answer, now):
                # The job was read running in this very step, so it is still the connection's job.
                outcome = await client.cancel_job(spec.job_id)
                cancelled = (
                    self._clean(outcome, config).detail if isinstance(outcome, at.Problem) else outcome
                )
        if watch.deleted:
            return None
        decision = decide(spec, watch.status, watch.failures, answer, now, generation, cancelled)
        return Decided(decision, spec, served, answer)

    async def _read_job(
        self, watch: Watch, spec: WatchSpec, config: ServerConfig, again: bool = True
    ) -> tuple[at.Job | at.Problem, bool, ServerConfig]:
        """The job for this step, whether the list walks served it (no request of its own), and
        the credentials it was read with. Credentials Airbyte refused send the watch to its
        Secret first: if it holds others by now (a rotation), those are used at once."""
        assert spec.job_id is not None
        watch.server, watch.server_key = config.host, config.key
        started = self.monotonic()
        client = self.clients.get(config)
        if self.options.poll_mode == "list" and config.api == "public":
            answer, served = await self.feeds.read(
                config.key, client, config.host, spec.job_id, watch.key, spec.poll_interval
            )  # type: ignore[arg-type]
        else:
            answer, served = await client.get_job(spec.job_id), False
        if not served:
            self.metrics.observe_poll(config.host, answer, self.monotonic() - started)
        if isinstance(answer, at.Problem) and answer.kind == at.AUTH_FAILED and again:
            refused = self.feeds.failed_at(config.key) if served else started
            # One read of the Secret per refusal, shared by every watch the refusal reaches.
            fresh = await self.connections.resolve(watch.namespace, spec.server_secret, read_after=refused)
            if isinstance(fresh, ServerConfig) and fresh.key != config.key:
                log.info("%s/%s: Secret %r holds other credentials now; using them", *watch.key,
                         spec.server_secret)  # fmt: skip
                return await self._read_job(watch, spec, fresh, again=False)
            if not isinstance(fresh, ServerConfig):
                return fresh, False, config
        return answer, served, config

    def _clean(self, answer: Any, config: Any = None) -> Any:
        """Airbyte's words, bounded and without any credential value, before anything uses them.
        `config`: the credentials this very answer was asked with (they may be uncached by now,
        e.g. after a 401)."""
        secrets = list(self.connections.secret_values())
        if isinstance(config, ServerConfig):
            secrets.extend(config.credential_values())
        if isinstance(answer, at.Problem):
            return dataclasses.replace(answer, detail=clean(answer.detail, secrets, DETAIL_LIMIT))
        if isinstance(answer, at.Job) and answer.failure:
            return dataclasses.replace(answer, failure=clean(answer.failure, secrets, DETAIL_LIMIT))
        return answer


def _namespace_of(item: Mapping[str, Any]) -> str:
    return str((item.get("metadata") or {}).get("namespace", ""))


def _interval_hint(spec: Mapping[str, Any]) -> float:
    try:
        return max(1.0, parse_duration(spec.get("pollInterval", "30s")))
    except ValueError:
        return 30.0
