"""`--namespace` patterns end to end: the watch stream, the start-up list and the resyncs serve the
same namespaces, for a glob with an exclusion, including a namespace created while it runs."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.conftest import create_default_secret
from tests.support.cluster import OperatorProcess, eventually
from tests.support.controlplane import ControlPlane
from tests.support.fake_airbyte import RunningFake, Step

pytestmark = pytest.mark.cluster


def add_watch(plane: ControlPlane, fake: RunningFake, namespace: str, job_id: int, seconds: float) -> None:
    plane.kubectl("create", "namespace", namespace)
    create_default_secret(plane, namespace, fake.url)
    fake.fake.add_job(job_id, [Step("running", seconds=seconds), Step("succeeded")])
    watch = {"apiVersion": "airbyte.watch/v1alpha1", "kind": "AirbyteJobWatch", "metadata": {"name": "w"},
             "spec": {"jobId": job_id, "pollInterval": "1s"}}  # fmt: skip
    plane.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(watch))


def status(plane: ControlPlane, namespace: str) -> dict:
    found = json.loads(plane.kubectl("-n", namespace, "get", "ajw", "w", "-o", "json").stdout)
    return found.get("status", {})


def test_a_glob_with_an_exclusion_serves_what_it_includes_at_start_in_resyncs_and_later(
    control_plane: ControlPlane, fake_airbyte: RunningFake, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    served, excluded, later = f"pat-a-{tag}", f"pat-skip-{tag}", f"pat-b-{tag}"
    # Jobs that outlast several resyncs (one a second): a resync that served other namespaces
    # than the pattern would forget the watch, and it would never learn its outcome.
    add_watch(control_plane, fake_airbyte, served, 4101, seconds=6)
    add_watch(control_plane, fake_airbyte, excluded, 4102, seconds=1)
    operator = OperatorProcess(
        control_plane,
        tmp_path / "operator.log",
        ["--namespace", f"pat-*-{tag}, !pat-skip-{tag}", "--resync-period=1", "--startup-spread=0.2"],
    )
    operator.start()
    try:
        eventually(lambda: status(control_plane, served).get("phase") == "Running", timeout=15)
        add_watch(control_plane, fake_airbyte, later, 4103, seconds=3)  # the stream tells of it
        eventually(lambda: status(control_plane, served).get("phase") == "Succeeded", timeout=30)
        eventually(lambda: status(control_plane, later).get("phase") == "Succeeded", timeout=30)
        assert "phase" not in status(control_plane, excluded)  # its job ended long ago: never read
        log = (tmp_path / "operator.log").read_text()
        assert "found by a resync" not in log and "Resync of the watches failed" not in log
    finally:
        operator.stop()
