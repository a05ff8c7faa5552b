"""The API server in the tests is real: schema validation, CEL rules, status subresource, kubectl wait."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.cluster import apply, get, watch_manifest
from tests.support.controlplane import ControlPlane, kubectl_path

pytestmark = pytest.mark.cluster


def test_crd_is_established_with_names(control_plane: ControlPlane) -> None:
    out = control_plane.kubectl("api-resources", "--api-group=airbyte.watch", "-o", "wide").stdout
    assert "airbytejobwatches" in out and "ajw" in out and "airbyte" in out


def test_schema_violation_is_rejected_with_the_servers_message(
    control_plane: ControlPlane, namespace: str
) -> None:
    done = apply(control_plane, namespace, watch_manifest("bad", {"jobId": "abc", "pollInterval": "0s"}))
    assert done.returncode != 0
    assert 'The AirbyteJobWatch "bad" is invalid' in done.stderr
    assert "spec.jobId" in done.stderr and "positive 64-bit integer" in done.stderr
    assert "spec.pollInterval" in done.stderr and "at least 1s" in done.stderr


def test_defaults_are_applied_by_the_server(control_plane: ControlPlane, namespace: str) -> None:
    assert apply(control_plane, namespace, watch_manifest("plain", {"jobId": 7})).returncode == 0
    obj = get(control_plane, namespace, "plain")
    assert obj["spec"]["pollInterval"] == "30s" and obj["spec"]["timeout"] == "168h"
    assert obj["spec"]["backoff"] == {"exponential": True, "maxDelay": "5m"}
    assert obj["spec"]["onUnknownStatus"] == "Fail"
    # Before any reconcile, kstatus must read InProgress: observedGeneration -1 by default.
    assert obj["status"] == {"observedGeneration": -1}


def test_job_id_is_immutable(control_plane: ControlPlane, namespace: str) -> None:
    assert apply(control_plane, namespace, watch_manifest("fixed", {"jobId": 7})).returncode == 0
    done = apply(control_plane, namespace, watch_manifest("fixed", {"jobId": 8}))
    assert done.returncode != 0 and "jobId is immutable" in done.stderr


def test_kubectl_wait_returns_when_a_patched_status_meets_the_condition(
    control_plane: ControlPlane, namespace: str
) -> None:
    assert apply(control_plane, namespace, watch_manifest("waited", {"jobId": 7})).returncode == 0
    waiter = subprocess.Popen(
        [kubectl_path(), f"--kubeconfig={control_plane.kubeconfig}", "-n", namespace, "wait",
         "--for=condition=Ready", "airbytejobwatch/waited", "--timeout=30s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        patch = (
            '{"status":{"observedGeneration":1,"conditions":[{"type":"Ready","status":"True",'
            '"reason":"JobSucceeded","message":"done","observedGeneration":1,'
            '"lastTransitionTime":"2026-01-01T00:00:00Z"}]}}'
        )
        control_plane.kubectl("-n", namespace, "patch", "airbytejobwatch", "waited",
                              "--subresource=status", "--type=merge", "-p", patch)  # fmt: skip
        out, err = waiter.communicate(timeout=40)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, err
    assert "condition met" in out


def test_status_subresource_ignores_status_on_main_resource(
    control_plane: ControlPlane, namespace: str
) -> None:
    manifest = (
        '{"apiVersion":"airbyte.watch/v1alpha1","kind":"AirbyteJobWatch","metadata":{"name":"sneaky"},'
        '"spec":{"jobId":7},"status":{"phase":"Succeeded"}}'
    )
    assert apply(control_plane, namespace, manifest).returncode == 0
    assert "phase" not in get(control_plane, namespace, "sneaky")["status"]
