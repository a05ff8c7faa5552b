"""One operator run of the benchmark: N new watches in one poll mode, measured from outside.

Phases, each timed and its CPU taken from /proc:
- cold: the operator starts over N new watches; done when every watch has its first status
  patch and its JobRunning Event (2N writes, from the API server's audit log);
- steady: `steady` seconds of polling with every job running (no writes): Airbyte requests per
  second and per watch-interval, by kind, as the fake counted them;
- restart: SIGKILL once all watches are reconciled and running, start again, and time until
  the fake has served every job again (a GET of it, or a row of a list);
- finish: the jobs are told to end at their scripted offsets; done when every watch has its
  final status patch after its job's end. Detection latency = that patch - the scripted end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.audit import AuditTail
from bench.procs import FakeProcess, proc_stats
from tests.support.cluster import OperatorProcess
from tests.support.controlplane import ControlPlane


@dataclass
class Settings:
    interval: float
    steady: float
    budget: float
    spread: float | None  # None: the operator's default
    concurrency: int


def percentiles(values: list[float]) -> list[float]:
    """The 0th to 100th percentiles (nearest rank): enough for a distribution plot at any N."""
    ordered = sorted(values)
    if not ordered:
        return []
    return [round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 3) for q in range(101)]


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


class OperatorRun:
    def __init__(
        self,
        plane: ControlPlane,
        namespace: str,
        n: int,
        mode: str,
        folder: Path,
        fake: FakeProcess,
        settings: Settings,
    ) -> None:
        self.plane, self.namespace, self.n, self.mode, self.fake = plane, namespace, n, mode, fake
        self.s = settings
        self.audit = AuditTail(plane.audit_log, namespace)
        self.peak_rss = 0.0
        args = [
            "--namespace",
            namespace,
            f"--poll-mode={mode}",
            f"--max-requests-per-second={settings.budget:g}",
            f"--concurrency={settings.concurrency}",
            *([f"--startup-spread={settings.spread:g}"] if settings.spread is not None else []),
        ]
        self.operator = OperatorProcess(plane, folder / f"operator-{namespace}.log", args)

    @property
    def pid(self) -> int:
        assert self.operator.proc is not None
        return self.operator.proc.pid

    def sample(self) -> dict[str, float]:
        stats = proc_stats(self.pid)
        self.peak_rss = max(self.peak_rss, stats["peak_rss_mib"])
        return stats

    def wait(self, done: Any, timeout: float, what: str, period: float = 1.0) -> float:
        """Sample until done() is true; the time it was. Raises on timeout or operator exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.operator.proc is not None and self.operator.proc.poll() is not None:
                raise RuntimeError(f"the operator exited during {what}:\n{self.operator.output[-3000:]}")
            self.sample()
            self.audit.read()
            if done():
                return time.time()
            time.sleep(period)
        raise TimeoutError(f"{what} not done within {timeout:.0f}s")

    def run(self, schedule: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            return self._run(schedule)
        finally:
            self.operator.stop()  # also when a phase failed: no operator outlives its run

    def _run(self, schedule: list[dict[str, Any]]) -> dict[str, Any]:
        n, s, out = self.n, self.s, {}
        self.audit.read()

        # Cold start over N new watches.
        spawned = time.time()
        self.operator.start()
        self.wait(lambda: self.audit.with_first_writes() >= n, 300 + n / 20, "cold start")
        cpu_cold = self.sample()["cpu_seconds"]
        patches, events = self.audit.counts()
        fake_cold = self.fake.stats()
        out["cold"] = {
            "seconds": round(self.audit.last_write() - spawned, 2),
            "cpu_seconds": cpu_cold,
            "status_patches": patches,
            "events": events,
            "requests": fake_cold["byKind"],
        }

        # Steady polling: every job running, nothing to write.
        time.sleep(max(0.0, s.steady))
        cpu_steady = self.sample()["cpu_seconds"]
        fake_steady = self.fake.stats()
        self.audit.read()
        requests = delta(fake_steady["byKind"], fake_cold["byKind"])
        total = sum(requests.values())
        out["steady"] = {
            "seconds": s.steady,
            "cpu_seconds": round(cpu_steady - cpu_cold, 2),
            "requests": requests,
            "requests_per_second": round(total / s.steady, 2),
            "requests_per_second_by_kind": {k: round(v / s.steady, 2) for k, v in requests.items()},
            "requests_per_watch_interval": round(total / (n * s.steady / s.interval), 4),
            "writes": sum(self.audit.counts()) - patches - events,
        }

        # Restart over N reconciled, running watches.
        proc1 = self.sample()
        self.operator.kill()
        writes_before = sum(self.audit.counts())
        restarted = time.time()
        self.operator.start()
        try:
            stepped: float | None = self.wait(
                lambda: self.fake.stats(since=restarted).get("jobsServedSince", 0) >= n,
                60 + 4 * s.interval + (s.spread or 0) + n / 100,
                "restart",
            )
        except TimeoutError:
            stepped = None  # recorded as not measured; the run goes on to the jobs' ends
        cpu_restart = self.sample()["cpu_seconds"]
        out["restart"] = {
            "seconds": round(stepped - restarted, 2) if stepped is not None else None,
            "jobs_served_again": self.fake.stats(since=restarted).get("jobsServedSince", 0),
            "cpu_seconds": cpu_restart,
            "writes": sum(self.audit.counts()) - writes_before,
        }

        # The jobs end at random, as scripted.
        now = time.time()
        ends = {f"w{j['id']}": now + j["finishIn"] for j in schedule}
        fake_before = self.fake.stats()
        writes_before = sum(self.audit.counts())
        self.fake.load(
            [{"id": j["id"], "finishAt": now + j["finishIn"], "final": j["final"]} for j in schedule]
        )

        def all_final() -> bool:
            watches = self.audit.watches
            return all(
                w in watches
                and watches[w].patches
                and max(watches[w].patches) >= end
                and len(watches[w].events) >= 2
                for w, end in ends.items()
            )

        finish_timeout = max(j["finishIn"] for j in schedule) + 4 * s.interval + 120
        self.wait(all_final, finish_timeout, "detection", period=2.0)
        time.sleep(2)  # stragglers: a final Event posted just before its status
        proc2 = self.sample()
        fake_after = self.fake.stats()
        self.audit.read()
        self.operator.stop()
        latencies = [max(self.audit.watches[w].patches) - end for w, end in ends.items()]
        latencies.sort()
        out["finish"] = {
            "seconds": round(time.time() - now, 2),
            "cpu_seconds": round(proc2["cpu_seconds"] - cpu_restart, 2),
            "writes": sum(self.audit.counts()) - writes_before,
            "requests": delta(fake_after["byKind"], fake_before["byKind"]),
        }
        patches, events = self.audit.counts()
        out.update(
            {
                "peak_rss_mib": round(self.peak_rss, 1),
                "peak_rss_mib_first_process": round(proc1["peak_rss_mib"], 1),
                "rss_per_watch_kib": round(self.peak_rss * 1024 / n, 1),
                "cpu_all_in_seconds": round(
                    cpu_cold + out["steady"]["cpu_seconds"] + out["finish"]["cpu_seconds"], 2
                ),
                "cpu_first_process_seconds": proc1["cpu_seconds"],
                "cpu_second_process_seconds": proc2["cpu_seconds"],
                "status_patches": patches,
                "events": events,
                "writes_refused": self.audit.refused,
                "k8s_writes_per_watch": round((patches + events) / n, 3),
                "requests_total": fake_after["byKind"],
                "rows_listed": fake_after["rowsListed"],
                "detection_p50_s": latencies[len(latencies) // 2] if latencies else None,
                "detection_p99_s": percentiles(latencies)[99] if latencies else None,
                "detection_max_s": latencies[-1] if latencies else None,
                "detection_percentiles_s": percentiles(latencies),
            }
        )
        for key in ("detection_p50_s", "detection_p99_s", "detection_max_s"):
            out[key] = round(out[key], 2) if out[key] is not None else None
        return out
