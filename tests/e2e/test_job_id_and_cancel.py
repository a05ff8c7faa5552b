"""spec.jobIdFrom (a ConfigMap key written by an earlier step) and spec.cancelOnTimeout."""

from __future__ import annotations

import json

import pytest

from tests.support.cluster import apply, condition, events, eventually, get, reasons, wait_for, watch_manifest
from tests.support.controlplane import ControlPlane
from tests.support.fake_airbyte import Fault, RunningFake, Step

pytestmark = pytest.mark.cluster

FROM = {"jobIdFrom": {"configMapKeyRef": {"name": "sync-output", "key": "jobId"}}, "pollInterval": "1s"}


def config_map(plane: ControlPlane, ns: str, data: dict[str, str]) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sync-output"}, "data": data}
    plane.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(body))


def test_job_id_from_a_config_map_waits_until_it_is_written(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    ns = op_namespace
    fake_airbyte.fake.add_job(91, [("running", 1), ("succeeded", None)])
    assert apply(control_plane, ns, watch_manifest("later", FROM)).returncode == 0
    waiting = "jsonpath={.status.conditions[?(@.type=='Reconciling')].reason}=WaitingForJobId"
    wait_for(control_plane, ns, "later", waiting)
    assert "ConfigMap 'sync-output' not found" in get(control_plane, ns, "later")["status"]["message"]
    config_map(control_plane, ns, {"other": "x"})
    eventually(lambda: "no key 'jobId'" in get(control_plane, ns, "later")["status"]["message"])
    config_map(control_plane, ns, {"jobId": "91\n"})
    wait_for(control_plane, ns, "later", "condition=Ready")
    assert get(control_plane, ns, "later")["status"]["jobId"] == 91
    config_map(control_plane, ns, {"jobId": "92"})  # once read, the id is fixed
    assert get(control_plane, ns, "later")["status"]["jobId"] == 91
    assert eventually(lambda: reasons(control_plane, ns, "later") == ["JobRunning", "JobSucceeded"])


def test_a_config_map_value_that_is_not_a_job_id_stalls_until_it_is_corrected(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(93, [("running", 1), ("succeeded", None)])
    config_map(control_plane, op_namespace, {"jobId": "not-a-number"})
    assert apply(control_plane, op_namespace, watch_manifest("bad", FROM)).returncode == 0
    wait_for(control_plane, op_namespace, "bad", "condition=Stalled")
    obj = get(control_plane, op_namespace, "bad")
    assert condition(obj, "Stalled")["reason"] == "InvalidJobId"
    assert "spec.jobIdFrom" in obj["status"]["message"] and "'not-a-number'" in obj["status"]["message"]
    config_map(control_plane, op_namespace, {"jobId": "93"})  # the earlier step wrote it late
    wait_for(control_plane, op_namespace, "bad", "condition=Ready")
    assert get(control_plane, op_namespace, "bad")["status"]["jobId"] == 93
    assert reasons(control_plane, op_namespace, "bad") == ["InvalidJobId", "JobRunning", "JobSucceeded"]


def test_schema_wants_exactly_one_job_id_source(control_plane: ControlPlane, namespace: str) -> None:
    both = apply(control_plane, namespace, watch_manifest("both", {**FROM, "jobId": 1}))
    neither = apply(control_plane, namespace, watch_manifest("neither", {"pollInterval": "1s"}))
    for done in (both, neither):
        assert done.returncode != 0 and "exactly one of jobId, jobIdFrom and connectionId" in done.stderr


def test_cancel_on_timeout_cancels_a_job_still_running(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    job = fake_airbyte.fake.add_job(93, [("running", None)])
    spec = {"jobId": 93, "pollInterval": "1s", "timeout": "3s", "cancelOnTimeout": True}
    assert apply(control_plane, op_namespace, watch_manifest("slow", spec)).returncode == 0
    wait_for(control_plane, op_namespace, "slow", "condition=Stalled")
    obj = get(control_plane, op_namespace, "slow")
    assert condition(obj, "Stalled")["reason"] == "TimedOut"
    assert obj["status"]["cancelRequested"] is True
    assert "cancelled Airbyte job 93" in obj["status"]["message"]
    assert job.cancelled_by_request
    timed_out = eventually(
        lambda: [e for e in events(control_plane, op_namespace, "slow") if e["reason"] == "TimedOut"]
    )
    assert "cancelled Airbyte job 93" in timed_out[0]["message"]


def test_cancel_answered_409_means_the_job_had_already_finished(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    job = fake_airbyte.fake.add_job(94, [("running", None)])
    # Airbyte's answer when the job finished between our read and the cancel.
    body = json.dumps({"status": 409, "title": "state-conflict", "detail": "State conflict",
                       "data": {"message": "Job is not currently running"}})  # fmt: skip
    fake_airbyte.fake.inject(Fault(409, body, path_contains="/jobs/94", method="DELETE"))
    spec = {"jobId": 94, "pollInterval": "1s", "timeout": "3s", "cancelOnTimeout": True}
    assert apply(control_plane, op_namespace, watch_manifest("raced", spec)).returncode == 0
    wait_for(control_plane, op_namespace, "raced", "condition=Stalled")
    obj = get(control_plane, op_namespace, "raced")
    assert "had already finished" in obj["status"]["message"]
    assert not job.cancelled_by_request


def test_cancel_on_delete_cancels_the_running_job_then_lets_the_delete_finish(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    job = fake_airbyte.fake.add_job(95, [("running", None)])
    spec = {"jobId": 95, "pollInterval": "1s", "cancelOnDelete": True}
    assert apply(control_plane, op_namespace, watch_manifest("held", spec)).returncode == 0
    wait_for(
        control_plane,
        op_namespace,
        "held",
        "jsonpath={.metadata.finalizers[0]}=airbyte.watch/cancel-on-delete",
    )
    done = control_plane.kubectl(
        "-n", op_namespace, "delete", "ajw", "held", "--timeout=30s", check=False, timeout=40
    )
    assert done.returncode == 0, done.stderr
    assert job.cancelled_by_request
    assert eventually(
        lambda: "CancelledOnDelete" in [e["reason"] for e in events(control_plane, op_namespace, "held")]
    )


def test_a_final_watch_drops_its_finalizer(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    job = fake_airbyte.fake.add_job(96, [("running", 2), ("succeeded", None)])
    spec = {"jobId": 96, "pollInterval": "1s", "cancelOnDelete": True}
    assert apply(control_plane, op_namespace, watch_manifest("done", spec)).returncode == 0
    wait_for(control_plane, op_namespace, "done", "condition=Ready")
    eventually(lambda: not get(control_plane, op_namespace, "done")["metadata"].get("finalizers"))
    control_plane.kubectl("-n", op_namespace, "delete", "ajw", "done", "--timeout=10s")
    assert not job.cancelled_by_request


def test_a_delete_never_hangs_on_an_unreachable_airbyte(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(97, [("running", None)])
    spec = {"jobId": 97, "pollInterval": "1s", "cancelOnDelete": True}
    assert apply(control_plane, op_namespace, watch_manifest("stuck", spec)).returncode == 0
    wait_for(
        control_plane,
        op_namespace,
        "stuck",
        "jsonpath={.metadata.finalizers[0]}=airbyte.watch/cancel-on-delete",
    )
    fake_airbyte.fake.inject(Fault(503, "<html>down</html>", path_contains="/jobs/97", count=10_000))
    done = control_plane.kubectl(
        "-n", op_namespace, "delete", "ajw", "stuck", "--timeout=60s", check=False, timeout=70
    )
    assert done.returncode == 0, done.stderr
    warning = eventually(
        lambda: [
            e for e in events(control_plane, op_namespace, "stuck") if e["reason"] == "CancelUnconfirmed"
        ]
    )
    assert warning[0]["type"] == "Warning" and "Airbyte job 97" in warning[0]["message"]


def test_legacy_config_api_reports_attempts_and_why_a_sync_failed(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake
) -> None:
    failure = {"failureOrigin": "destination", "failureType": "system_error",
               "externalMessage": "Warehouse quota exceeded"}  # fmt: skip
    fake_airbyte.fake.add_job(
        98, [("running", 1), ("incomplete", 1), ("failed", None)], attempts=3, failure=failure
    )
    fake_airbyte.fake.username, fake_airbyte.fake.password = "airbyte", "password"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oss"},
              "stringData": {"url": f"{fake_airbyte.base}/api/v1", "api": "config",
                             "username": "airbyte", "password": "password"}}  # fmt: skip
    control_plane.kubectl("-n", op_namespace, "apply", "-f", "-", input=json.dumps(secret))
    spec = {"jobId": 98, "pollInterval": "1s", "serverRef": {"name": "oss"}}
    assert apply(control_plane, op_namespace, watch_manifest("legacy", spec)).returncode == 0
    wait_for(control_plane, op_namespace, "legacy", "condition=Stalled")
    status = get(control_plane, op_namespace, "legacy")["status"]
    assert status["phase"] == "Failed" and status["attempts"] == 3
    why = "destination system_error: Warehouse quota exceeded"
    assert why in status["message"] and "after 3 attempts" in status["message"]
    failed = eventually(
        lambda: [e for e in events(control_plane, op_namespace, "legacy") if e["reason"] == "JobFailed"]
    )
    assert why in failed[0]["message"]
    assert any(r.path == "/api/v1/jobs/get" for r in fake_airbyte.fake.requests)


def test_delete_reads_the_job_first_and_does_not_cancel_one_that_finished(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    # The job ends unseen (the watch polls hourly); a cancel now would stop whatever job the
    # connection runs next, so the operator must read first and leave it alone.
    # It ends right after the first poll (by poll count, not time: a loaded machine may take
    # seconds to make that first poll).
    job = fake_airbyte.fake.add_job(100, [Step("running", polls=1), Step("succeeded")])
    spec = {"jobId": 100, "pollInterval": "1h", "cancelOnDelete": True}
    assert apply(control_plane, op_namespace, watch_manifest("late", spec)).returncode == 0
    wait_for(
        control_plane,
        op_namespace,
        "late",
        "jsonpath={.metadata.finalizers[0]}=airbyte.watch/cancel-on-delete",
    )
    control_plane.kubectl("-n", op_namespace, "delete", "ajw", "late", "--timeout=30s", timeout=40)
    assert not job.cancelled_by_request
    assert not [r for r in fake_airbyte.fake.requests if r.method == "DELETE"]


def test_deleting_the_watch_of_a_finished_job_never_cancels_the_connections_next_job(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    # Airbyte cancels per connection: a DELETE naming the finished job would stop the job the
    # connection runs now. The fake does the same, so only the operator's read-first guard
    # keeps the next job alive.
    old = fake_airbyte.fake.add_job(120, [Step("running", polls=1), Step("succeeded")])  # ends unseen
    spec = {"jobId": 120, "pollInterval": "1h", "cancelOnDelete": True}
    assert apply(control_plane, op_namespace, watch_manifest("earlier", spec)).returncode == 0
    wait_for(
        control_plane,
        op_namespace,
        "earlier",
        "jsonpath={.metadata.finalizers[0]}=airbyte.watch/cancel-on-delete",
    )
    following = fake_airbyte.fake.add_job(121, [Step("running")], connection_id=old.connection_id)
    control_plane.kubectl("-n", op_namespace, "delete", "ajw", "earlier", "--timeout=30s", timeout=40)
    assert not following.cancelled_by_request and following.peek() == "running"
    assert not old.cancelled_by_request
