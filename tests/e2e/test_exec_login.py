"""Login through a kubeconfig whose user is an exec plugin (as EKS, GKE and AKS kubeconfigs are),
against the real kube-apiserver: the operator runs the plugin, runs it again once the credential
it printed has expired, and its watches keep moving on the new credential.

The plugin prints ADMIN_TOKEN (user "admin") until its first credential has expired, and
EXEC_TOKEN (user "exec-user") after. The API server accepts both all along, so no request ever
gets a 401: a write made as "exec-user" can only come from a login made because the expiration
passed. The audit log names the user of every write.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import create_default_secret
from tests.support.cluster import OperatorProcess, airbyte_watch_command, apply, get, wait_for, watch_manifest
from tests.support.controlplane import ADMIN_TOKEN, EXEC_TOKEN, ControlPlane
from tests.support.fake_airbyte import RunningFake

pytestmark = pytest.mark.cluster

LIFETIME = 5  # seconds: each credential's expirationTimestamp is this far ahead
RUNNING_POLLS = 12  # at one poll a second the job ends well after the first credential expired

PLUGIN = """\
import datetime, json, pathlib, sys, time
runs = pathlib.Path(sys.argv[1])
lines = runs.read_text().splitlines() if runs.exists() else []
now = time.time()
renewed = bool(lines) and now >= float(lines[0].split()[1])  # the first credential has expired
expiry = int(now) + 1 + {lifetime}  # whole seconds, as RFC 3339 without fractions says
with runs.open("a") as f:
    f.write(f"{{now}} {{expiry}} {{'renewed' if renewed else 'first'}}\\n")
at = datetime.datetime.fromtimestamp(expiry, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({{
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {{"token": {renewed_token!r} if renewed else {first_token!r}, "expirationTimestamp": at}},
}}))
"""


class ExecLoginOperator(OperatorProcess):
    """`airbyte-watch run` with $KUBECONFIG at the exec-plugin kubeconfig, not the plane's."""

    def __init__(self, plane: ControlPlane, log: Path, args: list[str], kubeconfig: Path) -> None:
        super().__init__(plane, log, args)
        self.kubeconfig = kubeconfig

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        env.pop("KUBERNETES_SERVICE_HOST", None)  # outside a pod, even when CI runs in one
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*airbyte_watch_command(), "run", *self.args],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip


def exec_kubeconfig(plane: ControlPlane, folder: Path) -> tuple[Path, Path]:
    """A kubeconfig for the plane whose user runs PLUGIN; and the file the plugin logs runs to."""
    script, runs, kubeconfig = folder / "plugin.py", folder / "runs", folder / "kubeconfig"
    script.write_text(PLUGIN.format(lifetime=LIFETIME, first_token=ADMIN_TOKEN, renewed_token=EXEC_TOKEN))
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {"server": plane.server, "certificate-authority": str(plane.folder / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": "plugin",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": sys.executable,
                        "args": [str(script), str(runs)],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "plugin"}}],
        "current-context": "test",
    }
    kubeconfig.write_text(yaml.safe_dump(config))
    return kubeconfig, runs


def writes(plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    return [r for r in plane.audit(namespace) if r.get("stage") == "ResponseComplete"]


def when(record: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(record["stageTimestamp"].replace("Z", "+00:00")).timestamp()


def test_an_exec_plugin_login_is_renewed_after_it_expires_and_watches_keep_moving(
    control_plane: ControlPlane, namespace: str, fake_airbyte: RunningFake, tmp_path: Path
) -> None:
    create_default_secret(control_plane, namespace, fake_airbyte.url)
    fake_airbyte.fake.add_job(71, [("running", RUNNING_POLLS), ("succeeded", None)])
    kubeconfig, runs = exec_kubeconfig(control_plane, tmp_path)
    operator = ExecLoginOperator(
        control_plane, tmp_path / "operator.log", ["--namespace", namespace], kubeconfig
    )
    operator.start()
    try:
        spec = {"jobId": 71, "pollInterval": "1s"}
        assert apply(control_plane, namespace, watch_manifest("sync", spec)).returncode == 0
        try:
            wait_for(control_plane, namespace, "sync", "condition=Ready", timeout=90)
        except AssertionError as exc:
            tail = "\n".join(operator.output.splitlines()[-40:])
            ran = runs.read_text() if runs.exists() else "(never ran)"
            raise AssertionError(f"{exc}\nplugin runs:\n{ran}\noperator output (tail):\n{tail}") from None
    finally:
        operator.stop()
    assert get(control_plane, namespace, "sync")["status"]["phase"] == "Succeeded"

    lines = [line.split() for line in runs.read_text().splitlines()]
    first_expiry = float(lines[0][1])
    assert len(lines) > 1, "the plugin ran once: no login after the first credential expired"
    renewed = [float(at) for at, _, which in lines if which == "renewed"]
    assert renewed, f"no login after the first credential expired at {first_expiry}: {lines}"

    records = writes(control_plane, namespace)
    users = {r["user"]["username"] for r in records}
    assert users <= {"admin", "exec-user"}, users
    ready = [
        r for r in records
        if r["verb"] == "patch" and r["objectRef"].get("subresource") == "status"
        and r["objectRef"].get("name") == "sync"
    ][-1]  # fmt: skip
    # The last status write (Ready) came after the first credential expired, and was made with the
    # credential of a later plugin run: the operator logged in again and kept working.
    assert when(ready) > first_expiry
    assert ready["user"]["username"] == "exec-user", [(r["verb"], r["user"]["username"]) for r in records]
    assert ready["responseStatus"]["code"] == 200
