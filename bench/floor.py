"""The floor: the Kubernetes writes and Airbyte requests of N watches, with no operator logic.

A bare aiohttp script against the same API server and the same fake, in three phases that mirror
the operator's run (bench/scenario.py):

- cold: for each watch, its job's first GET, a `JobRunning` Event and a first status: 2N writes,
  `--concurrency` at a time;
- steady: `--steady` seconds of polling, no writes;
- finish: the jobs are told to end (`--schedule`, offsets from now), polling goes on, and each
  watch whose job ended gets its final Event and final status.

Polling is one `GET /jobs/{id}` per unfinished watch per interval (`--mode get`) or one page walk
of `GET /jobs?updatedAtStart=...&orderBy=updatedAt|ASC&limit=100` per interval (`--mode list`).
With `--sweep 1,8,64` it instead measures how many writes per second the API server takes at
each concurrency. Prints one JSON object: CPU seconds (this process, getrusage), wall seconds,
writes and requests per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import resource
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.kube import Kube

FINAL = ("succeeded", "failed", "cancelled")
OUTCOME = {"succeeded": "JobSucceeded", "failed": "JobFailed", "cancelled": "JobCancelled"}
PAGE = 100
OVERLAP = 2.0  # seconds below the newest lastUpdatedAt seen: equal timestamps, whole-second rendering


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def iso_epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def stamp(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(watch: dict[str, Any], phase: str, job: dict[str, Any], transitions: int) -> dict[str, Any]:
    """A status of the operator's shape and size: phase, job, two conditions, counters."""
    now = stamp(time.time())
    final = phase != "Running"
    return {
        "phase": phase,
        "jobId": watch["spec"]["jobId"],
        "jobStatus": job.get("status"),
        "jobType": job.get("jobType", "sync"),
        "startedAt": now,
        "lastPolledAt": now,
        "observedGeneration": watch["metadata"].get("generation", 1),
        "transitions": transitions,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if phase == "Succeeded" else "False",
                "reason": phase,
                "message": f"job {watch['spec']['jobId']} is {job.get('status')}",
                "lastTransitionTime": now,
                "observedGeneration": 1,
            },
            {
                "type": "Stalled",
                "status": "True" if final and phase != "Succeeded" else "False",
                "reason": phase,
                "message": "",
                "lastTransitionTime": now,
                "observedGeneration": 1,
            },
        ],
    }


def event_body(watch: dict[str, Any], reason: str, suffix: str) -> dict[str, Any]:
    meta, now = watch["metadata"], stamp(time.time())
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{suffix}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": watch["apiVersion"],
            "kind": watch["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "type": "Normal" if reason in ("JobRunning", "JobSucceeded") else "Warning",
        "reason": reason,
        "message": f"job {watch['spec']['jobId']}: {reason}",
        "source": {"component": "floor"},
        "reportingComponent": "floor",
        "reportingInstance": "floor",
        "action": "Watch",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class Floor:
    def __init__(
        self, kube: Kube, airbyte: aiohttp.ClientSession, base: str, args: argparse.Namespace
    ) -> None:
        self.kube, self.airbyte, self.base, self.args = kube, airbyte, base, args
        self.watches: dict[int, dict[str, Any]] = {}  # job id -> watch
        self.open: set[int] = set()  # job ids not yet final
        self.requests: Counter[str] = Counter()
        self.writes = 0
        self.limit = asyncio.Semaphore(args.concurrency)
        # Airbyte's own timestamps, never this clock: past the newest job start seen, until a
        # finished job's lastUpdatedAt moves it.
        self.watermark = 0.0

    async def get_job(self, job_id: int) -> dict[str, Any]:
        self.requests["job_get"] += 1
        async with self.airbyte.get(f"{self.base}/jobs/{job_id}") as answer:
            return dict(await answer.json())

    async def write(
        self, watch: dict[str, Any], job: dict[str, Any], reason: str, phase: str, n: int
    ) -> None:
        """An Event, then the status it belongs to (the operator's order)."""
        meta = watch["metadata"]
        await self.kube.create_event(meta["namespace"], event_body(watch, reason, f"{self.args.mode}.{n}"))
        await self.kube.patch_status(
            meta["namespace"], meta["name"], meta["uid"], status_body(watch, phase, job, n)
        )
        self.writes += 2

    async def first(self, job_id: int) -> None:
        async with self.limit:
            job = await self.get_job(job_id)
            # startTime has whole seconds: a job started at S was updated at S or later.
            self.watermark = max(self.watermark, iso_epoch(job["startTime"]) + 1)
            await self.write(self.watches[job_id], job, "JobRunning", "Running", 1)

    async def finished(self, job: dict[str, Any]) -> None:
        job_id = job["jobId"]
        if job_id not in self.open or job["status"] not in FINAL:
            return
        self.open.discard(job_id)
        async with self.limit:
            phase = job["status"].capitalize()
            await self.write(self.watches[job_id], job, OUTCOME[job["status"]], phase, 2)

    async def poll_get(self) -> None:
        """One GET per unfinished watch, spread evenly over one interval."""
        ids = sorted(self.open)
        start, tasks = time.monotonic(), []
        for i, job_id in enumerate(ids):
            due = start + self.args.interval * i / max(1, len(ids))
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            tasks.append(asyncio.create_task(self._get_and_finish(job_id)))
        await asyncio.gather(*tasks)
        await asyncio.sleep(max(0.0, start + self.args.interval - time.monotonic()))

    async def _get_and_finish(self, job_id: int) -> None:
        await self.finished(await self.get_job(job_id))

    async def poll_list(self) -> None:
        """One page walk of the jobs updated since the watermark, then wait out the interval."""
        start, offset, tasks = time.monotonic(), 0, []
        since = stamp(self.watermark)
        while True:
            self.requests["job_list"] += 1
            query = {"updatedAtStart": since, "orderBy": "updatedAt|ASC", "limit": PAGE, "offset": offset}
            async with self.airbyte.get(f"{self.base}/jobs", params=query) as answer:
                rows = (await answer.json())["data"]
            for row in rows:
                if row.get("lastUpdatedAt"):
                    self.watermark = max(self.watermark, iso_epoch(row["lastUpdatedAt"]) - OVERLAP)
                tasks.append(asyncio.create_task(self.finished(row)))
            if len(rows) < PAGE:
                break
            offset += PAGE
        await asyncio.gather(*tasks)
        await asyncio.sleep(max(0.0, start + self.args.interval - time.monotonic()))

    async def poll(self, until: float | None) -> None:
        poll = self.poll_get if self.args.mode == "get" else self.poll_list
        while self.open and (until is None or time.monotonic() < until):
            await poll()


def phase_mark(started: float, cpu: float, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "seconds": round(time.monotonic() - started, 2),
        "cpu_seconds": round(cpu_seconds() - cpu, 3),
        "ended_at": time.time(),
        **extra,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with (
        Kube(Path(args.kubeconfig), args.concurrency) as kube,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), headers={"Accept": "application/json"}
        ) as airbyte,
    ):
        floor = Floor(kube, airbyte, args.airbyte, args)
        out: dict[str, Any] = {"mode": args.mode, "concurrency": args.concurrency}
        # The cold phase's CPU counts from the interpreter's start, as the operator's does.
        t, cpu = time.monotonic(), 0.0
        for watch in await kube.list_watches(args.namespace):
            floor.watches[watch["spec"]["jobId"]] = watch
        floor.open = set(floor.watches)
        await asyncio.gather(*(floor.first(job_id) for job_id in floor.watches))
        out["cold"] = phase_mark(t, cpu, {"writes": floor.writes})
        out["cold"]["writes_per_second"] = round(floor.writes / max(1e-6, out["cold"]["seconds"]), 1)

        t, cpu, writes = time.monotonic(), cpu_seconds(), floor.writes
        before = Counter(floor.requests)
        await floor.poll(until=t + args.steady)
        out["steady"] = phase_mark(
            t, cpu, {"writes": floor.writes - writes, "requests": dict(floor.requests - before)}
        )

        t, cpu, writes = time.monotonic(), cpu_seconds(), floor.writes
        before = Counter(floor.requests)
        schedule = json.loads(Path(args.schedule).read_text())
        now = time.time()
        timed = [{"id": s["id"], "finishAt": now + s["finishIn"], "final": s["final"]} for s in schedule]
        async with airbyte.post(f"{args.fake}/_fake/jobs", json=timed) as answer:
            answer.raise_for_status()
        await floor.poll(until=None)
        out["finish"] = phase_mark(
            t, cpu, {"writes": floor.writes - writes, "requests": dict(floor.requests - before)}
        )
        out["writes"] = floor.writes
        out["requests"] = dict(floor.requests)
        out["cpu_seconds"] = round(cpu_seconds(), 3)
        return out


async def sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Writes per second at each concurrency: Event creates and status patches, half each."""
    levels = [int(c) for c in args.sweep.split(",")]
    results = []
    async with Kube(Path(args.kubeconfig), max(levels)) as kube:
        watches = await kube.list_watches(args.namespace)
        for level in levels:
            limit = asyncio.Semaphore(level)

            async def one(i: int, limit: asyncio.Semaphore = limit, level: int = level) -> None:
                watch = watches[i % len(watches)]
                meta = watch["metadata"]
                async with limit:
                    if i % 2:
                        body = status_body(watch, "Running", {"status": "running"}, i)
                        await kube.patch_status(meta["namespace"], meta["name"], meta["uid"], body)
                    else:
                        await kube.create_event(
                            meta["namespace"], event_body(watch, "JobRunning", f"s{level}.{i}")
                        )

            start = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(args.sweep_writes)))
            seconds = time.monotonic() - start
            results.append(
                {
                    "concurrency": level,
                    "writes": args.sweep_writes,
                    "seconds": round(seconds, 2),
                    "writes_per_second": round(args.sweep_writes / seconds, 1),
                }
            )
    return {"sweep": results, "writes_per_second_max": max(r["writes_per_second"] for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--airbyte", help="the fake's API base, e.g. http://127.0.0.1:8001/v1")
    parser.add_argument("--fake", help="the fake's root, for /_fake/jobs")
    parser.add_argument("--mode", choices=("get", "list"), default="get")
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--steady", type=float, default=30.0, help="seconds of polling with no writes")
    parser.add_argument("--schedule", help='JSON list of {"id", "finishIn" (seconds), "final"}')
    parser.add_argument("--concurrency", type=int, default=64, help="Kubernetes writes in flight")
    parser.add_argument("--sweep", help="measure the write limit at these concurrencies instead, e.g. 1,8,64")
    parser.add_argument("--sweep-writes", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(sweep(args) if args.sweep else run(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
