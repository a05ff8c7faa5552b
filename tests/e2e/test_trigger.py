"""Trigger then watch: spec.connectionId starts a job once, also across a SIGKILL mid-request."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from tests.support.cluster import (
    OperatorProcess,
    apply,
    condition,
    eventually,
    get,
    reasons,
    wait_for,
    watch_manifest,
)
from tests.support.controlplane import ControlPlane
from tests.support.fake_airbyte import Fault, RunningFake, Step

pytestmark = pytest.mark.cluster

CONNECTION = "9924bcd0-99be-453d-ba47-c2c9766f7da5"


def posts(fake: RunningFake) -> int:
    return sum(1 for r in fake.fake.requests if r.method == "POST" and r.path.endswith("/jobs"))


def trigger(plane: ControlPlane, ns: str, name: str, **extra: object) -> None:
    spec = {"connectionId": CONNECTION, "pollInterval": "1s", **extra}
    done = apply(plane, ns, watch_manifest(name, spec))
    assert done.returncode == 0, done.stderr


def test_starts_the_job_records_its_id_and_watches_it(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.connection_scripts[CONNECTION] = [Step("running", polls=2), Step("succeeded")]
    trigger(control_plane, op_namespace, "nightly")
    wait_for(control_plane, op_namespace, "nightly", "condition=Ready")
    status = get(control_plane, op_namespace, "nightly")["status"]
    assert status["jobId"] > 500_000 and status["connectionId"] == CONNECTION and "triggeredAt" in status
    assert posts(fake_airbyte) == 1
    assert eventually(
        lambda: reasons(control_plane, op_namespace, "nightly") == ["JobRunning", "JobSucceeded"]
    )


@pytest.mark.parametrize("if_running", ["Adopt", "Fail", "Wait"])
def test_a_connection_already_running_a_sync(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str,
    if_running: str,
) -> None:  # fmt: skip
    fake_airbyte.fake.connection_scripts[CONNECTION] = [Step("running", polls=1), Step("succeeded")]
    fake_airbyte.fake.add_job(99, [Step("running", seconds=4), Step("succeeded")], connection_id=CONNECTION)
    trigger(control_plane, op_namespace, "w", ifRunning=if_running)
    if if_running == "Fail":
        wait_for(control_plane, op_namespace, "w", "condition=Stalled")
        obj = get(control_plane, op_namespace, "w")
        assert condition(obj, "Stalled")["reason"] == "ConnectionBusy"
        assert "A sync is already running" in obj["status"]["message"]
        return
    if if_running == "Wait":
        reason = "jsonpath={.status.conditions[?(@.type=='Reconciling')].reason}=WaitingForConnection"
        wait_for(control_plane, op_namespace, "w", reason)
    wait_for(control_plane, op_namespace, "w", "condition=Ready", timeout=40)
    job_id = get(control_plane, op_namespace, "w")["status"]["jobId"]
    if if_running == "Adopt":
        assert job_id == 99 and posts(fake_airbyte) == 1
    else:
        assert job_id > 500_000 and posts(fake_airbyte) >= 2


def starts(fake: RunningFake) -> int:
    """POSTs that start a job, on either API."""
    return sum(1 for r in fake.fake.requests if r.method == "POST" and r.path.endswith(STARTS))


STARTS = ("/jobs", "/connections/sync", "/connections/reset")


@pytest.mark.parametrize(
    ("job_type", "api"),
    [
        ("sync", "public"),
        ("clear", "public"),
        ("reset", "config"),
        ("clear", "config"),
    ],
)
def test_never_triggers_twice_when_killed_between_the_post_and_the_status_write(
    control_plane: ControlPlane, fake_airbyte: RunningFake, tmp_path: Path, job_type: str, api: str
) -> None:
    """Airbyte reads a clear back as a reset: adoption after the restart must still find it."""
    ns = f"trig-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", ns)
    if api == "public":
        login = [f"--from-literal=url={fake_airbyte.url}", "--from-literal=clientId=x",
                 "--from-literal=clientSecret=y"]  # fmt: skip
        fake_airbyte.fake.client_id, fake_airbyte.fake.client_secret = "x", "y"
    else:
        login = [f"--from-literal=url={fake_airbyte.base}/api/v1", "--from-literal=api=config",
                 "--from-literal=username=airbyte", "--from-literal=password=password"]  # fmt: skip
        fake_airbyte.fake.username, fake_airbyte.fake.password = "airbyte", "password"
    control_plane.kubectl("-n", ns, "create", "secret", "generic", "airbyte-default", *login)
    fake_airbyte.fake.connection_scripts[CONNECTION] = [Step("running", polls=1), Step("succeeded")]
    # Airbyte takes 4 s to answer the POST: the operator dies while it waits.
    path = "/jobs" if api == "public" else "/connections/"
    fake_airbyte.fake.inject(Fault(200, delay=4.0, passthrough=True, method="POST", path_contains=path))
    trigger(control_plane, ns, "once", jobType=job_type)
    operator = OperatorProcess(
        control_plane, tmp_path / "op.log", ["--namespace", ns, "--startup-spread=0.1"]
    )
    operator.start()
    try:
        eventually(lambda: starts(fake_airbyte) == 1, timeout=20)
        assert "triggeredAt" in get(control_plane, ns, "once")["status"], (
            "the intent is written before the POST"
        )
        operator.kill()
        time.sleep(5)  # Airbyte finishes creating the job; nobody hears the answer
        assert "jobId" not in get(control_plane, ns, "once")["status"]
        operator.start()
        wait_for(control_plane, ns, "once", "condition=Ready", timeout=30)
    finally:
        operator.stop()
    assert starts(fake_airbyte) == 1, "adopted the job created after the intent instead of posting again"
    started = [j for j in fake_airbyte.fake.jobs.values() if j.connection_id == CONNECTION]
    assert len(started) == 1
    assert get(control_plane, ns, "once")["status"]["jobId"] == started[0].job_id


def test_trigger_through_the_legacy_config_api(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake
) -> None:
    fake_airbyte.fake.connection_scripts[CONNECTION] = [Step("running", polls=1), Step("succeeded")]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oss"},
              "stringData": {"url": f"{fake_airbyte.base}/api/v1", "api": "config",
                             "username": "airbyte", "password": "password"}}  # fmt: skip
    fake_airbyte.fake.username, fake_airbyte.fake.password = "airbyte", "password"
    control_plane.kubectl("-n", op_namespace, "apply", "-f", "-", input=json.dumps(secret))
    trigger(control_plane, op_namespace, "legacy", serverRef={"name": "oss"})
    wait_for(control_plane, op_namespace, "legacy", "condition=Ready")
    assert get(control_plane, op_namespace, "legacy")["status"]["jobId"] > 500_000
    syncs = [r for r in fake_airbyte.fake.requests if r.path == "/api/v1/connections/sync"]
    assert len(syncs) == 1
