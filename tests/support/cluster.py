"""Driving the cluster as a user would: the operator process, kubectl, and reading results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.controlplane import ControlPlane


def airbyte_watch_command() -> list[str]:
    script = Path(sys.executable).parent / "airbyte-watch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "airbyte_watch.cli"]


class OperatorProcess:
    """`airbyte-watch run` as its own process, its output in a file.

    Most tests script the fake's jobs by how often they are read ("running for 2 polls"), which
    only per-job reads advance: those run `--poll-mode get` unless they pass a mode. List mode
    (the default of the command) is tested where jobs move by time: tests/e2e/test_list_mode.py,
    the chaos test and the demo.
    """

    def __init__(self, plane: ControlPlane, log: Path, args: list[str]) -> None:
        if not any(a.startswith("--poll-mode") for a in args):
            args = [*args, "--poll-mode=get"]
        self.plane, self.log_path, self.args = plane, log, args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.plane.kubeconfig), "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*airbyte_watch_command(), "run", *self.args],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL: no goodbye, as when a node dies."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def apply(plane: ControlPlane, namespace: str, manifest: str) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("-n", namespace, "apply", "-f", "-", input=manifest, check=False)


def watch_manifest(name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": "airbyte.watch/v1alpha1", "kind": "AirbyteJobWatch",
         "metadata": {"name": name}, "spec": spec}
    )  # fmt: skip


def get(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    out = plane.kubectl("-n", namespace, "get", "airbytejobwatch", name, "-o", "json").stdout
    return json.loads(out)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def events(plane: ControlPlane, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
    """Events about our watches in `namespace`, oldest first."""
    args = ["-n", namespace, "get", "events", "-o", "json"]
    if name:
        args.append(f"--field-selector=involvedObject.name={name}")
    items = json.loads(plane.kubectl(*args).stdout)["items"]
    return sorted(
        items,
        key=lambda e: (
            e.get("firstTimestamp") or "",
            e["metadata"]["creationTimestamp"],
            int(e["metadata"]["resourceVersion"]),
        ),
    )


def reasons(plane: ControlPlane, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in events(plane, namespace, name)]


def wait_for(plane: ControlPlane, namespace: str, name: str, condition_: str, timeout: int = 30) -> None:
    """`kubectl wait`, failing the test with the object and the operator's story if it times out."""
    done = plane.kubectl(
        "-n",
        namespace,
        "wait",
        f"--for={condition_}",
        f"airbytejobwatch/{name}",
        f"--timeout={timeout}s",
        check=False,
        timeout=timeout + 10,
    )
    if done.returncode != 0:
        obj = plane.kubectl("-n", namespace, "get", "airbytejobwatch", name, "-o", "yaml", check=False)
        raise AssertionError(f"{condition_} not met for {name}: {done.stderr}\n{obj.stdout}")


def eventually(check: Callable[[], Any], timeout: float = 20, interval: float = 0.2) -> Any:
    """Retry `check` until it returns a truthy value or stops raising AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        time.sleep(interval)


def status_patches(plane: ControlPlane, namespace: str, name: str) -> int:
    """PATCHes of the watch's status subresource, as the API server's audit log saw them."""
    return sum(
        1 for r in plane.audit(namespace)
        if r["verb"] == "patch" and r["objectRef"].get("name") == name
        and r["objectRef"].get("subresource") == "status" and r.get("stage") == "ResponseComplete"
    )  # fmt: skip
