"""The operator end to end: `airbyte-watch run` + the real control plane + the fake Airbyte.

One test per row of the condition table: each applies a watch with kubectl, waits as a user
would, and checks conditions, phase and Events.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.support.cluster import (
    OperatorProcess,
    apply,
    condition,
    eventually,
    get,
    reasons,
    status_patches,
    wait_for,
    watch_manifest,
)
from tests.support.controlplane import ControlPlane
from tests.support.fake_airbyte import Fault, RunningFake, Step

pytestmark = pytest.mark.cluster

FAST = {"pollInterval": "1s"}


def create(plane: ControlPlane, namespace: str, name: str, **spec: object) -> None:
    done = apply(plane, namespace, watch_manifest(name, {**FAST, **spec}))
    assert done.returncode == 0, done.stderr


def test_success_is_ready_with_one_patch_per_state_change(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(11, [("pending", 2), ("running", 3), ("succeeded", None)], rows=45, bytes_=1234)
    create(control_plane, op_namespace, "sync", jobId="11")
    wait_for(control_plane, op_namespace, "sync", "condition=Ready")
    obj = get(control_plane, op_namespace, "sync")
    status = obj["status"]
    assert status["phase"] == "Succeeded" and status["jobStatus"] == "succeeded"
    assert (status["jobId"], status["rowsSynced"], status["bytesSynced"]) == (11, 45, 1234)
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert condition(obj, "Reconciling") is None and condition(obj, "Stalled") is None
    assert condition(obj, "Ready")["reason"] == "JobSucceeded"
    assert {"startedAt", "deadline", "completedAt"} <= status.keys()
    assert eventually(lambda: reasons(control_plane, op_namespace, "sync") == ["JobRunning", "JobSucceeded"])
    # Six polls saw three states (pending, running, succeeded): three status writes, no more.
    assert fake_airbyte.fake.job_gets(11) >= 6
    assert status_patches(control_plane, op_namespace, "sync") == 3


@pytest.mark.parametrize(
    ("word", "phase", "reason"),
    [("failed", "Failed", "JobFailed"), ("cancelled", "Cancelled", "JobCancelled")],
)
def test_failed_and_cancelled_are_stalled(
    control_plane: ControlPlane,
    op_namespace: str,
    fake_airbyte: RunningFake,
    airbyte_secret: str,
    word: str,
    phase: str,
    reason: str,
) -> None:
    fake_airbyte.fake.add_job(12, [("running", 1), (word, None)])
    create(control_plane, op_namespace, "job", jobId=12)
    wait_for(control_plane, op_namespace, "job", "condition=Stalled")
    obj = get(control_plane, op_namespace, "job")
    assert obj["status"]["phase"] == phase
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "Ready")["reason"] == condition(obj, "Stalled")["reason"] == reason
    assert condition(obj, "Reconciling") is None
    assert eventually(lambda: reasons(control_plane, op_namespace, "job") == ["JobRunning", reason])
    polls = fake_airbyte.fake.job_gets(12)
    wait_for(control_plane, op_namespace, "job", "jsonpath={.status.phase}=" + phase)
    time.sleep(2.5)
    assert fake_airbyte.fake.job_gets(12) == polls, "a final watch is not polled again"


def test_unknown_status_fails_or_waits_as_asked(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(13, [("exploded", None)])
    create(control_plane, op_namespace, "strict", jobId=13)
    create(control_plane, op_namespace, "patient", jobId=13, onUnknownStatus="Wait")
    wait_for(control_plane, op_namespace, "strict", "condition=Stalled")
    strict = get(control_plane, op_namespace, "strict")
    assert condition(strict, "Stalled")["reason"] == "UnknownJobStatus"
    assert "'exploded'" in strict["status"]["message"]
    wait_for(control_plane, op_namespace, "patient", "condition=Reconciling")
    patient = get(control_plane, op_namespace, "patient")
    assert condition(patient, "Reconciling")["reason"] == "UnknownJobStatusWaiting"
    assert condition(patient, "Ready")["status"] == "Unknown"
    assert eventually(lambda: reasons(control_plane, op_namespace, "strict") == ["UnknownJobStatus"])
    # A status outside today's contract (as a newer Airbyte may send): the contract check says so.
    violations = fake_airbyte.fake.take_violations()
    assert violations and all("not a JobResponse: status:" in v for v in violations), violations


def test_timeout_is_stalled_timed_out(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(14, [("running", None)])
    create(control_plane, op_namespace, "slow", jobId=14, timeout="4s")
    wait_for(control_plane, op_namespace, "slow", "condition=Stalled")
    obj = get(control_plane, op_namespace, "slow")
    assert condition(obj, "Stalled")["reason"] == "TimedOut"
    assert obj["status"]["phase"] == "Failed"
    assert "did not finish within 4s" in obj["status"]["message"]
    assert eventually(lambda: reasons(control_plane, op_namespace, "slow") == ["JobRunning", "TimedOut"])


def test_job_not_found(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    create(control_plane, op_namespace, "ghost", jobId=404404)
    wait_for(control_plane, op_namespace, "ghost", "condition=Stalled")
    obj = get(control_plane, op_namespace, "ghost")
    assert condition(obj, "Stalled")["reason"] == "JobNotFound"
    assert "resource-not-found" in obj["status"]["message"]
    assert eventually(lambda: reasons(control_plane, op_namespace, "ghost") == ["JobNotFound"])


def test_missing_secret_stalls_then_resumes_when_created(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake
) -> None:
    fake_airbyte.fake.add_job(15, [("running", 1), ("succeeded", None)])
    create(control_plane, op_namespace, "early", jobId=15, serverRef={"name": "later"})
    wait_for(control_plane, op_namespace, "early", "condition=Stalled")
    obj = get(control_plane, op_namespace, "early")
    assert condition(obj, "Stalled")["reason"] == "SecretNotFound"
    assert "'later'" in obj["status"]["message"] and obj["status"]["phase"] == "Pending"
    control_plane.kubectl(
        "-n", op_namespace, "create", "secret", "generic", "later",
        f"--from-literal=url={fake_airbyte.url}",
        f"--from-literal=clientId={CLIENT_ID}", f"--from-literal=clientSecret={CLIENT_SECRET}",
    )  # fmt: skip
    wait_for(control_plane, op_namespace, "early", "condition=Ready", timeout=40)
    assert eventually(
        lambda: (
            reasons(control_plane, op_namespace, "early")[:1] == ["SecretNotFound"]
            and reasons(control_plane, op_namespace, "early")[-1] == "JobSucceeded"
        )
    )


def test_secret_without_url_is_invalid_secret(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake
) -> None:
    control_plane.kubectl(
        "-n", op_namespace, "create", "secret", "generic", "broken", "--from-literal=token=t"
    )
    create(control_plane, op_namespace, "w", jobId=16, serverRef={"name": "broken"})
    wait_for(control_plane, op_namespace, "w", "condition=Stalled")
    obj = get(control_plane, op_namespace, "w")
    assert condition(obj, "Stalled")["reason"] == "InvalidSecret"
    assert "'url' is missing" in obj["status"]["message"]
    assert eventually(lambda: reasons(control_plane, op_namespace, "w") == ["InvalidSecret"])


def test_rejected_credentials_are_authentication_failed(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake
) -> None:
    control_plane.kubectl(
        "-n", op_namespace, "create", "secret", "generic", "wrong",
        f"--from-literal=url={fake_airbyte.url}",
        f"--from-literal=clientId={CLIENT_ID}", "--from-literal=clientSecret=not-the-secret",
    )  # fmt: skip
    fake_airbyte.fake.add_job(17, [("running", None)])
    create(control_plane, op_namespace, "w", jobId=17, serverRef={"name": "wrong"})
    wait_for(control_plane, op_namespace, "w", "condition=Stalled")
    obj = get(control_plane, op_namespace, "w")
    assert condition(obj, "Stalled")["reason"] == "AuthenticationFailed"
    assert obj["status"]["phase"] == "Pending"
    assert eventually(lambda: reasons(control_plane, op_namespace, "w") == ["AuthenticationFailed"])


def test_api_outage_keeps_waiting_with_one_event_each_way(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(18, [Step("running", polls=1), Step("running", seconds=6), Step("succeeded")])
    create(control_plane, op_namespace, "w", jobId=18, backoff={"exponential": False})
    wait_for(control_plane, op_namespace, "w", "jsonpath={.status.phase}=Running")
    fake_airbyte.fake.inject(Fault(503, "<html>Service Unavailable</html>", count=3, path_contains="/jobs/"))
    wait_for(
        control_plane,
        op_namespace,
        "w",
        "jsonpath={.status.conditions[?(@.type=='Reconciling')].reason}=ProgressingWithRetry",
    )
    obj = get(control_plane, op_namespace, "w")
    assert condition(obj, "Ready")["status"] == "Unknown"
    assert "ServerError" in obj["status"]["message"] and "next try in 1s" in obj["status"]["message"]
    wait_for(control_plane, op_namespace, "w", "condition=Ready")
    assert eventually(
        lambda: (
            reasons(control_plane, op_namespace, "w")
            == ["JobRunning", "AirbyteUnreachable", "AirbyteReachable", "JobSucceeded"]
        )
    )


def test_deleting_a_watch_stops_its_polls(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str,
    operator: OperatorProcess,
) -> None:  # fmt: skip
    fake_airbyte.fake.add_job(19, [("running", None)])
    create(control_plane, op_namespace, "gone", jobId=19)
    wait_for(control_plane, op_namespace, "gone", "jsonpath={.status.phase}=Running")
    control_plane.kubectl(
        "-n", op_namespace, "delete", "airbytejobwatch", "gone", "--wait=true", "--timeout=10s"
    )
    time.sleep(1.5)
    polls = fake_airbyte.fake.job_gets(19)
    time.sleep(2.5)
    assert fake_airbyte.fake.job_gets(19) == polls
    assert "Traceback" not in operator.output


def test_queued_and_incomplete_keep_waiting_with_their_reasons(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(20, [("queued", 4), ("incomplete", 4), ("running", 1), ("succeeded", None)])
    create(control_plane, op_namespace, "w", jobId=20)
    reconciling = "jsonpath={.status.conditions[?(@.type=='Reconciling')].reason}="
    wait_for(control_plane, op_namespace, "w", reconciling + "JobQueued")
    obj = get(control_plane, op_namespace, "w")
    assert obj["status"]["phase"] == "Pending" and condition(obj, "Ready")["status"] == "Unknown"
    wait_for(control_plane, op_namespace, "w", reconciling + "JobIncomplete")
    obj = get(control_plane, op_namespace, "w")
    assert obj["status"]["phase"] == "Running" and condition(obj, "Stalled") is None
    wait_for(control_plane, op_namespace, "w", "condition=Ready")
    # incomplete counts as running: JobRunning once, on entering it.
    assert eventually(lambda: reasons(control_plane, op_namespace, "w") == ["JobRunning", "JobSucceeded"])
