"""The scale benchmark: N watches in one operator process, measured from outside.

Starts the real control plane, the fake Airbyte in its own process and `airbyte-watch run` in
its own process; creates N watches (pollInterval 30s) on jobs that finish at random times over
a few minutes; measures the operator process alone; then runs the bare-aiohttp baseline
against the same fake. Prints a table and writes it as JSON.

    python -m bench.run --n 1000 --n 10000
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.cluster import OperatorProcess
from tests.support.controlplane import ROOT, ControlPlane, free_port, running

NS = "bench"
FIRST_ID = 100_000
RESULTS = ROOT / "bench" / "results"


def proc_stats(pid: int) -> dict[str, float]:
    """RSS now and at peak (MiB), and CPU seconds so far, of one process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {
        "rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
        "peak_rss_mib": int(fields["VmHWM"].split()[0]) / 1024,
        "cpu_seconds": (int(stat[11]) + int(stat[12])) / ticks,
    }


def fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def create_watches(plane: ControlPlane, n: int, interval: str) -> None:
    for start in range(0, n, 500):
        items = [
            {"apiVersion": "airbyte.watch/v1alpha1", "kind": "AirbyteJobWatch",
             "metadata": {"name": f"w{FIRST_ID + i}"},
             "spec": {"jobId": FIRST_ID + i, "pollInterval": interval, "timeout": "1h"}}
            for i in range(start, min(n, start + 500))
        ]  # fmt: skip
        listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        plane.kubectl("-n", NS, "create", "-f", "-", "-o", "name", input=listing, timeout=300)


def final_phases(plane: ControlPlane) -> int:
    out = plane.kubectl("-n", NS, "get", "ajw", "-o", "jsonpath={.items[*].status.phase}", timeout=120)
    return sum(1 for p in out.stdout.split() if p in ("Succeeded", "Failed", "Cancelled"))


def parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_one(
    n: int, interval: float, job_min: float, job_max: float, budget: float, spread: float, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    with running() as plane, tempfile.TemporaryDirectory(prefix="ajw-bench-") as tmp:
        folder = Path(tmp)
        plane.kubectl("create", "namespace", NS)
        print(f"[n={n}] creating {n} watches...", flush=True)
        t = time.monotonic()
        create_watches(plane, n, f"{interval:g}s")
        print(f"[n={n}] created in {time.monotonic() - t:.0f}s", flush=True)

        port = free_port()
        start_at = time.time() + 5
        jobs = [
            {"id": FIRST_ID + i, "finishAt": start_at + rng.uniform(job_min, job_max),
             "final": rng.choice(["succeeded", "succeeded", "failed", "cancelled"]), "rows": i}
            for i in range(n)
        ]  # fmt: skip
        (folder / "jobs.json").write_text(json.dumps(jobs))
        fake = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_airbyte", "--port", str(port), "--prefix", "/v1",
             "--jobs-file", str(folder / "jobs.json")],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                fetch_json(f"{base}/_fake/stats")
                break
            except OSError:
                time.sleep(0.1)
        plane.kubectl(
            "-n", NS, "create", "secret", "generic", "airbyte-default", f"--from-literal=url={base}/v1"
        )

        operator = OperatorProcess(plane, folder / "operator.log", [
            "--namespace", NS, f"--max-requests-per-second={budget:g}", "--concurrency=256",
            f"--startup-spread={spread:g}",
        ])  # fmt: skip
        writes_before = len(plane.audit(NS))
        started = time.time()
        operator.start()
        assert operator.proc is not None
        pid = operator.proc.pid
        samples: list[float] = []
        cold_start = None
        # A steady window: every watch polled once, no job finished yet; only polls, no writes.
        first_finish = min(j["finishAt"] for j in jobs)
        steady: dict[str, tuple[float, int]] = {}
        deadline = time.monotonic() + job_max + 6 * interval + 300
        while time.monotonic() < deadline:
            time.sleep(2)
            samples.append(proc_stats(pid)["rss_mib"])
            stats = fetch_json(f"{base}/_fake/stats")
            now = time.time()
            if cold_start is not None and now < first_finish - 2:
                mark = (proc_stats(pid)["cpu_seconds"], sum(j["gets"] for j in stats["jobs"].values()))
                steady.setdefault("start", mark)
                steady["end"] = mark
            if cold_start is None:
                firsts = [j["firstGet"] for j in stats["jobs"].values()]
                if all(firsts):
                    cold_start = max(firsts) - started
                    print(f"[n={n}] every watch polled once after {cold_start:.1f}s", flush=True)
            seen_final = cold_start is not None and all(j["finalSeen"] for j in stats["jobs"].values())
            if seen_final and final_phases(plane) == n:
                break
        final = proc_stats(pid)
        operator.stop()
        stats = fetch_json(f"{base}/_fake/stats")
        fake.terminate()
        fake.wait(10)

        # Detection latency: from the job's scripted end to the watch's last status patch.
        last_patch: dict[str, float] = {}
        patches = events = 0
        for record in plane.audit(NS)[writes_before:]:
            ref = record.get("objectRef") or {}
            if record.get("stage") != "ResponseComplete":
                continue
            if ref.get("resource") == "airbytejobwatches" and ref.get("subresource") == "status":
                patches += 1
                last_patch[ref["name"]] = parse_time(record["stageTimestamp"])
            elif ref.get("resource") == "events" and record["verb"] == "create":
                events += 1
        latencies = [last_patch[f"w{j['id']}"] - j["finishAt"] for j in jobs if f"w{j['id']}" in last_patch]
        gets = sum(j["gets"] for j in stats["jobs"].values())
        minimum_gets = sum(
            int(
                (stats["jobs"][str(j["id"])]["finalSeen"] - stats["jobs"][str(j["id"])]["firstGet"])
                // interval
            )
            + 1
            for j in jobs
        )
        active = sum(
            stats["jobs"][str(j["id"])]["finalSeen"] - stats["jobs"][str(j["id"])]["firstGet"] for j in jobs
        )

        print(f"[n={n}] baseline: bare aiohttp, same GETs, same rate...", flush=True)
        fake = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_airbyte", "--port", str(port), "--prefix", "/v1",
             "--jobs-file", str(folder / "jobs.json")],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.5)
        baseline = json.loads(subprocess.run(
            [sys.executable, str(ROOT / "bench" / "baseline.py"), "--base", f"{base}/v1",
             "--first-id", str(FIRST_ID), "--n", str(n), "--interval", str(interval),
             "--duration", str(2 * interval)],
            capture_output=True, text=True, check=True,
        ).stdout)  # fmt: skip
        fake.terminate()
        fake.wait(10)

    cpu_per_poll = final["cpu_seconds"] / max(1, gets)
    steady_polls = steady["end"][1] - steady["start"][1] if steady else 0
    steady_cpu = (steady["end"][0] - steady["start"][0]) / steady_polls if steady_polls > 0 else None
    base_cpu = baseline["cpu_seconds"] / max(1, baseline["requests"])
    return {
        "n": n,
        "poll_interval_s": interval,
        "peak_rss_mib": round(final["peak_rss_mib"], 1),
        "rss_per_watch_kib": round(final["peak_rss_mib"] * 1024 / n, 1),
        "cpu_seconds": round(final["cpu_seconds"], 1),
        "polls": gets,
        "cpu_ms_per_poll": round(cpu_per_poll * 1000, 3),
        "baseline_cpu_ms_per_request": round(base_cpu * 1000, 3),
        "cpu_ratio_to_baseline": round(cpu_per_poll / base_cpu, 2),
        "steady_cpu_ms_per_poll": round(steady_cpu * 1000, 3) if steady_cpu else None,
        "steady_cpu_ratio_to_baseline": round(steady_cpu / base_cpu, 2) if steady_cpu else None,
        "steady_window_polls": steady_polls,
        "polls_per_second_achieved": round(gets / max(1.0, time_span(stats)), 1),
        "polls_vs_intended": round(gets / max(1.0, active / interval + n), 3),
        "detection_p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "detection_p99_s": round(percentile(latencies, 0.99), 2) if latencies else None,
        "status_patches_per_watch": round(patches / n, 2),
        "events_per_watch": round(events / n, 2),
        "k8s_writes_per_watch": round((patches + events) / n, 2),
        "k8s_writes_minimum": 4,  # first reconcile + final patch, JobRunning + final event
        "airbyte_requests_per_watch": round(stats["requests"] / n, 2),
        "airbyte_requests_minimum_per_watch": round(minimum_gets / n, 2),
        "cold_start_s": round(cold_start, 1) if cold_start is not None else None,
        "budget_rps": budget,
        "startup_spread_s": spread,
        "watches_final": len(last_patch),
    }


def time_span(stats: dict[str, Any]) -> float:
    firsts = [j["firstGet"] for j in stats["jobs"].values() if j["firstGet"]]
    lasts = [j["finalSeen"] for j in stats["jobs"].values() if j["finalSeen"]]
    return max(lasts) - min(firsts) if firsts and lasts else 0.0


ROWS = [
    ("watches", "n", ""),
    ("peak RSS", "peak_rss_mib", "MiB"),
    ("RSS per watch", "rss_per_watch_kib", "KiB"),
    ("CPU per poll, all work (incl. start, writes)", "cpu_ms_per_poll", "ms"),
    ("baseline CPU per request", "baseline_cpu_ms_per_request", "ms"),
    ("CPU ratio to baseline", "cpu_ratio_to_baseline", "x"),
    ("CPU per poll, polls only (no writes)", "steady_cpu_ms_per_poll", "ms"),
    ("  ratio to baseline", "steady_cpu_ratio_to_baseline", "x"),
    ("polls per second achieved", "polls_per_second_achieved", "/s"),
    ("polls / intended", "polls_vs_intended", ""),
    ("detection latency p50", "detection_p50_s", "s"),
    ("detection latency p99", "detection_p99_s", "s"),
    ("status patches per watch", "status_patches_per_watch", ""),
    ("K8s writes per watch (min 4)", "k8s_writes_per_watch", ""),
    ("Airbyte requests per watch", "airbyte_requests_per_watch", ""),
    ("  minimum possible", "airbyte_requests_minimum_per_watch", ""),
    ("cold start: all polled once", "cold_start_s", "s"),
]


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| measure | " + " | ".join(f"N = {r['n']:,}" for r in results) + " |",
             "|---|" + "---|" * len(results)]  # fmt: skip
    for label, key, unit in ROWS[1:]:
        cells = [f"{r[key]}{' ' + unit if unit and r[key] is not None else ''}" for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="watches (repeatable; default 1000)")
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--job-min", type=float, default=60.0, help="earliest job end, seconds")
    parser.add_argument("--job-max", type=float, default=180.0, help="latest job end, seconds")
    parser.add_argument("--budget", type=float, default=600.0, help="--max-requests-per-second")
    parser.add_argument("--spread", type=float, default=15.0, help="--startup-spread, seconds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = [run_one(n, args.interval, args.job_min, args.job_max, args.budget, args.spread, args.seed)
               for n in (args.n or [1000])]  # fmt: skip
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\nairbyte-watch benchmark ({machine})\n")
    print(table(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
