"""Every kind of status the operator can write, as whole objects, made by the decision core itself.

The consumer tests (kstatus, Flux CEL, Argo, Argo CD) read these, so a change in what the
operator writes is checked against what each tool concludes from it.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
from typing import Any

from airbyte_watch.airbyte import model as at
from airbyte_watch.core.decision import decide
from airbyte_watch.core.spec import InvalidSpec, parse_spec

T0 = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=datetime.timezone.utc)
SPEC = {"jobId": 4242, "pollInterval": "30s", "timeout": "1h"}


def _object(status: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "airbyte.watch/v1alpha1",
        "kind": "AirbyteJobWatch",
        "metadata": {
            "name": "nightly-sync",
            "namespace": "data",
            "generation": generation,
            "creationTimestamp": "2026-11-24T12:00:00Z",
            "uid": "6a1c5e4e-0000-4000-8000-000000000001",
        },
        "spec": {**SPEC, "backoff": {"exponential": True, "maxDelay": "5m"}, "onUnknownStatus": "Fail"},
        "status": status,
    }


def _after(answers: list[at.Job | at.Problem]) -> dict[str, Any]:
    spec = parse_spec(SPEC, "airbyte-default")
    status: dict[str, Any] = {"observedGeneration": -1}
    failures = 0
    for i, answer in enumerate(answers):
        decision = decide(spec, status, failures, answer, T0 + datetime.timedelta(seconds=30 * i), 1)
        status, failures = decision.status, decision.failures
    return status


def _job(word: str) -> at.Job:
    return at.Job(4242, word, "sync", "9924bcd0-99be-453d-ba47-c2c9766f7da5", 1200, 65536)


RUNNING = _job("running")

# name -> (object, what it means: waiting | succeeded | failed | stalled-fixable)
STATES: dict[str, tuple[dict[str, Any], str]] = {
    "fresh": (_object({"observedGeneration": -1}), "waiting"),
    "pending": (_object(_after([_job("pending")])), "waiting"),
    "queued": (_object(_after([_job("queued")])), "waiting"),
    "running": (_object(_after([_job("pending"), RUNNING])), "waiting"),
    "incomplete": (_object(_after([RUNNING, _job("incomplete")])), "waiting"),
    "retrying": (
        _object(_after([RUNNING, at.Problem(at.SERVER_ERROR, "503 Service Unavailable")])),
        "waiting",
    ),
    "unknown-status-waiting": (_object({}), "waiting"),  # filled below: needs onUnknownStatus Wait
    "succeeded": (_object(_after([RUNNING, _job("succeeded")])), "succeeded"),
    "failed": (_object(_after([RUNNING, _job("failed")])), "failed"),
    "cancelled": (_object(_after([RUNNING, _job("cancelled")])), "failed"),
    "unknown-status": (_object(_after([_job("exploded")])), "failed"),
    "not-found": (_object(_after([at.Problem(at.NOT_FOUND, "404 resource-not-found")])), "failed"),
    "timed-out": (_object(_after([RUNNING] * 121)), "failed"),
    "secret-not-found": (
        _object(_after([at.Problem(at.SECRET_NOT_FOUND, "Secret 'airbyte-default' not found")])),
        "stalled",
    ),
    "invalid-secret": (_object(_after([at.Problem(at.INVALID_SECRET, "key 'url' is missing")])), "stalled"),
    "authentication-failed": (
        _object(_after([at.Problem(at.AUTH_FAILED, "401 invalid-api-key")])),
        "stalled",
    ),
    "invalid-spec": (
        _object(
            decide(InvalidSpec("pollInterval", "bad"), {"observedGeneration": -1}, 0, None, T0, 1).status
        ),
        "stalled",
    ),
}

# spec.expect: a success below the bound, and one without the count
_expect_spec = parse_spec({**SPEC, "expect": {"minRowsSynced": 1}}, "airbyte-default")
for _name, _rows in (("too-few-rows", 0), ("rows-unknown", None)):
    _done = decide(_expect_spec, {"observedGeneration": -1}, 0,
                   dataclasses.replace(_job("succeeded"), rows_synced=_rows), T0, 1)  # fmt: skip
    STATES[_name] = (_object(_done.status), "failed")

# onUnknownStatus: Wait
_wait_spec = parse_spec({**SPEC, "onUnknownStatus": "Wait"}, "airbyte-default")
_waiting = decide(_wait_spec, {"observedGeneration": -1}, 0, _job("exploded"), T0, 1).status
STATES["unknown-status-waiting"] = (_object(_waiting), "waiting")

# A spec edit the operator has not observed yet: the old status, a newer generation.
_lagging = copy.deepcopy(STATES["succeeded"][0])
_lagging["metadata"]["generation"] = 2
STATES["spec-edited-not-yet-observed"] = (_lagging, "waiting")
_lagging_failed = copy.deepcopy(STATES["failed"][0])
_lagging_failed["metadata"]["generation"] = 2
STATES["failed-then-edited-not-yet-observed"] = (_lagging_failed, "waiting")
