"""The operator's metrics and probes, read as Prometheus and the kubelet would."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import create_default_secret
from tests.support.cluster import OperatorProcess, apply, eventually, wait_for, watch_manifest
from tests.support.controlplane import ControlPlane, free_port, running
from tests.support.fake_airbyte import Fault, RunningFake

pytestmark = pytest.mark.cluster


def fetch(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def sample(metrics: str, name: str, **labels: str) -> float:
    """One sample's value from the Prometheus text format."""
    for line in metrics.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{labels}")


def test_metrics_and_probes(
    control_plane: ControlPlane, namespace: str, fake_airbyte: RunningFake, tmp_path: Path
) -> None:
    create_default_secret(control_plane, namespace, fake_airbyte.url)
    fake_airbyte.fake.add_job(518273, [("running", 2), ("succeeded", None)], rows=45, bytes_=1234)
    fake_airbyte.fake.add_job(529384, [("running", 1), ("failed", None)])
    fake_airbyte.fake.inject(Fault(500, "{}", path_contains="/jobs/518273"))
    for name, job in (("ok", 518273), ("bad", 529384)):
        assert (
            apply(
                control_plane, namespace, watch_manifest(name, {"jobId": job, "pollInterval": "1s"})
            ).returncode
            == 0
        )
    port = free_port()
    operator = OperatorProcess(
        control_plane, tmp_path / "op.log", ["-n", namespace, f"--metrics-port={port}"]
    )
    operator.start()
    try:
        eventually(lambda: fetch(port, "/readyz")[0] == 200, timeout=30)
        assert fetch(port, "/healthz")[0] == 200
        wait_for(control_plane, namespace, "ok", "condition=Ready")
        wait_for(control_plane, namespace, "bad", "condition=Stalled")
        status, metrics = fetch(port, "/metrics")
    finally:
        operator.stop()
    assert status == 200
    host = fake_airbyte.url.split("/")[2]
    assert sample(metrics, "airbyte_watch_watches", phase="Succeeded") == 1
    assert sample(metrics, "airbyte_watch_watches", phase="Failed") == 1
    assert sample(metrics, "airbyte_watch_polls_total", server=host, outcome="succeeded") == 1
    assert sample(metrics, "airbyte_watch_polls_total", server=host, outcome="running") >= 3
    assert sample(metrics, "airbyte_watch_airbyte_api_errors_total", server=host, kind="ServerError") == 1
    assert sample(metrics, "airbyte_watch_poll_duration_seconds_count", server=host) >= 5
    assert sample(metrics, "airbyte_watch_events_total", type="Warning", reason="JobFailed") == 1
    assert sample(metrics, "airbyte_watch_status_patches_total") >= 4
    assert sample(metrics, "airbyte_watch_token_fetches_total", server=host) == 1
    assert sample(metrics, "airbyte_watch_rows_synced_total", server=host) == 45
    assert sample(metrics, "airbyte_watch_bytes_synced_total", server=host) == 1234
    # Labels are bounded: no job ids, watch names or namespaces.
    assert "518273" not in metrics and "529384" not in metrics
    assert namespace not in metrics


def test_not_ready_until_the_watches_are_listed(tmp_path: Path) -> None:
    with running(with_crds=False) as plane:  # no CRD yet: the operator cannot list watches
        port = free_port()
        operator = OperatorProcess(plane, tmp_path / "op.log", [f"--metrics-port={port}"])
        operator.start()
        try:
            eventually(lambda: fetch(port, "/healthz")[0] == 200, timeout=30)
            assert fetch(port, "/readyz")[0] == 503
            plane.apply_crds()
            eventually(lambda: fetch(port, "/readyz")[0] == 200, timeout=30)
        finally:
            operator.stop()
        assert "Waiting for the airbyte.watch/v1alpha1 CRD" in operator.output
