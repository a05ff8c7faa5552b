"""Credentials rotated under a running watch, end to end: the Airbyte administrator replaces
client A by client B (A's tokens stop working, its token request answers 401), the Secret is
updated to B, and the watch goes on with B, in both poll modes."""

from __future__ import annotations

import calendar
import json
import secrets
import time
from pathlib import Path

import pytest

from tests.support.cluster import OperatorProcess, apply, eventually, get, reasons, wait_for, watch_manifest
from tests.support.controlplane import ControlPlane
from tests.support.fake_airbyte import FakeAirbyte, RunningFake, Step

pytestmark = pytest.mark.cluster

INTERVAL = 3.0
SECRET_A = "SENTINEL-client-a-6c1f"
SECRET_B = "SENTINEL-client-b-93d0"


def login_secret(url: str, client_id: str, client_secret: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "airbyte-rotating"},
        "stringData": {"url": url, "clientId": client_id, "clientSecret": client_secret},
    })  # fmt: skip


def epoch(stamp: str) -> float:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


@pytest.mark.parametrize("mode", ["list", "get"])
def test_a_rotated_client_reaches_the_watch_within_two_intervals_of_the_secret_edit(
    control_plane: ControlPlane, tmp_path: Path, mode: str
) -> None:
    ns = f"rot-{mode}-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", ns)
    fake = FakeAirbyte("/v1", client_id="client-a", client_secret=SECRET_A)
    with RunningFake(fake) as airbyte:
        job = fake.add_job(7001, [Step("running")])
        assert apply(control_plane, ns, login_secret(airbyte.url, "client-a", SECRET_A)).returncode == 0
        spec = {"jobId": 7001, "pollInterval": f"{INTERVAL:g}s", "timeout": "10m",
                "serverRef": {"name": "airbyte-rotating"}}  # fmt: skip
        assert apply(control_plane, ns, watch_manifest("w", spec)).returncode == 0
        args = ["--namespace", ns, f"--poll-mode={mode}", "--startup-spread=0"]
        operator = OperatorProcess(control_plane, tmp_path / "operator.log", args)
        operator.start()
        try:
            eventually(lambda: get(control_plane, ns, "w")["status"].get("phase") == "Running", timeout=30)
            time.sleep(INTERVAL)  # a walk or two with A
            # The administrator deletes application A and creates B; the Secret follows.
            fake.rotate_client("client-b", SECRET_B)
            edited = time.time()
            assert apply(control_plane, ns, login_secret(airbyte.url, "client-b", SECRET_B)).returncode == 0
            with fake.lock:
                job.steps, job._index, job._served, job.updated = [Step("succeeded")], 0, 0, time.time()
            wait_for(control_plane, ns, "w", "condition=Ready", timeout=int(4 * INTERVAL))
            status = get(control_plane, ns, "w")["status"]
        finally:
            operator.stop()
    assert status["phase"] == "Succeeded"
    # Whole seconds on both sides of the subtraction: one more second of rounding.
    assert epoch(status["completedAt"]) - edited <= 2 * INTERVAL + 1, (status["completedAt"], edited)
    assert reasons(control_plane, ns, "w")[-1] == "JobSucceeded"
    written = operator.output + json.dumps(status)
    assert SECRET_A not in written and SECRET_B not in written
    assert "Traceback" not in operator.output
