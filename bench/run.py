"""The scale benchmark: N watches per poll mode, the operator against the floor, in one run.

For each N: a fresh control plane; N new watches for each poll mode and N for the floor; the API
server's write limit (bench/floor.py --sweep); then, for each mode, the operator's run
(bench/scenario.py) and the floor's (bench/floor.py), each against its own fake Airbyte, with
the same job schedule. Writes bench/results/<date>-<commit>.json and PNG plots beside it;
bench/report.py renders docs/performance.md's table from that file.

    python -m bench.run --n 1000 --n 10000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.kube import Kube
from bench.procs import FakeProcess
from bench.scenario import OperatorRun, Settings
from tests.support.controlplane import ROOT, ControlPlane, running

FIRST_ID = 100_000
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "arch": platform.machine(),
        "kernel": platform.release(),
    }


def commit() -> tuple[str, bool]:
    """The commit measured, and whether the work tree had uncommitted changes to tracked files."""
    head = subprocess.run(
        ["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    )
    return head.stdout.strip() or "unknown", bool(dirty.stdout.strip())


def job_schedule(n: int, job_min: float, job_max: float, seed: int) -> list[dict[str, Any]]:
    """When each job ends, counted from the start of the finish phase, and how."""
    rng = random.Random(seed)
    return [
        {
            "id": FIRST_ID + i,
            "finishIn": round(rng.uniform(job_min, job_max), 3),
            "final": rng.choice(["succeeded", "succeeded", "failed", "cancelled"]),
        }
        for i in range(n)
    ]


def default_job_max(n: int, job_min: float) -> float:
    """Jobs end over 2 minutes up to N = 10,000, and over up to 5 minutes above: 50,000 jobs
    ending within 2 minutes need 830 writes/s, more than this API server takes (its limit is
    measured in the same run), and detection would measure the API server, not the operator."""
    return job_min + 120.0 * min(2.5, max(1.0, n / 10_000))


def minimum_writes(schedule: list[dict[str, Any]]) -> int:
    """The writes no implementation can avoid: for each status a job takes while watched (running,
    then its final one), one status patch and one Event."""
    return sum(2 * len({"running", job["final"]}) for job in schedule)


async def create_watches(
    plane: ControlPlane, namespaces: list[str], n: int, interval: float, fake_url: str
) -> None:
    async with Kube(plane.kubeconfig, concurrency=32) as kube:
        limit = asyncio.Semaphore(32)

        async def one(ns: str, i: int) -> None:
            async with limit:
                await kube.create_watch(
                    ns,
                    f"w{FIRST_ID + i}",
                    {"jobId": FIRST_ID + i, "pollInterval": f"{interval:g}s", "timeout": "2h"},
                )

        for ns in namespaces:
            await kube.create_namespace(ns)
            await kube.create_secret(ns, "airbyte-default", {"url": fake_url})
        await asyncio.gather(*(one(ns, i) for ns in namespaces for i in range(n)))


def run_floor(plane: ControlPlane, namespace: str, fake: FakeProcess, args: list[str]) -> dict[str, Any]:
    spawned = time.time()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.floor",
            "--kubeconfig",
            str(plane.kubeconfig),
            "--namespace",
            namespace,
            "--airbyte",
            fake.api,
            "--fake",
            fake.root,
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the floor failed: {done.stderr[-3000:]}")
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    result["spawned_at"] = spawned
    return result


def run_mode(
    plane: ControlPlane,
    ns: str,
    n: int,
    mode: str,
    opts: argparse.Namespace,
    settings: Settings,
    schedule: list[dict[str, Any]],
    folder: Path,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The operator's run in one poll mode, then the floor's on the same watches."""
    jobs_file, schedule_file = folder / f"jobs-{n}.json", folder / f"schedule-{n}.json"
    t = time.monotonic()
    fake = FakeProcess(jobs_file)
    secret = json.dumps({"stringData": {"url": fake.api}})
    plane.kubectl("-n", ns, "patch", "secret", "airbyte-default", "--type=merge", "-p", secret)
    print(f"[n={n}] operator, --poll-mode {mode}...", flush=True)
    try:
        operator = OperatorRun(plane, ns, n, mode, folder, fake, settings).run(schedule)
    finally:
        stderr = fake.stop()
    operator["fake_stderr"] = stderr[-2000:]
    timings[f"operator_{mode}_s"] = round(time.monotonic() - t, 1)
    print(
        f"[n={n}] operator {mode}: cold {operator['cold']['seconds']}s, restart "
        f"{operator['restart']['seconds']}s, p99 {operator['detection_p99_s']}s, "
        f"peak {operator['peak_rss_mib']} MiB ({timings[f'operator_{mode}_s']}s)",
        flush=True,
    )

    t = time.monotonic()
    fake = FakeProcess(jobs_file)
    print(f"[n={n}] floor, {mode}...", flush=True)
    args = ["--mode", mode, "--interval", str(opts.interval), "--steady", str(opts.steady),
            "--schedule", str(schedule_file), "--concurrency", str(opts.floor_concurrency)]  # fmt: skip
    try:
        floor = run_floor(plane, ns, fake, args)
        floor["fake_requests"] = fake.stats()["byKind"]
    finally:
        fake.stop()
    floor["cold"]["seconds_from_spawn"] = round(floor["cold"]["ended_at"] - floor["spawned_at"], 2)
    timings[f"floor_{mode}_s"] = round(time.monotonic() - t, 1)
    result = {"operator": operator, "floor": floor, "ratios": ratios(operator, floor)}
    print(
        f"[n={n}] floor {mode}: cold {floor['cold']['seconds_from_spawn']}s; {result['ratios']}", flush=True
    )
    return result


def run_n(n: int, opts: argparse.Namespace, folder: Path, save: Callable[[dict[str, Any]], None]) -> None:
    """Measure one N; `save(entry)` after each mode, so a run cut short keeps what it measured."""
    timings: dict[str, float] = {}
    began = time.monotonic()
    job_max = opts.job_max if opts.job_max is not None else default_job_max(n, opts.job_min)
    schedule = job_schedule(n, opts.job_min, job_max, opts.seed)
    jobs_file = folder / f"jobs-{n}.json"
    # The jobs have run for ten minutes when their watches are made: jobs that all started within
    # seconds of the operator's first read would all be read again by its first list walk.
    since = time.time() - 600
    jobs_file.write_text(
        json.dumps([{"id": j["id"], "finishAt": time.time() + 86400, "createdAt": since} for j in schedule])
    )
    schedule_file = folder / f"schedule-{n}.json"
    schedule_file.write_text(json.dumps(schedule))
    budget = opts.budget or max(600.0, math.ceil(3 * n / opts.interval))
    settings = Settings(opts.interval, opts.steady, budget, opts.spread, opts.concurrency)
    entry: dict[str, Any] = {
        "n": n,
        "interval": opts.interval,
        "job_min": opts.job_min,
        "job_max": job_max,
        "budget_rps": budget,
        "minimum_writes_per_watch": minimum_writes(schedule) / n,
        "modes": {},
        "durations": timings,
        "complete": False,
    }
    with running() as plane:
        namespaces = [f"op-{mode}" for mode in opts.modes]
        t = time.monotonic()
        print(f"[n={n}] creating {n} watches in each of {namespaces}...", flush=True)
        # Each mode's Secret gets the URL of that mode's fake when the mode starts. The floor
        # writes to the same watches once the operator has stopped: the same objects, no more
        # to create.
        asyncio.run(create_watches(plane, namespaces, n, opts.interval, "http://unset"))
        timings["create_watches_s"] = round(time.monotonic() - t, 1)

        for mode, ns in zip(opts.modes, namespaces, strict=True):
            try:
                entry["modes"][mode] = run_mode(plane, ns, n, mode, opts, settings, schedule, folder, timings)
                save(entry)
            except (RuntimeError, TimeoutError, OSError) as exc:
                # One mode failing (the operator exited, a phase never ended) keeps the others.
                entry.setdefault("errors", {})[mode] = str(exc)[-2000:]
                print(f"[n={n}] {mode} failed: {exc}", flush=True)

        # Last, when no watch of this N still needs a fresh status: the API server's write limit.
        t = time.monotonic()
        fake = FakeProcess(jobs_file)
        sweep = ["--sweep", opts.sweep, "--sweep-writes", str(min(4000, 2 * n))]
        entry["write_limit"] = run_floor(plane, namespaces[0], fake, sweep)
        fake.stop()
        timings["write_limit_s"] = round(time.monotonic() - t, 1)
        print(
            f"[n={n}] API server write limit: {entry['write_limit']['writes_per_second_max']}/s", flush=True
        )
    timings["total_s"] = round(time.monotonic() - began, 1)
    entry["complete"] = True
    save(entry)


def ratios(operator: dict[str, Any], floor: dict[str, Any]) -> dict[str, float | None]:
    floor_cpu = floor["cold"]["cpu_seconds"] + floor["steady"]["cpu_seconds"] + floor["finish"]["cpu_seconds"]
    steady = floor["steady"]["cpu_seconds"]
    return {
        "cpu_all_in": round(operator["cpu_all_in_seconds"] / floor_cpu, 2) if floor_cpu else None,
        "cpu_steady": round(operator["steady"]["cpu_seconds"] / steady, 2) if steady else None,
        "cold_start": round(operator["cold"]["seconds"] / floor["cold"]["seconds_from_spawn"], 2),
        "floor_cpu_all_in_seconds": round(floor_cpu, 2),
    }


def stop(signum: int, _: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="watches (repeatable; default 1000)")
    parser.add_argument(
        "--mode",
        dest="modes",
        action="append",
        choices=("get", "list"),
        help="poll modes to compare (repeatable; default both)",
    )
    parser.add_argument("--interval", type=float, default=30.0, help="the watches' pollInterval, seconds")
    parser.add_argument(
        "--job-min", type=float, default=60.0, help="earliest job end after the finish phase starts"
    )
    parser.add_argument("--job-max", type=float, default=None, help="latest job end, seconds (default: by N)")
    parser.add_argument("--steady", type=float, default=30.0, help="seconds of polling with all jobs running")
    parser.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help="--max-requests-per-second (default: 3 x N / interval, at least 600)",
    )
    parser.add_argument(
        "--spread", type=float, default=None, help="the operator's --startup-spread (default: the operator's)"
    )
    parser.add_argument("--concurrency", type=int, default=256, help="the operator's --concurrency")
    parser.add_argument("--floor-concurrency", type=int, default=64, help="the floor's writes in flight")
    parser.add_argument("--sweep", default="1,8,32,128", help="concurrencies for the write-limit measurement")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and the plots")
    opts = parser.parse_args()
    # Stopped by SIGTERM or SIGINT (ignored by default in a background job), it still stops the
    # operator, the fakes and the control plane on its way out.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    opts.modes = opts.modes or ["get", "list"]
    opts.n = opts.n or [1000]
    head, dirty = commit()
    started = datetime.datetime.now(datetime.UTC)
    began = time.monotonic()
    results: list[dict[str, Any]] = []
    document: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d"),
        "started_at": started.isoformat(timespec="seconds"),
        "commit": head,
        "dirty": dirty,
        "machine": machine(),
        "python": platform.python_version(),
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "results": results,
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    out = opts.out / f"{document['date']}-{head}.json"

    def save(entry: dict[str, Any]) -> None:
        if entry not in results:
            results.append(entry)
        document["complete"] = len(results) == len(opts.n) and all(e["complete"] for e in results)
        document["duration_s"] = round(time.monotonic() - began, 1)
        out.write_text(json.dumps(document, indent=1) + "\n")
        print(f"written to {out}", flush=True)

    with tempfile.TemporaryDirectory(prefix="ajw-bench-") as tmp:
        for n in opts.n:
            run_n(n, opts, Path(tmp), save)
    from bench.plots import plot_all  # matplotlib: the optional `bench` extra

    for path in plot_all(document, out):
        print(f"plot: {path}", flush=True)


if __name__ == "__main__":
    main()
