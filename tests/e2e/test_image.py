"""The container image, built from the Dockerfile and run the way the Helm chart runs it.

tests/image/build.sh builds the image with podman on a Debian base made by mmdebstrap (no
registry, no daemon). The container runs as the chart's pod does: user 65532, a read-only root
filesystem with nothing writable mounted, every capability dropped, no privilege escalation,
the chart's default arguments (list mode, JSON logs, leader election, metrics), and a
kubeconfig for the test control plane in place of the service account. Where this machine
cannot build or run images, the test is skipped with what refused.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import CLIENT_SECRET, create_default_secret
from tests.support.cluster import apply, condition, eventually, get, wait_for, watch_manifest
from tests.support.controlplane import ADMIN_TOKEN, ROOT, ControlPlane, build_lock, free_port
from tests.support.fake_airbyte import RunningFake, Step

pytestmark = pytest.mark.cluster

BUILD = ROOT / "tests" / "image" / "build.sh"
SKIP = 77  # build.sh: this machine cannot build or run images


def _build(*args: str) -> list[str]:
    with build_lock():  # test_real_node builds it too, maybe at once on another pytest-xdist worker
        done = subprocess.run(["bash", str(BUILD), *args], capture_output=True, text=True, timeout=1200)
    if done.returncode == SKIP:
        refused = [line for line in done.stderr.splitlines() if line.startswith("SKIP: ")]
        pytest.skip(refused[-1].removeprefix("SKIP: ") if refused else done.stderr.strip())
    if done.returncode != 0:
        raise AssertionError(f"tests/image/build.sh {' '.join(args)} failed:\n{done.stderr[-6000:]}")
    for line in done.stderr.splitlines():  # what was installed or made, and how long it took
        if line.startswith(("installing", "installed", "making", "base made", "building", "image built")):
            print(line)
    return done.stdout.split()


@pytest.fixture(scope="module")
def image() -> tuple[str, list[str]]:
    """The image's name, and the `podman run` flags that work on this machine."""
    started = time.monotonic()
    name = _build()[-1]
    print(f"image {name} ready in {time.monotonic() - started:.0f} s")
    return name, _build("--run-flags")


def _kubeconfig(plane: ControlPlane, path: Path) -> Path:
    """The control plane's kubeconfig, readable by user 65532, naming the CA by its path in the
    container (mounted beside it). With the CA inline the official client (kopf's
    login_via_client) writes it to a temporary file, and the chart's read-only root has none; a
    pod logs in with its service account and never needs one."""
    ca = path.parent / "ca.crt"
    ca.write_bytes((plane.folder / "ca.crt").read_bytes())
    ca.chmod(0o644)
    config = yaml.safe_load(plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["certificate-authority"] = "/etc/airbyte-watch/ca.crt"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    return path


def _fetch(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"airbyte-watch-test-{secrets.token_hex(4)}"
    try:
        yield name
    finally:
        _podman("rm", "--force", "--time=5", name)


def test_the_image_runs_as_the_chart_runs_it(
    image: tuple[str, list[str]],
    control_plane: ControlPlane,
    namespace: str,
    fake_airbyte: RunningFake,
    container_name: str,
    tmp_path: Path,
) -> None:
    name, flags = image
    kubeconfig = _kubeconfig(control_plane, tmp_path / "kubeconfig")
    port = free_port()
    create_default_secret(control_plane, namespace, fake_airbyte.url)
    # List mode (the chart's default) reads jobs by time: running for 3 s, then succeeded.
    fake_airbyte.fake.add_job(4711, [Step("running", seconds=3), Step("succeeded")], rows=45, bytes_=1234)

    started = _podman(
        "run", "--detach", f"--name={container_name}", *flags, "--network=host",
        # The chart's securityContexts: runAsUser/runAsGroup 65532, readOnlyRootFilesystem (and
        # no volume to write to), capabilities drop ALL, allowPrivilegeEscalation false.
        "--user=65532:65532", "--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        f"--volume={kubeconfig}:/etc/airbyte-watch/kubeconfig:ro",
        f"--volume={kubeconfig.parent / 'ca.crt'}:/etc/airbyte-watch/ca.crt:ro",
        "--env=KUBECONFIG=/etc/airbyte-watch/kubeconfig",
        f"--env=POD_NAMESPACE={namespace}", "--env=POD_NAME=airbyte-watch-0",
        name,
        # The chart's default arguments, with one namespace in watchNamespaces.
        "run", f"--namespace={namespace}", "--log-format=json", f"--metrics-port={port}", "--leader-elect",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr

    def logs() -> str:
        done = _podman("logs", container_name)
        return done.stdout + done.stderr

    try:
        try:
            eventually(lambda: _fetch(port, "/readyz")[0] == 200, timeout=60, interval=0.5)
        except AssertionError:
            state = _podman("inspect", "--format={{.State.Status}} {{.State.ExitCode}}", container_name)
            raise AssertionError(f"not ready ({state.stdout.strip()}):\n{logs()[-4000:]}") from None
        assert _fetch(port, "/healthz")[0] == 200

        done = apply(control_plane, namespace, watch_manifest("sync", {"jobId": 4711, "pollInterval": "1s"}))
        assert done.returncode == 0, done.stderr
        try:
            wait_for(control_plane, namespace, "sync", "condition=Ready", timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- operator:\n{logs()[-4000:]}") from None
        obj = get(control_plane, namespace, "sync")
        assert obj["status"]["phase"] == "Succeeded"
        assert condition(obj, "Ready")["reason"] == "JobSucceeded"
        assert (obj["status"]["rowsSynced"], obj["status"]["bytesSynced"]) == (45, 1234)

        status, metrics = _fetch(port, "/metrics")
        assert status == 200
        assert "airbyte_watch_rows_synced_total" in metrics
        assert 'airbyte_watch_watches{phase="Succeeded"} 1.0' in metrics

        lease = json.loads(control_plane.kubectl("-n", namespace, "get", "lease", "-o", "json").stdout)
        holders = [item["spec"].get("holderIdentity", "") for item in lease["items"]]
        assert any(h.startswith("airbyte-watch-0_") for h in holders), holders
    finally:
        stopped = _podman("stop", "--time=15", container_name)
        exit_code = _podman("inspect", "--format={{.State.ExitCode}}", container_name).stdout.strip()
        output = logs()

    assert stopped.returncode == 0, stopped.stderr
    assert exit_code == "0", f"exit code {exit_code} after SIGTERM:\n{output[-4000:]}"
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "the operator logged nothing"
    not_json = [line for line in lines if not line.startswith("{")]
    assert not not_json, f"log lines that are not JSON: {not_json[:5]}"
    # No credential in the logs: the Secret's client secret, the Airbyte tokens, the kube token.
    tokens = list(fake_airbyte.fake.tokens)
    assert tokens, "the operator never fetched an Airbyte token"
    for secret in [CLIENT_SECRET, ADMIN_TOKEN, *tokens]:
        assert secret not in output, "a credential is in the operator's log"
