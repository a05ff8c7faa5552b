"""`airbyte-watch run` stops on SIGTERM at once, even while it still waits for the API server
(unreachable, or the CRD not yet applied): the kubelet's grace period must not run out."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.cluster import airbyte_watch_command
from tests.support.controlplane import free_port

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
users:
- name: someone
  user: {{token: not-a-real-token}}
contexts:
- name: here
  context: {{cluster: nowhere, user: someone}}
current-context: here
"""


def test_sigterm_while_the_api_server_is_unreachable_stops_the_process_at_once(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG.format(port=free_port()))  # nothing listens there
    env = {**os.environ, "KUBECONFIG": str(config), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "operator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*airbyte_watch_command(), "run"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        time.sleep(3)  # imported, logged in, retrying its first call
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = proc.wait(timeout=20)
        assert time.monotonic() - started < 5, log.read_text()
        assert code == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
