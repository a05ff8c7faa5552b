"""What kopf costs per AirbyteJobWatch watch event on the operator's intake path, in process.

No cluster and no network: the operator's real intake registry (`handlers.intake`, whose one
`on.event` handler `take_in` calls `memo.service.watches.observe(type, object)`, here a counting
stub) and its real settings (`kube.kopf_settings.intake_settings`) are driven through kopf's own
per-object queueing, `kopf._core.reactor.queueing.watcher`, whose watch stream
(`kopf._cogs.clients.watching.infinite_watch`, the only thing replaced, and only in this script)
yields prebuilt events: N listing events (type None, pages of `--page`), a `Bookmark.LISTED`,
then `--rounds` rounds of one MODIFIED each (the echoes of our status writes), `--gap` seconds of
wall time between rounds (longer than the intake's idle_timeout of 1 s: each echo meets a
fresh kopf worker, as at a cold start), and after the last, until every worker has idled out (a
real stream never ends; its end would stop the workers early). The processor is
`processing.process_resource_event`, bound as kopf's running.py binds it. Bodies are
AirbyteJobWatches as the API server returns them (metadata with a kubectl last-applied annotation
and the managedFields of kubectl and of our status writer, spec with its defaults, status with
three conditions), about 3.3 KB of JSON each; the listed ones already carry an earlier replica's
status (a restart).

Measured, per variant of settings, with the same events: CPU seconds (time.process_time, the
whole process) per event, from the watcher's start to its end after its workers exited. Then
the baseline once more without the queueing (process_resource_event awaited in a loop: kopf's
processing alone), and the baseline under cProfile for a breakdown by kopf module and function
(cProfile inflates the times; only the shares are reported).

Run from the repository root (one process, about a minute of CPU at the default N):

    .venv/bin/python bench/kopf_event_cost.py            # writes the results file below
    .venv/bin/python bench/kopf_event_cost.py --n 2000 --out /tmp/x.txt   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import datetime
import gc
import importlib.metadata
import io
import json
import logging
import platform
import pstats
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

import kopf  # noqa: E402
from airbyte_watch import GROUP, KIND, PLURAL, VERSION, handlers  # noqa: E402
from airbyte_watch.kube import kopf_settings  # noqa: E402
from kopf._cogs.aiokits import aiotoggles  # noqa: E402
from kopf._cogs.clients import watching  # noqa: E402
from kopf._cogs.structs import references  # noqa: E402
from kopf._core.actions import lifecycles, loggers  # noqa: E402
from kopf._core.engines import indexing  # noqa: E402
from kopf._core.reactor import inventory, processing, queueing  # noqa: E402

OUT = ROOT / "bench" / "results" / "profiles" / "2026-12-02-kopf-event-cost.txt"

RESOURCE = references.Resource(
    group=GROUP, version=VERSION, plural=PLURAL, kind=KIND, singular="airbytejobwatch",
    shortcuts=frozenset({"ajw"}), categories=frozenset({"airbyte"}), subresources=frozenset({"status"}),
    namespaced=True, preferred=True,
    verbs=frozenset({"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}),
)  # fmt: skip

RawEvent = dict[str, Any]
TAIL_CAP = 120.0  # wall seconds that the stream waits, after its last event, for the workers to end
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


# --- the bodies --------------------------------------------------------------------------------


def _fields(*paths: str) -> dict[str, Any]:
    """fieldsV1 of the given paths (parts split by "|"), as the API server writes them (`f:` keys)."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path.split("|"):
            node = node.setdefault(part if part.startswith("k:") else f"f:{part}", {})
    return tree


SPEC_FIELDS = ("spec|jobId", "spec|pollInterval", "spec|timeout", "spec|serverRef|name")
STATUS_FIELDS = tuple(
    f"status|{name}" for name in (
        "observedGeneration", "phase", "jobId", "jobStatus", "jobType", "connectionId", "startedAt",
        "deadline", "attempts", "transitions", "message", "rowsSynced", "bytesSynced",
    )
) + tuple(
    f'status|conditions|k:{{"type":"{kind}"}}|{field}'
    for kind in ("Ready", "Reconciling", "Stalled")
    for field in ("type", "status", "observedGeneration", "lastTransitionTime", "reason", "message")
)  # fmt: skip


def make_body(i: int, resource_version: int, round_: int) -> dict[str, Any]:
    """The i-th AirbyteJobWatch as a list or watch answer carries it, after `round_` status writes."""
    created = "2026-12-02T18:00:00Z"
    at = f"2026-12-02T18:00:{round_ * 3:02d}Z"
    job = 100_000 + i
    running = round_ < 3
    reason = "JobRunning" if running else "JobSucceeded"
    message = f"job {job} is {'running' if running else 'succeeded'} (attempt 1)"
    conditions = [
        {"type": "Ready", "status": "Unknown" if running else "True", "observedGeneration": 1,
         "lastTransitionTime": at, "reason": reason, "message": message},
        {"type": "Reconciling", "status": "True" if running else "False", "observedGeneration": 1,
         "lastTransitionTime": at, "reason": reason, "message": message},
        {"type": "Stalled", "status": "False", "observedGeneration": 1,
         "lastTransitionTime": created, "reason": reason, "message": message},
    ]  # fmt: skip
    status: dict[str, Any] = {"observedGeneration": -1}
    if round_:
        status = {
            "observedGeneration": 1, "phase": "Running" if running else "Succeeded", "jobId": job,
            "jobStatus": "running" if running else "succeeded", "jobType": "sync",
            "connectionId": f"6f1c2b0e-3d4a-4b5c-8d9e-{job:012d}", "startedAt": created,
            "deadline": "2026-12-02T20:00:00Z", "attempts": 1, "transitions": round_, "message": message,
            "rowsSynced": 0 if running else 123_456, "bytesSynced": 0 if running else 98_765_432,
            "conditions": conditions,
        }  # fmt: skip
    spec = {"jobId": job, "serverRef": {"name": "airbyte"}, "pollInterval": "5s", "timeout": "2h"}
    applied = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "spec": spec,
        "metadata": {"annotations": {}, "name": f"watch-{i:05d}", "namespace": f"bench-{i % 10}"},
    }
    managed: list[dict[str, Any]] = [
        {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": f"{GROUP}/{VERSION}",
         "time": created, "fieldsType": "FieldsV1",
         "fieldsV1": _fields(*SPEC_FIELDS, f"metadata|annotations|{LAST_APPLIED}",
                             "metadata|labels|app.kubernetes.io/part-of")},
    ]  # fmt: skip
    if round_:
        managed.append({
            "manager": "airbyte-watch", "operation": "Update", "apiVersion": f"{GROUP}/{VERSION}",
            "time": at, "fieldsType": "FieldsV1", "fieldsV1": _fields(*STATUS_FIELDS),
            "subresource": "status",
        })  # fmt: skip
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": f"watch-{i:05d}", "namespace": f"bench-{i % 10}",
            "uid": f"0b6f6a52-9d1e-4c3b-a7f0-{i:012d}", "resourceVersion": str(resource_version),
            "generation": 1, "creationTimestamp": created,
            "annotations": {LAST_APPLIED: json.dumps(applied) + "\n"},
            "labels": {"app.kubernetes.io/part-of": "bench", "bench.airbyte.watch/batch": str(i // 500)},
            "managedFields": managed,
        },
        "spec": {
            **spec, "backoff": {"exponential": True, "maxDelay": "5m"}, "jobType": "sync",
            "ifRunning": "Adopt",
            "cancelOnTimeout": False, "cancelOnDelete": False, "onUnknownStatus": "Fail",
        },
        "status": status,
    }  # fmt: skip


def make_rounds(n: int, rounds: int) -> list[list[RawEvent]]:
    """Round 0: the listing (type None) of objects that carry an earlier replica's status (a restart);
    rounds 1..: one MODIFIED per object, our status writes' echoes (the last: the job succeeded). Each
    body is its own object, fresh as the JSON decoder makes it (json.loads of its dump)."""
    out: list[list[RawEvent]] = []
    rv = 1000
    for r in range(rounds + 1):
        events: list[RawEvent] = []
        for i in range(n):
            rv += 1
            body = json.loads(json.dumps(make_body(i, rv, r + 1)))
            events.append({"type": None if r == 0 else "MODIFIED", "object": body})
        out.append(events)
    return out


# --- the operator's side ----------------------------------------------------------------------


class StubWatches:
    """What `service.watches` is to `take_in`: here it only counts."""

    def __init__(self) -> None:
        self.seen = 0
        self.types: dict[str | None, int] = defaultdict(int)

    def observe(self, event_type: str | None, body: Any) -> None:
        self.seen += 1
        self.types[event_type] += 1


@dataclasses.dataclass
class StubService:
    watches: StubWatches


def settings_baseline() -> kopf.OperatorSettings:
    return kopf_settings.intake_settings(argparse.Namespace())


def _with(**changes: Any) -> Callable[[], kopf.OperatorSettings]:
    """The baseline with some fields changed: `queueing__idle_timeout=5.0` and so on."""

    def build() -> kopf.OperatorSettings:
        settings = settings_baseline()
        for dotted, value in changes.items():
            group, field = dotted.split("__")
            setattr(getattr(settings, group), field, value)
        return settings

    return build


def _kopf_defaults() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True  # no cluster to scan here; not on the per-event path
    return settings


class NoneDiffBase(kopf_settings.NoDiffBase):
    """As the operator's NoDiffBase, but `build` returns None, not {}: `_detect_causes` then skips
    `progress_storage.clear` (two deep copies and stanza cleaning of the {}) for every event."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None


class NoProgress(kopf.ProgressStorage):
    """A progress storage for an operator with no change handlers: nothing stored, nothing
    cleared (kopf's SmartProgressStorage deep-copies the essence twice in `clear`)."""

    def fetch(self, *, key: Any, body: kopf.Body) -> None:
        return None

    def store(self, *, key: Any, record: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        return None

    def purge(self, *, key: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        return None

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        return None

    def clear(self, *, essence: Any) -> Any:
        return essence


@dataclasses.dataclass
class Variant:
    name: str
    what: str
    settings: Callable[[], kopf.OperatorSettings]
    info_logging: bool = False  # kopf.objects at INFO (cli.py sets WARNING): not a setting


VARIANTS = [
    Variant("baseline", "intake_settings(): NoDiffBase, posting off, idle_timeout 1.0", settings_baseline),
    Variant("idle-0.1", "queueing.idle_timeout = 0.1", _with(queueing__idle_timeout=0.1)),
    Variant("idle-5", "queueing.idle_timeout = 5.0 (kopf's default; outlives the gaps)",
            _with(queueing__idle_timeout=5.0)),
    Variant("idle-600", "queueing.idle_timeout = 600 (a worker per object for the whole run)",
            _with(queueing__idle_timeout=600.0)),
    Variant("workers-1000", "queueing.worker_limit = 1000 (each worker still idles 1 s: 1,000 objects/s)",
            _with(queueing__worker_limit=1000)),
    Variant("consistency-0", "persistence.consistency_timeout = 0",
            _with(persistence__consistency_timeout=0.0)),
    Variant("posting-on", "posting.enabled = True (kopf's default)", _with(posting__enabled=True)),
    Variant("diffbase-default", "persistence.diffbase_storage = kopf's AnnotationsDiffBaseStorage",
            _with(persistence__diffbase_storage=kopf.AnnotationsDiffBaseStorage())),
    Variant("diffbase-none", "persistence.diffbase_storage whose build() returns None (NoneDiffBase here)",
            _with(persistence__diffbase_storage=NoneDiffBase())),
    Variant("progress-none", "persistence.progress_storage = a no-op ProgressStorage (NoProgress here)",
            _with(persistence__progress_storage=NoProgress())),
    Variant("best", "idle_timeout 600 + NoneDiffBase + NoProgress",
            _with(queueing__idle_timeout=600.0, persistence__diffbase_storage=NoneDiffBase(),
                  persistence__progress_storage=NoProgress())),
    Variant("kopf-defaults", "kopf.OperatorSettings() as it comes (scanning off)", _kopf_defaults),
    Variant("info-logging", "baseline, but logger kopf.objects at INFO to a null stream (not a setting: "
            "cli.py's WARNING avoided)", settings_baseline, info_logging=True),
]  # fmt: skip


# --- driving kopf ------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    cpu: float
    wall: float
    events: int
    seen: int
    peak_workers: int


def _processor(settings: kopf.OperatorSettings, watches: StubWatches) -> Callable[..., Any]:
    """process_resource_event bound as kopf's running.py binds it (spawn_tasks)."""
    import functools

    return functools.partial(
        processing.process_resource_event,
        lifecycle=lifecycles.get_default_lifecycle(),
        registry=handlers.intake,
        settings=settings,
        indexers=indexing.OperatorIndexers(),
        memories=inventory.ResourceMemories(),
        memobase=kopf.Memo(service=StubService(watches)),
        operator_paused=aiotoggles.ToggleSet(any),
        event_queue=asyncio.Queue(),
        resource=RESOURCE,
    )


async def drive_queueing(settings: kopf.OperatorSettings, rounds: list[list[RawEvent]], page: int,
                         burst: int, gap: float) -> Run:  # fmt: skip
    watches = StubWatches()
    peak = 0
    total = sum(len(e) for e in rounds)
    lasting = settings.queueing.idle_timeout >= 60  # workers that outlive the run: ended by the EOS

    async def fake_watch(**_: Any) -> AsyncIterator[watching.Bookmark | RawEvent]:
        nonlocal peak
        for r, events in enumerate(rounds):
            step = page if r == 0 else burst
            for k, event in enumerate(events):
                yield event
                if k % step == step - 1:
                    await asyncio.sleep(0)  # the next read from the socket
            if r == 0:
                yield watching.Bookmark.LISTED
            peak = max(peak, _workers())
            if r < len(rounds) - 1:
                await asyncio.sleep(gap)
        # A real stream does not end: wait until every event is handled and every worker has idled
        # out on its own (else the EOS that the end of the stream sends would end them early).
        deadline = asyncio.get_running_loop().time() + TAIL_CAP
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            workers = _workers()
            peak = max(peak, workers)
            if watches.seen >= total and (lasting or not workers):
                break

    def _workers() -> int:
        return sum(1 for t in asyncio.all_tasks() if t.get_name().startswith("worker for"))

    original = watching.infinite_watch
    watching.infinite_watch = fake_watch  # type: ignore[assignment]
    try:
        operator_indexed = aiotoggles.ToggleSet(all)
        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await queueing.watcher(
            namespace=None, settings=settings, resource=RESOURCE,
            processor=_processor(settings, watches), operator_paused=aiotoggles.ToggleSet(any),
            operator_indexed=operator_indexed, resource_indexed=None,
        )  # fmt: skip
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        watching.infinite_watch = original  # type: ignore[assignment]
    return Run(cpu, wall, sum(len(e) for e in rounds), watches.seen, peak)


async def drive_direct(settings: kopf.OperatorSettings, rounds: list[list[RawEvent]]) -> Run:
    """kopf's processing alone: process_resource_event awaited for each event, no queueing."""
    watches = StubWatches()
    processor = _processor(settings, watches)
    pressure = asyncio.Event()
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for events in rounds:
        for event in events:
            await processor(raw_event=event, stream_pressure=pressure, resource_indexed=None,
                            operator_indexed=None, consistency_time=None)  # fmt: skip
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return Run(cpu, wall, sum(len(e) for e in rounds), watches.seen, 0)


def run_variant(variant: Variant, rounds: list[list[RawEvent]], args: argparse.Namespace,
                direct: bool = False) -> Run:  # fmt: skip
    objects = logging.getLogger("kopf.objects")
    level, handlers_ = objects.level, objects.handlers[:]
    if variant.info_logging:
        objects.setLevel(logging.INFO)
        sink = logging.StreamHandler(io.StringIO())
        sink.setFormatter(loggers.make_formatter(loggers.LogFormat.FULL))
        objects.handlers[:] = [sink]
        objects.propagate = False
    try:
        settings = variant.settings()
        if direct:
            return asyncio.run(drive_direct(settings, rounds))
        return asyncio.run(drive_queueing(settings, rounds, args.page, args.burst, args.gap))
    finally:
        objects.setLevel(level)
        objects.handlers[:] = handlers_
        objects.propagate = True


# --- the profile -------------------------------------------------------------------------------

# (where in the path, what the function's file or name says), first match wins.
CATEGORIES: list[tuple[str, Callable[[str, str], bool]]] = [
    ("handler: take_in + stub observe", lambda f, n: "airbyte_watch" in f or "kopf_event_cost" in f),
    ("memories/inventory (recall, ResourceMemory)", lambda f, n: "inventory.py" in f),
    ("loggers (ObjectLogger x3, logging calls)",
     lambda f, n: "actions/loggers.py" in f or f.endswith("logging/__init__.py")),
    ("throttling (throttled ctx manager)", lambda f, n: "throttlers.py" in f or f.endswith("contextlib.py")),
    ("indexing (index_resource)", lambda f, n: "indexing.py" in f),
    ("cause detection (registries, causes, filters)",
     lambda f, n: any(s in f for s in ("registries.py", "intents/causes.py", "intents/handlers.py",
                                       "intents/filters.py", "callbacks.py", "references.py"))),
    ("diff/diffbase/progress storage",
     lambda f, n: any(s in f for s in ("diffs.py", "diffbase.py", "progress.py", "copy.py"))),
    ("Body/Patch wrapping (bodies, patches, dicts)",
     lambda f, n: any(s in f for s in ("bodies.py", "patches.py", "structs/dicts.py", "ephemera.py"))),
    ("handler invocation (execution, invocation, progression)",
     lambda f, n: any(s in f for s in ("execution.py", "invocation.py", "progression.py", "subhandling.py",
                                       "lifecycles.py", "finalizers.py"))),
    ("application (apply, patch_and_check)", lambda f, n: "application.py" in f),
    ("processing.py itself (process_resource_event/_causes, _detect_causes)",
     lambda f, n: "processing.py" in f),
    ("queueing/worker tasks (watcher, worker, Scheduler, asyncio queues/tasks/timeouts)",
     lambda f, n: any(s in f for s in ("queueing.py", "aiotasks.py", "aiotoggles.py", "aiotime.py"))
     or "/asyncio/" in f or n in ("<method 'run' of '_contextvars.Context' objects>",)),
]  # fmt: skip

# The functions whose cumulative share is reported (file part, name).
KEY_FUNCTIONS = [
    ("queueing.py", "watcher"), ("queueing.py", "worker"), ("aiotasks.py", "spawn"),
    ("aiotasks.py", "_task_spawner"), ("aiotasks.py", "_task_cleaner"), ("tasks.py", "wait_for"),
    ("processing.py", "process_resource_event"), ("inventory.py", "recall"),
    ("loggers.py", "__init__"), ("bodies.py", "__init__"), ("patches.py", "__init__"),
    ("throttlers.py", "throttled"), ("contextlib.py", "__aenter__"), ("contextlib.py", "__aexit__"),
    ("indexing.py", "index_resource"), ("processing.py", "process_resource_causes"),
    ("processing.py", "_detect_causes"), ("registries.py", "get_extra_fields"),
    ("registries.py", "has_handlers"), ("diffs.py", "diff"), ("causes.py", "detect_watching_cause"),
    ("processing.py", "process_watching_cause"), ("registries.py", "get_handlers"),
    ("progression.py", "from_scratch"), ("progression.py", "with_handlers"),
    ("execution.py", "execute_handlers_once"), ("execution.py", "execute_handler_once"),
    ("execution.py", "invoke_handler"), ("invocation.py", "invoke"), ("causes.py", "async_kwargs"),
    ("handlers.py", "take_in"), ("progression.py", "deliver_results"), ("application.py", "apply"),
    ("finalizers.py", "is_deletion_ongoing"),
]  # fmt: skip


def profile(variant: Variant, rounds: list[list[RawEvent]], args: argparse.Namespace,
            direct: bool) -> pstats.Stats:  # fmt: skip
    prof = cProfile.Profile(time.process_time)  # CPU, not the wall time of the gaps
    prof.enable()
    run_variant(variant, rounds, args, direct=direct)
    prof.disable()
    return pstats.Stats(prof)


def categorize(stats: pstats.Stats) -> tuple[list[tuple[str, float]], float]:
    by: dict[str, float] = defaultdict(float)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = 0.0
    for (file, _line, name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        total += tottime
        for label, match in CATEGORIES:
            if match(file, name):
                by[label] += tottime
                break
        else:
            by["other (builtins, dict/str methods, gc, the fake stream)"] += tottime
    return sorted(by.items(), key=lambda kv: -kv[1]), total


def cumulative(stats: pstats.Stats, total: float) -> list[str]:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    lines = []
    for part, fname in KEY_FUNCTIONS:
        hits = [(k, v) for k, v in raw.items() if k[0].endswith(part) and k[2] == fname]
        if not hits:
            continue
        calls = sum(v[1] for _k, v in hits)
        cum = sum(v[3] for _k, v in hits)
        where = "/".join(Path(hits[0][0][0]).parts[-2:])
        lines.append(f"{100 * cum / total:6.1f}%  {calls:>8}  {where}:{fname}")
    return lines


def top_cumulative(stats: pstats.Stats, total: float, count: int) -> list[str]:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(raw.items(), key=lambda kv: -kv[1][3])
    out = []
    for (file, _line, name), (_cc, nc, _tt, ct, _callers) in rows:
        if "kopf" not in file and "/asyncio/" not in file:
            continue
        where = "/".join(Path(file).parts[-2:])
        out.append(f"{100 * ct / total:6.1f}%  {nc:>8}  {where}:{name}")
        if len(out) == count:
            break
    return out


def top_self(stats: pstats.Stats, total: float, count: int) -> list[str]:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:count]
    return [f"{100 * tt / total:6.1f}%  {nc:>8}  {'/'.join(Path(file).parts[-2:])}:{name}"
            for (file, _line, name), (_cc, nc, tt, _ct, _callers) in rows]  # fmt: skip


# --- the report --------------------------------------------------------------------------------


def _sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False).stdout.strip()
    except OSError:
        return "?"


def machine() -> str:
    for line in _sh("lscpu").splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="objects (each: a listing event + rounds)")
    parser.add_argument("--rounds", type=int, default=2, help="MODIFIED events per object")
    parser.add_argument("--page", type=int, default=500, help="listing events between yields to the loop")
    parser.add_argument("--burst", type=int, default=20, help="watch events between yields to the loop")
    parser.add_argument("--gap", type=float, default=2.0, help="wall seconds between rounds")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant, interleaved")
    parser.add_argument("--variants", default="", help="comma-separated names (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    gc.set_threshold(20_000, 20, 20)  # as cli.main sets it
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # as cli.main sets it

    wanted = set(filter(None, args.variants.split(",")))
    variants = [v for v in VARIANTS if not wanted or v.name in wanted]
    rounds = make_rounds(args.n, args.rounds)
    gc.freeze()  # the prebuilt events are the fake API server's, not kopf's: kept out of gc's scans
    events = sum(len(e) for e in rounds)
    sizes = [len(json.dumps(rounds[r][0]["object"])) for r in range(len(rounds))]

    runs: dict[str, list[Run]] = defaultdict(list)
    for _ in range(args.repeat):  # interleaved: a slow spell of the machine hits every variant alike
        for variant in variants:
            runs[variant.name].append(run_variant(variant, rounds, args))
    results: list[tuple[Variant, Run]] = []
    for variant in variants:
        run = min(runs[variant.name], key=lambda r: r.cpu)
        results.append((variant, run))
        print(f"{variant.name:18} {run.cpu:7.2f} s CPU  {1e6 * run.cpu / events:7.1f} us/event  "
              f"wall {run.wall:6.1f} s  seen {run.seen}  peak workers {run.peak_workers}",
              flush=True)  # fmt: skip
    base = next((r for v, r in results if v.name == "baseline"), results[0][1])
    direct = min((run_variant(VARIANTS[0], rounds, args, direct=True) for _ in range(args.repeat)),
                 key=lambda r: r.cpu)  # fmt: skip
    print(f"{'direct':18} {direct.cpu:7.2f} s CPU  {1e6 * direct.cpu / events:7.1f} us/event", flush=True)

    prof_q = profile(VARIANTS[0], rounds, args, direct=False)
    prof_d = profile(VARIANTS[0], rounds, args, direct=True)
    cats_q, total_q = categorize(prof_q)
    cats_d, total_d = categorize(prof_d)

    commit = _sh("git", "rev-parse", "--short", "HEAD")
    dirty = " (+ uncommitted changes)" if _sh("git", "status", "--porcelain", "--", "operator") else ""
    out: list[str] = [
        "# kopf's CPU per watch event on the intake path, in process "
        "(written by bench/kopf_event_cost.py)",
        f"# date {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, commit {commit}{dirty}, "
        f"machine {machine()} ({_cpu_count()} CPUs), Python {platform.python_version()}, "
        f"kopf {importlib.metadata.version('kopf')}",
        f"# N = {args.n} objects: {args.n} listing events (type None, {args.page} per loop turn), then "
        f"{args.rounds} x {args.n} MODIFIED ({args.burst} per loop turn), {args.gap:g} s wall between "
        f"rounds; {events} events",
        f"# body JSON sizes per round: {', '.join(f'{s} B' for s in sizes)}; handler: handlers.take_in "
        "to a counting stub observe",
        "# path: queueing.watcher (fake infinite_watch) -> worker per object -> "
        "processing.process_resource_event;",
        "# 'direct' = process_resource_event awaited in a loop (no watcher, workers, queues)",
        f"# CPU = time.process_time() of the whole process, watcher start to end (workers idled out); "
        f"the least of {args.repeat} runs",
        "",
        f"{'variant':18} {'CPU s':>7} {'us/event':>9} {'vs base':>8} {'wall s':>7} {'seen':>6} "
        f"{'peak wk':>7}  settings",
    ]  # fmt: skip
    for variant, run in results:
        delta = 100 * (run.cpu - base.cpu) / base.cpu
        out.append(f"{variant.name:18} {run.cpu:7.2f} {1e6 * run.cpu / events:9.1f} {delta:+7.1f}% "
                   f"{run.wall:7.1f} {run.seen:>6} {run.peak_workers:>7}  {variant.what}")  # fmt: skip
    out.append(f"{'direct (baseline)':18} {direct.cpu:7.2f} {1e6 * direct.cpu / events:9.1f} "
               f"{100 * (direct.cpu - base.cpu) / base.cpu:+7.1f}% {direct.wall:7.1f} {direct.seen:>6} "
               f"{'-':>7}  processing alone: the rest of the baseline is the queueing")  # fmt: skip
    for title, cats, total, stats in (
        ("baseline through the queueing", cats_q, total_q, prof_q),
        ("baseline direct (processing alone)", cats_d, total_d, prof_d),
    ):
        out += ["", f"## cProfile, {title}: self time by part of the path (share of all profiled time)"]
        out += [f"{100 * t / total:6.1f}%  {label}" for label, t in cats]
        out += ["", f"## {title}: cumulative share of key functions (share, calls, function)"]
        out += cumulative(stats, total)
        out += ["", f"## {title}: top 30 kopf/asyncio functions by cumulative share"]
        out += top_cumulative(stats, total, 30)
        out += ["", f"## {title}: top 25 functions by self time"]
        out += top_self(stats, total, 25)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out) + "\n")
    print(f"wrote {args.out}")


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
