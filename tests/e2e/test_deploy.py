"""deploy/ renders, applies to the real API server, and its RBAC is all the operator needs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from airbyte_watch.monitoring.metrics import Metrics

from tests.conftest import create_default_secret
from tests.support.cluster import OperatorProcess, apply, get, reasons, wait_for, watch_manifest
from tests.support.controlplane import ROOT, ControlPlane
from tests.support.fake_airbyte import RunningFake

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def deployed(control_plane: ControlPlane) -> str:
    rendered = control_plane.kubectl("kustomize", str(ROOT / "deploy")).stdout
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=rendered)
    return rendered


def test_rendered_deployment_is_locked_down(deployed: str) -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(deployed)}
    assert set(docs) >= {"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole",
                         "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service",
                         "PodDisruptionBudget"}  # fmt: skip
    assert docs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1, "a drain leaves one replica"
    deployment = docs["Deployment"]["spec"]
    # Two replicas are safe only because one of them acts: the Lease holder.
    assert (
        deployment["replicas"] == 2
        and "--leader-elect" in deployment["template"]["spec"]["containers"][0]["args"]
    )
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"requests", "limits"} <= container["resources"].keys()


def test_rbac_grants_nothing_beyond_what_is_used(deployed: str) -> None:
    role = next(d for d in yaml.safe_load_all(deployed) if d["kind"] == "ClusterRole")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}  # fmt: skip
    assert granted == {
        ("airbyte.watch", "airbytejobwatches", "get"),
        ("airbyte.watch", "airbytejobwatches", "list"),
        ("airbyte.watch", "airbytejobwatches", "watch"),
        ("airbyte.watch", "airbytejobwatches", "patch"),
        ("airbyte.watch", "airbytejobwatches/status", "patch"),
        ("", "events", "create"),
        ("", "events", "get"),  # by name: a retry after a crash reads the outcome it announced
        ("", "secrets", "get"),
        ("", "configmaps", "get"),
    }
    lease_role = next(d for d in yaml.safe_load_all(deployed) if d["kind"] == "Role")
    assert lease_role["metadata"]["namespace"] == "airbyte-watch", "Leases only in the operator's namespace"
    assert lease_role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]


def test_operator_works_with_only_the_deployed_rbac(
    control_plane: ControlPlane, deployed: str, fake_airbyte: RunningFake, tmp_path: Path
) -> None:
    token = control_plane.kubectl("-n", "airbyte-watch", "create", "token", "airbyte-watch").stdout.strip()
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    sa_plane = ControlPlane(folder=control_plane.folder)
    sa_plane.server, sa_plane.kubeconfig = control_plane.server, tmp_path / "kubeconfig"
    sa_plane.kubeconfig.write_text(yaml.safe_dump(config))
    namespace = f"rbac-{int(time.time() * 1000) % 100000}"
    control_plane.kubectl("create", "namespace", namespace)
    create_default_secret(control_plane, namespace, fake_airbyte.url)
    fake_airbyte.fake.add_job(21, [("running", 1), ("succeeded", None)])
    assert (
        apply(control_plane, namespace, watch_manifest("w", {"jobId": 21, "pollInterval": "1s"})).returncode
        == 0
    )
    # With leader election, as deployed: the Lease in the operator's namespace, under its RBAC.
    args = ["--namespace", namespace, "--leader-elect", "--leader-election-namespace=airbyte-watch"]
    operator = OperatorProcess(sa_plane, tmp_path / "operator.log", args)
    operator.start()
    try:
        try:
            wait_for(control_plane, namespace, "w", "condition=Ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\noperator output:\n{operator.output[-4000:]}") from None
        assert reasons(control_plane, namespace, "w") == ["JobRunning", "JobSucceeded"]
        assert get(control_plane, namespace, "w")["status"]["phase"] == "Succeeded"
    finally:
        operator.stop()
    assert "Traceback" not in operator.output


def test_every_rendered_manifest_validates_against_kubernetes_schemas(deployed: str, tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(deployed)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "-k", "1.36.0", str(rendered)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed for resource") == len(list(yaml.safe_load_all(deployed)))


def test_server_side_dry_run_accepts_the_manifests(control_plane: ControlPlane, deployed: str) -> None:
    done = control_plane.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server",
                                 "-f", "-", input=deployed, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "serverside-applied (server dry run)" in done.stdout


def test_deployment_probes_and_metrics_service(deployed: str) -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(deployed)}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-port=8080" in container["args"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == "metrics"


def test_alert_rules_read_metrics_the_operator_exports(control_plane: ControlPlane) -> None:
    rendered = control_plane.kubectl("kustomize", str(ROOT / "deploy" / "monitoring")).stdout
    docs = {d["kind"]: d for d in yaml.safe_load_all(rendered)}
    assert docs["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "metrics"
    exported = {m.name for m in Metrics().registry.collect()}
    exported |= {f"{name}_total" for name in exported}
    rules = [r for g in docs["PrometheusRule"]["spec"]["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {"AirbyteJobWatchFailed", "AirbyteUnreachable"}
    for rule in rules:
        for name in re.findall(r"\b(airbyte_watch_[a-z_]+)", rule["expr"]):
            assert name in exported, f"{rule['alert']} reads {name}, which is not exported"
    failed = next(r for r in rules if r["alert"] == "AirbyteJobWatchFailed")["expr"]
    for reason in ("JobFailed", "JobCancelled", "TimedOut", "JobNotFound", "UnknownJobStatus"):
        assert reason in failed
    unreachable = next(r for r in rules if r["alert"] == "AirbyteUnreachable")
    assert unreachable["for"] == "10m"


def test_sharded_variant_renders_validates_and_matches_replicas(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    rendered = control_plane.kubectl("kustomize", str(ROOT / "deploy" / "sharded")).stdout
    docs = {d["kind"]: d for d in yaml.safe_load_all(rendered)}
    assert "Deployment" not in docs, "one operator kind at a time"
    sts = docs["StatefulSet"]["spec"]
    args = sts["template"]["spec"]["containers"][0]["args"]
    shards = int(next(a for a in args if a.startswith("--shard-count=")).split("=")[1])
    assert sts["replicas"] == 2 * shards and "--leader-elect" in args, "two pods per shard, one acting"
    assert sts["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    path = tmp_path / "sharded.yaml"
    path.write_text(rendered)
    validate = str(Path(sys.executable).parent / "kubernetes-validate")
    done = subprocess.run([validate, "--strict", "-k", "1.36.0", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    dry = control_plane.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-",
                                input=rendered, check=False)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
