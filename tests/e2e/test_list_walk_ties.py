"""List walks end to end against a database-like Airbyte (issue 22): 150 jobs end in the same
instant, more than a page holds, the fake returns those tied rows in a new order on each request,
and every 4th `GET /jobs` answers 500. Every watch still learns its outcome within its interval
plus 10 s, and the per-job reads stay far below get mode's one per watch and interval."""

from __future__ import annotations

import calendar
import json
import secrets
import time
from pathlib import Path

import pytest

from tests.conftest import create_default_secret
from tests.support.cluster import OperatorProcess, eventually
from tests.support.controlplane import ControlPlane
from tests.support.fake_airbyte import Fault, RunningFake, Step

pytestmark = pytest.mark.cluster

WATCHES = 150
INTERVAL = 5.0


def epoch(stamp: str) -> float:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def test_a_batch_ending_together_on_a_flaky_server_reaches_every_watch(
    control_plane: ControlPlane, fake_airbyte: RunningFake, tmp_path: Path
) -> None:
    ns = f"ties-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", ns)
    create_default_secret(control_plane, ns, fake_airbyte.url)
    fake = fake_airbyte.fake
    jobs = [fake.add_job(6000 + i, [Step("running")], rows=i) for i in range(WATCHES)]
    items = [
        {"apiVersion": "airbyte.watch/v1alpha1", "kind": "AirbyteJobWatch", "metadata": {"name": f"w{i}"},
         "spec": {"jobId": 6000 + i, "pollInterval": f"{INTERVAL:g}s", "timeout": "10m"}}
        for i in range(WATCHES)
    ]  # fmt: skip
    control_plane.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                         "items": items}))  # fmt: skip
    operator = OperatorProcess(control_plane, tmp_path / "operator.log",
                               ["--namespace", ns, "--poll-mode=list", "--startup-spread=1"])  # fmt: skip
    operator.start()
    try:

        def phases() -> dict[str, str]:
            got = json.loads(control_plane.kubectl("-n", ns, "get", "ajw", "-o", "json").stdout)["items"]
            return {o["metadata"]["name"]: o["status"].get("phase", "") for o in got}

        eventually(lambda: set(phases().values()) == {"Running"} and len(phases()) == WATCHES, timeout=60)
        fake.inject(Fault(500, '{"message":"flaky"}', path_ends="/jobs", method="GET", every=4))
        time.sleep(2 * INTERVAL)  # walks over the flaky server while every job runs
        with fake.lock:  # one transaction ends them all: one stored updatedAt for 150 rows
            ended = time.time()
            for job in jobs:
                job.steps, job._index, job._served, job.updated = [Step("succeeded")], 0, 0, ended
        started = time.monotonic()

        def all_done() -> dict[str, dict]:
            got = json.loads(control_plane.kubectl("-n", ns, "get", "ajw", "-o", "json").stdout)["items"]
            done = {o["metadata"]["name"]: o["status"] for o in got if o["status"].get("completedAt")}
            return done if len(done) == WATCHES else {}

        done = eventually(all_done, timeout=INTERVAL + 30, interval=0.5)
        elapsed = time.monotonic() - started
    finally:
        operator.stop()
    assert {s["phase"] for s in done.values()} == {"Succeeded"}
    late = {n: epoch(s["completedAt"]) - ended for n, s in done.items()}
    assert max(late.values()) <= INTERVAL + 10 + 1, sorted(late.items(), key=lambda kv: -kv[1])[:5]
    with fake.lock:
        gets = [r for r in fake.requests if r.method == "GET" and "/jobs/" in r.path]
        walks = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/jobs")]
    run = max(r.at for r in fake.requests) - min(r.at for r in gets)
    # Get mode: a GET per watch and interval. Here: each watch's first read, and no herd after.
    assert len(gets) <= WATCHES + 5, len(gets)
    assert len(gets) < WATCHES * run / INTERVAL / 2
    assert len(walks) >= 4, len(walks)
    latest = max(late.values())
    print(f"\n{WATCHES} watches done {elapsed:.1f} s after their jobs ended (latest {latest:.0f} s by "
          f"completedAt); {len(gets)} job GETs and {len(walks)} list requests in {run:.0f} s")  # fmt: skip
    assert "Traceback" not in operator.output
