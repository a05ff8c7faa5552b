"""Bad input gets a clear error and nothing lost: rejected at apply, or Stalled with a Warning."""

from __future__ import annotations

import json

import pytest

from tests.support.cluster import apply, condition, events, eventually, get, wait_for, watch_manifest
from tests.support.controlplane import ControlPlane
from tests.support.fake_airbyte import RunningFake

pytestmark = pytest.mark.cluster

MISSING = object()


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"jobId": "abc"}, "spec.jobId", "positive 64-bit integer"),
        ({"jobId": -1}, "spec.jobId", "positive 64-bit integer"),
        ({"jobId": 0}, "spec.jobId", "positive 64-bit integer"),
        ({"jobId": 1.5}, "spec.jobId", "must be of type integer,string"),
        ({"jobId": "9223372036854775808"}, "spec.jobId", "positive 64-bit integer"),
        ({"jobId": 9223372036854775808}, "spec.jobId", "must be of type integer,string"),
        ({"pollInterval": "30s"}, "spec", "exactly one of jobId, jobIdFrom and connectionId must be set"),
        ({"jobId": 1, "pollInterval": "0s"}, "spec.pollInterval", "at least 1s"),
        ({"jobId": 1, "pollInterval": "fast"}, "spec.pollInterval", "should match"),
        ({"jobId": 1, "pollInterval": "-5s"}, "spec.pollInterval", "should match"),
        ({"jobId": 1, "timeout": "0s"}, "spec.timeout", "greater than 0s"),
        ({"jobId": 1, "backoff": {"maxDelay": "0s"}}, "spec.backoff.maxDelay", "at least 1s"),
        ({"jobId": 1, "onUnknownStatus": "Ignore"}, "spec.onUnknownStatus", "Unsupported value"),
        ({"jobId": 1, "pollIntervall": "5s"}, 'unknown field "spec.pollIntervall"', ""),
        (
            {"jobId": 1, "serverRef": {"name": "other-namespace/airbyte"}},
            "spec.serverRef.name",
            "should match",
        ),
    ],
)
def test_schema_rejects_bad_specs_naming_the_field(
    control_plane: ControlPlane, namespace: str, spec: dict, field: str, words: str
) -> None:
    done = apply(control_plane, namespace, watch_manifest("bad", spec))
    assert done.returncode != 0, "applied a bad spec"
    assert field in done.stderr and words in done.stderr, done.stderr
    assert control_plane.kubectl("-n", namespace, "get", "ajw", "-o", "name").stdout == ""


PEM_GARBAGE = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"token": "t"}, "'url' is missing"),
        ({"url": "ftp://airbyte/v1"}, "http:// or https://"),
        ({"url": "https://admin:pa55word@airbyte/v1"}, "must not carry credentials"),
        ({"url": "https://airbyte/v1", "clientId": "i", "clientSecret": "s", "token": "t"}, "both set"),
        ({"url": "https://airbyte/v1", "clientId": "i"}, "without 'clientSecret'"),
        ({"url": "https://airbyte/v1", "caBundle": "certainly not PEM"}, "'caBundle' is not a PEM"),
        ({"url": "https://airbyte/v1", "caBundle": PEM_GARBAGE}, "'caBundle' holds no loadable PEM"),
    ],
)
def test_unusable_secrets_stall_with_a_warning_naming_the_key(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, data: dict, words: str
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "airbyte-default"},
        "stringData": data,
    }
    control_plane.kubectl("-n", op_namespace, "apply", "-f", "-", input=json.dumps(secret))
    assert (
        apply(control_plane, op_namespace, watch_manifest("w", {"jobId": 1, "pollInterval": "1s"})).returncode
        == 0
    )
    wait_for(control_plane, op_namespace, "w", "condition=Stalled")
    obj = get(control_plane, op_namespace, "w")
    assert condition(obj, "Stalled")["reason"] == "InvalidSecret"
    assert words in obj["status"]["message"]
    assert obj["status"]["phase"] == "Pending", "a fixable problem is not final"
    warning = eventually(
        lambda: [e for e in events(control_plane, op_namespace, "w") if e["reason"] == "InvalidSecret"]
    )
    assert len(warning) == 1 and warning[0]["type"] == "Warning" and words in warning[0]["message"]
    assert "pa55word" not in json.dumps(obj) + json.dumps(warning)
