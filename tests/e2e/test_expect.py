"""spec.expect end to end: a job Airbyte reports succeeded with no rows, under a watch that
expects at least one, ends the watch Failed / TooFewRows with one Warning Event."""

from __future__ import annotations

import pytest

from tests.support.cluster import apply, condition, events, eventually, get, reasons, wait_for, watch_manifest
from tests.support.controlplane import ControlPlane
from tests.support.fake_airbyte import RunningFake, Step

pytestmark = pytest.mark.cluster


def test_an_empty_success_under_min_rows_synced_fails_too_few_rows(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    # The session operator walks the job list: the job is scripted by time, not by GETs.
    fake_airbyte.fake.add_job(9001, [Step("running", seconds=2), Step("succeeded")], rows=0)
    spec = {"jobId": 9001, "pollInterval": "1s", "expect": {"minRowsSynced": 1}}
    done = apply(control_plane, op_namespace, watch_manifest("empty", spec))
    assert done.returncode == 0, done.stderr
    wait_for(control_plane, op_namespace, "empty", "jsonpath={.status.phase}=Failed")
    obj = get(control_plane, op_namespace, "empty")
    status = obj["status"]
    assert status["jobStatus"] == "succeeded" and status["rowsSynced"] == 0
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "Stalled")["status"] == "True"
    assert condition(obj, "Ready")["reason"] == condition(obj, "Stalled")["reason"] == "TooFewRows"
    assert condition(obj, "Reconciling") is None
    message = "Airbyte job 9001 succeeded with 0 rows synced; spec.expect.minRowsSynced is 1"
    assert status["message"] == message
    assert eventually(lambda: "TooFewRows" in reasons(control_plane, op_namespace, "empty"))
    (event,) = [e for e in events(control_plane, op_namespace, "empty") if e["reason"] == "TooFewRows"]
    assert event["type"] == "Warning" and event["message"] == message
    assert "JobSucceeded" not in reasons(control_plane, op_namespace, "empty")


def test_the_api_server_refuses_a_negative_bound(control_plane: ControlPlane, op_namespace: str) -> None:
    spec = {"jobId": 9002, "expect": {"minRowsSynced": -1}}
    done = apply(control_plane, op_namespace, watch_manifest("negative", spec))
    assert done.returncode != 0 and "minRowsSynced" in done.stderr
