"""kubectl, the real binary against the real API server, as a user types it."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support import consumers
from tests.support.cluster import apply, eventually, get, reasons, wait_for, watch_manifest
from tests.support.controlplane import ROOT, ControlPlane, kubectl_path
from tests.support.fake_airbyte import RunningFake

pytestmark = pytest.mark.cluster


def create(plane: ControlPlane, ns: str, name: str, job: int) -> None:
    assert apply(plane, ns, watch_manifest(name, {"jobId": job, "pollInterval": "1s"})).returncode == 0


def test_get_shows_columns_wide_and_category(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(81, [("succeeded", None)], rows=45)
    create(control_plane, op_namespace, "nightly", 81)
    wait_for(control_plane, op_namespace, "nightly", "condition=Ready")
    table = control_plane.kubectl("-n", op_namespace, "get", "ajw").stdout.splitlines()
    assert table[0].split() == ["NAME", "JOB", "PHASE", "READY", "MESSAGE", "AGE"]
    row = table[1].split()
    assert row[:4] == ["nightly", "81", "Succeeded", "True"]
    assert "Airbyte job 81 succeeded: 45 rows" in table[1]
    wide = control_plane.kubectl("-n", op_namespace, "get", "ajw", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-4:] == ["JOB-STATUS", "SERVER", "ROWS", "DEADLINE"]
    assert "succeeded" in wide[1] and " 45 " in wide[1]
    category = control_plane.kubectl("-n", op_namespace, "get", "airbyte", "-o", "name").stdout
    assert category.split() == ["airbytejobwatch.airbyte.watch/nightly"]


def test_wait_for_each_outcome(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(82, [("running", 2), ("succeeded", None)])
    fake_airbyte.fake.add_job(83, [("running", 2), ("failed", None)])
    create(control_plane, op_namespace, "good", 82)
    create(control_plane, op_namespace, "bad", 83)
    ns = ["-n", op_namespace]
    for args in (
        ["wait", "--for=condition=Ready", "ajw/good", "--timeout=30s"],
        ["wait", "--for=condition=Stalled", "ajw/bad", "--timeout=30s"],
        ["wait", "--for=condition=Ready=false", "ajw/bad", "--timeout=30s"],
        ["wait", "--for=jsonpath={.status.phase}=Succeeded", "ajw/good", "--timeout=30s"],
    ):
        done = control_plane.kubectl(*ns, *args, check=False, timeout=40)
        assert done.returncode == 0 and "condition met" in done.stdout, (args, done.stderr)
    waiter = subprocess.Popen(
        [kubectl_path(), f"--kubeconfig={control_plane.kubeconfig}", *ns, "wait", "--for=delete",
         "ajw/good", "--timeout=30s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Nothing holds the delete: without cancelOnDelete the operator keeps no finalizer. Read
    # from the object, not from a wall clock that a loaded CI machine stretches.
    assert get(control_plane, op_namespace, "good")["metadata"].get("finalizers") in (None, [])
    time.sleep(0.5)  # let the waiter start watching; nothing below depends on how long it took
    control_plane.kubectl(*ns, "delete", "ajw", "good", "--wait=false")
    _, err = waiter.communicate(timeout=40)
    assert waiter.returncode == 0, err
    gone = control_plane.kubectl(*ns, "get", "ajw", "good", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_describe_shows_the_events_in_order(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(84, [("pending", 1), ("running", 2), ("succeeded", None)])
    create(control_plane, op_namespace, "told", 84)
    wait_for(control_plane, op_namespace, "told", "condition=Ready")
    eventually(lambda: reasons(control_plane, op_namespace, "told") == ["JobRunning", "JobSucceeded"])
    described = control_plane.kubectl("-n", op_namespace, "describe", "ajw", "told").stdout
    events = described.split("Events:")[1]
    rows = [line.split() for line in events.strip().splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [("Normal", "JobRunning"), ("Normal", "JobSucceeded")]
    assert "Airbyte job 84 succeeded" in events
    assert "Type:" in described and "Ready" in described and "JobSucceeded" in described


def schema_paths(schema: dict[str, Any], prefix: str) -> Iterator[str]:
    for name, sub in (schema.get("properties") or {}).items():
        yield f"{prefix}.{name}"
        yield from schema_paths(sub, f"{prefix}.{name}")
        if sub.get("type") == "array":
            yield from schema_paths(sub.get("items") or {}, f"{prefix}.{name}")


def test_explain_describes_every_field(control_plane: ControlPlane) -> None:
    crd = yaml.safe_load((ROOT / "crds" / "airbytejobwatches.airbyte.watch.yaml").read_text())
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    paths = ["airbytejobwatch.spec", "airbytejobwatch.status"]
    paths += list(schema_paths(root["properties"]["spec"], "airbytejobwatch.spec"))
    paths += list(schema_paths(root["properties"]["status"], "airbytejobwatch.status"))
    assert len(paths) >= 30
    # The API server publishes a new CRD's OpenAPI schema a few seconds after it is established.
    eventually(lambda: control_plane.kubectl("explain", "airbytejobwatch", check=False).returncode == 0, 60)
    for path in paths:
        out = control_plane.kubectl("explain", path).stdout
        description = re.search(r"DESCRIPTION:\n(.*?)(\n\n|\Z)", out, re.S)
        assert description and description.group(1).strip() and "<empty>" not in description.group(1), path


def test_argo_step_and_kstatus_on_live_watches(
    control_plane: ControlPlane, op_namespace: str, namespace: str, fake_airbyte: RunningFake,
    airbyte_secret: str,
) -> None:  # fmt: skip
    workflow = yaml.safe_load((ROOT / "deploy" / "examples" / "argo-workflow.yaml").read_text())
    step = next(t for t in workflow["spec"]["templates"] if t["name"] == "wait-for-airbyte-job")
    manifest = step["resource"]["manifest"].replace("{{inputs.parameters.job-id}}", "85")
    manifest = manifest.replace("pollInterval: 30s", "pollInterval: 1s")
    fake_airbyte.fake.add_job(85, [("running", 2), ("succeeded", None)], rows=4321)
    # Before any reconcile (a namespace no operator watches), kstatus must not say Current.
    fresh = control_plane.kubectl("-n", namespace, "create", "-f", "-", "-o", "json", input=manifest).stdout
    assert consumers.kstatus(json.loads(fresh)) == "InProgress"
    created = json.loads(control_plane.kubectl("-n", op_namespace, "create", "-f", "-", "-o", "json",
                                               input=manifest).stdout)  # fmt: skip
    name = created["metadata"]["name"]

    def argo_verdict() -> str:
        obj = json.loads(control_plane.kubectl("-n", op_namespace, "get", "ajw", name, "-o", "json").stdout)
        return consumers.argo(obj, step["resource"]["successCondition"], step["resource"]["failureCondition"])

    assert argo_verdict() == "waiting"
    eventually(lambda: argo_verdict() == "succeeded", timeout=30)
    json_path = step["outputs"]["parameters"][0]["valueFrom"]["jsonPath"]
    output = control_plane.kubectl("-n", op_namespace, "get", "ajw", name, "-o", f"jsonpath={json_path}")
    assert output.stdout == "4321"
    live = json.loads(control_plane.kubectl("-n", op_namespace, "get", "ajw", name, "-o", "json").stdout)
    assert consumers.kstatus(live) == "Current"
