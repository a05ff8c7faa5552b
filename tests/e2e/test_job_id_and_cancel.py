"""spec.jobIdFrom (a ConfigMap key written by an earlier step) and spec.cancelOnTimeout."""

from __future__ import annotations

import json

import pytest

from tests.support.cluster import apply, condition, events, eventually, get, reasons, wait_for, watch_manifest
from tests.support.controlplane import ControlPlane
from tests.support.fake_airbyte import Fault, RunningFake

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


def test_a_config_map_value_that_is_not_a_job_id_is_invalid_spec(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    config_map(control_plane, op_namespace, {"jobId": "not-a-number"})
    assert apply(control_plane, op_namespace, watch_manifest("bad", FROM)).returncode == 0
    wait_for(control_plane, op_namespace, "bad", "condition=Stalled")
    obj = get(control_plane, op_namespace, "bad")
    assert condition(obj, "Stalled")["reason"] == "InvalidSpec"
    assert "spec.jobIdFrom" in obj["status"]["message"] and "'not-a-number'" in obj["status"]["message"]


def test_schema_wants_exactly_one_job_id_source(control_plane: ControlPlane, namespace: str) -> None:
    both = apply(control_plane, namespace, watch_manifest("both", {**FROM, "jobId": 1}))
    neither = apply(control_plane, namespace, watch_manifest("neither", {"pollInterval": "1s"}))
    for done in (both, neither):
        assert done.returncode != 0 and "exactly one of jobId and jobIdFrom" in done.stderr


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
