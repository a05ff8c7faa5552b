"""List mode end to end: the operator process, the real API server, the fake Airbyte; jobs that
move by time, as real ones do. Airbyte hears one walk of `GET /jobs` per interval, not one
`GET /jobs/{id}` per watch, and every watch still reaches its outcome within its interval."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from tests.conftest import create_default_secret
from tests.support.cluster import OperatorProcess, eventually, reasons
from tests.support.controlplane import ControlPlane
from tests.support.fake_airbyte import RunningFake, Step

pytestmark = pytest.mark.cluster

WATCHES = 30
INTERVAL = 2.0


def test_watches_learn_their_outcome_from_one_list_per_interval(
    control_plane: ControlPlane, fake_airbyte: RunningFake, tmp_path: Path
) -> None:
    ns = f"list-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", ns)
    create_default_secret(control_plane, ns, fake_airbyte.url)
    finals = ("succeeded", "failed", "cancelled")
    for i in range(WATCHES):
        fake_airbyte.fake.add_job(
            3000 + i, [Step("running", seconds=4 + i % 7), Step(finals[i % 3])], rows=i, bytes_=i
        )
    items = [
        {"apiVersion": "airbyte.watch/v1alpha1", "kind": "AirbyteJobWatch", "metadata": {"name": f"w{i}"},
         "spec": {"jobId": 3000 + i, "pollInterval": f"{INTERVAL:g}s", "timeout": "5m"}}
        for i in range(WATCHES)
    ]  # fmt: skip
    control_plane.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                         "items": items}))  # fmt: skip
    operator = OperatorProcess(control_plane, tmp_path / "operator.log",
                               ["--namespace", ns, "--poll-mode=list", "--startup-spread=0.5"])  # fmt: skip
    started = time.monotonic()
    operator.start()
    try:

        def all_final() -> dict[str, dict]:
            got = json.loads(control_plane.kubectl("-n", ns, "get", "ajw", "-o", "json").stdout)["items"]
            done = {o["metadata"]["name"]: o["status"] for o in got if o["status"].get("completedAt")}
            return done if len(done) == WATCHES else {}

        done = eventually(all_final, timeout=60, interval=0.5)
        elapsed = time.monotonic() - started
    finally:
        operator.stop()
    want = {"succeeded": "Succeeded", "failed": "Failed", "cancelled": "Cancelled"}
    assert {n: s["phase"] for n, s in done.items()} == {f"w{i}": want[finals[i % 3]] for i in range(WATCHES)}
    for i in range(WATCHES):
        job = fake_airbyte.fake.jobs[3000 + i]
        completed = (
            time.mktime(time.strptime(done[f"w{i}"]["completedAt"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        )
        # Detected within the interval (plus the second that timestamps round away, and a step).
        assert completed - job.updated <= INTERVAL + 2 + 1, (i, completed - job.updated)
    gets = [r for r in fake_airbyte.fake.requests if r.method == "GET" and "/jobs/" in r.path]
    walks = [r for r in fake_airbyte.fake.requests if r.method == "GET" and r.path.endswith("/jobs")]
    # Per-job GETs: the first read of each watch, and none while the walks serve it.
    assert len(gets) <= WATCHES + 2, len(gets)
    # One page per walk (fewer than 100 jobs change), one walk per interval, give or take one.
    assert len(walks) <= elapsed / INTERVAL + 2, (len(walks), elapsed)
    assert len(walks) >= 2
    for i in range(WATCHES):
        assert reasons(control_plane, ns, f"w{i}")[-1] in ("JobSucceeded", "JobFailed", "JobCancelled")
    assert "Traceback" not in operator.output
