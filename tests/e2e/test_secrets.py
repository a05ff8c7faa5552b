"""Credentials never leave the Secret: not in logs (plain or JSON, at DEBUG), status or Events."""

from __future__ import annotations

import json
import secrets
import urllib.request
from pathlib import Path

import pytest

from tests.support.cluster import OperatorProcess, apply, wait_for, watch_manifest
from tests.support.controlplane import ControlPlane, free_port
from tests.support.fake_airbyte import FakeAirbyte, Fault, RunningFake

pytestmark = pytest.mark.cluster

CLIENT_SECRET = "SENTINEL-client-secret-4b1d"
WRONG_SECRET = "SENTINEL-wrong-secret-9e2a"
TOKEN = "SENTINEL-static-token-77c0"
PASSWORD = "SENTINEL-password-31f8"
SENTINELS = (CLIENT_SECRET, WRONG_SECRET, TOKEN, PASSWORD)


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_no_credential_reaches_logs_status_or_events(
    control_plane: ControlPlane, tmp_path: Path, log_format: str
) -> None:
    ns = f"sec-{secrets.token_hex(4)}"
    control_plane.kubectl("create", "namespace", ns)
    oauth = FakeAirbyte("/v1", client_id="cid", client_secret=CLIENT_SECRET)
    static = FakeAirbyte("/v1", static_token=TOKEN, username="user", password=PASSWORD)
    with RunningFake(oauth) as oauth_api, RunningFake(static) as static_api:
        oauth.add_job(41, [("running", 1), ("succeeded", None)])
        oauth.add_job(42, [("running", None)])
        static.add_job(43, [("running", 1), ("failed", None)])
        static.add_job(44, [("succeeded", None)])
        oauth.inject(Fault(500, '{"detail":"boom"}', path_contains="/jobs/41"))
        for name, data in {
            "oauth": {"url": oauth_api.url, "clientId": "cid", "clientSecret": CLIENT_SECRET},
            "wrong": {"url": oauth_api.url, "clientId": "cid", "clientSecret": WRONG_SECRET},
            "token": {"url": static_api.url, "token": TOKEN},
            "basic": {"url": static_api.url, "username": "user", "password": PASSWORD},
        }.items():
            secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}
            control_plane.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(secret))
        for name, job, server in (
            ("a", 41, "oauth"),
            ("b", 42, "wrong"),
            ("c", 43, "token"),
            ("d", 44, "basic"),
        ):
            spec = {"jobId": job, "pollInterval": "1s", "serverRef": {"name": server}}
            assert apply(control_plane, ns, watch_manifest(name, spec)).returncode == 0
        port = free_port()
        args = ["--namespace", ns, "--verbose", f"--log-format={log_format}", f"--metrics-port={port}"]
        operator = OperatorProcess(control_plane, tmp_path / "operator.log", args)
        operator.start()
        try:
            wait_for(control_plane, ns, "a", "condition=Ready")
            wait_for(control_plane, ns, "b", "condition=Stalled")
            wait_for(control_plane, ns, "c", "condition=Stalled")
            wait_for(control_plane, ns, "d", "condition=Ready")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                metrics = response.read().decode()
        finally:
            operator.stop()
    written = {
        "operator output": operator.output,
        "statuses": control_plane.kubectl("-n", ns, "get", "ajw", "-o", "json").stdout,
        "events": control_plane.kubectl("-n", ns, "get", "events", "-o", "json").stdout,
        "metrics": metrics,
    }
    assert "airbyte_watch_polls_total" in metrics
    assert "DEBUG" in operator.output or '"debug"' in operator.output.lower(), "not a debug-level run"
    for where, text in written.items():
        for sentinel in SENTINELS:
            assert sentinel not in text, f"{sentinel} leaked into {where}"
    if log_format == "json":
        lines = [line for line in operator.output.splitlines() if line.strip()]
        assert all(isinstance(json.loads(line), dict) for line in lines)
