"""A real Kubernetes node on this machine: the test control plane plus kube-controller-manager,
kube-scheduler, containerd (runc, cgroupfs) and a kubelet, all on loopback addresses.

What this machine needs and what each setting works around (each found refusing here):
  - kubelet 1.36 refuses cgroup v1 by default, and a v1/v2 hybrid counts as v1: failCgroupV1=false.
  - root lacks CAP_SYS_RESOURCE, so nothing may lower oom_score_adj; the pod sandbox asks for
    -998 and runc's child dies ("can't get final child's PID from pipe: EOF"): containerd's
    restrict_oom_score_adj keeps every score at or above containerd's own.
  - kubelet refuses a loopback node IP ("nodeIP can't be loopback address"), and the dummy
    link type is missing: the node's IP is 10.245.0.1/32 added to lo.
  - no kube-proxy: one iptables DNAT rule sends the pods' kubernetes Service (10.0.0.1:443) to
    the API server, which listens on 10.245.0.1 with a certificate naming that and 10.0.0.1.
  - kopf's in-cluster login connects to https://kubernetes.default.svc, a name: the kubelet's
    clusterDNS is ServiceDNS, which knows that one name (else pods asked this machine's resolver,
    and so did the API server for the node's name: --kubelet-preferred-address-types=InternalIP).
  - no registry: the sandbox image is built from tests/node/pause.c; images are imported.
  - cgroupsPerQOS=false and no node allocatable enforcement: no kubepods cgroup tree to set up.
Every address is on this machine (lo and the pods' bridge), and an iptables FORWARD rule drops
whatever a pod sends elsewhere: nothing leaves it.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.controlplane import (
    ADMIN_TOKEN,
    AUDIT_POLICY,
    ROOT,
    ControlPlane,
    binaries_dir,
    build_lock,
    write_certs,
)

BUILD_SCRIPT = ROOT / "tests" / "node" / "build.sh"
SKIP = 77  # build.sh: this machine cannot have a node
NODE_IP = "10.245.0.1"  # on lo: not loopback to the kubelet, local to everything
SERVICE_IP = "10.0.0.1"  # the kubernetes Service in --service-cluster-ip-range
POD_CIDR = "10.244.0.0/24"
NODE_NAME = "ajw-node"
BRIDGE = "ajwbr0"


class Refused(Exception):
    """This machine will not do something a node needs; the message is what refused."""


def run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise Refused(
            f"`{' '.join(argv)}` failed ({done.returncode}): {(done.stderr or done.stdout).strip()}"
        )
    return done


def build() -> Path:
    """tests/node/build.sh's folder (kubelet, kube-controller-manager, kube-scheduler, pause.tar)."""
    with build_lock():
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800)
    if done.returncode == SKIP:
        refused = [line for line in done.stderr.splitlines() if line.startswith("SKIP: ")]
        raise Refused(refused[-1].removeprefix("SKIP: ") if refused else done.stderr.strip())
    if done.returncode != 0:
        raise AssertionError(f"tests/node/build.sh failed:\n{done.stderr[-6000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _node_certs(folder: Path) -> None:
    """write_certs' files, the serving certificate also naming NODE_IP and SERVICE_IP."""
    write_certs(folder)  # the CA's key is not kept: make a CA and serving pair of our own
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airbyte-watch-node-ca")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.DNSName("kubernetes.default.svc")] + [
        x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", NODE_IP, SERVICE_IP)
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "apiserver.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )  # fmt: skip


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Forwarder:
    """TCP from NODE_IP:port to 127.0.0.1:target, so pods reach a loopback-only server."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((NODE_IP, 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()


class ServiceDNS:
    """UDP DNS on NODE_IP:53 that knows one name, the API server's Service (kopf's in-cluster
    login connects to https://kubernetes.default.svc): everything else is NXDOMAIN, so no pod
    query goes to this machine's own resolver."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((NODE_IP, 53))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            with contextlib.suppress(Exception):
                self.sock.sendto(self.answer(query), peer)

    @staticmethod
    def answer(query: bytes) -> bytes:
        labels, i = [], 12
        while query[i]:
            labels.append(query[i + 1 : i + 1 + query[i]].decode().lower())
            i += 1 + query[i]
        qtype = int.from_bytes(query[i + 1 : i + 3])
        question = query[12 : i + 5]
        name = ".".join(labels)
        known = name == "kubernetes.default.svc" or (
            name.startswith("kubernetes.default.svc.") and name.endswith(".cluster.local")
        )
        if not known:
            return query[:2] + b"\x81\x83" + b"\x00\x01\x00\x00\x00\x00\x00\x00" + question
        records = b""
        if qtype == 1:  # A: 10.0.0.1, by a pointer to the question's name
            records = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x1e\x00\x04" + socket.inet_aton(SERVICE_IP)
        count = b"\x00\x01" if records else b"\x00\x00"
        return query[:2] + b"\x81\x80" + b"\x00\x01" + count + b"\x00\x00\x00\x00" + question + records

    def close(self) -> None:
        self.sock.close()


@dataclass
class NodeCluster(ControlPlane):
    """The control plane on NODE_IP with the ServiceAccount admission plugin, a controller manager,
    a scheduler, containerd and one kubelet. stop() deletes the pods and undoes the host changes."""

    bins: Path = field(default_factory=lambda: Path())
    image: str = ""  # the last image import_image copied in
    _undo: list[list[str]] = field(default_factory=list)
    _dns: ServiceDNS | None = None
    _netns: set[str] = field(default_factory=set)

    def start(self, timeout: float = 120.0) -> None:
        self._host_setup()
        cp_bins = binaries_dir()
        _node_certs(self.folder)
        (self.folder / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin,"system:masters"\n')
        (self.folder / "audit-policy.yaml").write_text(AUDIT_POLICY)
        etcd_port, peer_port, api_port = (_free_port("127.0.0.1") for _ in range(3))
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.server = f"https://{NODE_IP}:{api_port}"
        f = self.folder
        self._spawn("etcd", [
            str(cp_bins / "etcd"), f"--data-dir={f / 'etcd'}", f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}", f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}", "--unsafe-no-fsync=true",
            "--log-level=warn",
        ])  # fmt: skip
        self._spawn("kube-apiserver", [
            str(cp_bins / "kube-apiserver"), f"--etcd-servers={etcd_url}", f"--bind-address={NODE_IP}",
            f"--advertise-address={NODE_IP}", f"--secure-port={api_port}", f"--cert-dir={f}",
            f"--tls-cert-file={f / 'apiserver.crt'}", f"--tls-private-key-file={f / 'apiserver.key'}",
            f"--client-ca-file={f / 'ca.crt'}", f"--token-auth-file={f / 'tokens.csv'}",
            f"--service-account-key-file={f / 'sa.pub'}",
            f"--service-account-signing-key-file={f / 'sa.key'}",
            f"--service-account-issuer={self.server}", f"--service-cluster-ip-range={SERVICE_IP}/24",
            "--authorization-mode=RBAC", "--allow-privileged=true", "--profiling=false",
            # The node's address, not its name: a name would be looked up in this machine's DNS.
            "--kubelet-preferred-address-types=InternalIP",
            f"--audit-policy-file={f / 'audit-policy.yaml'}", f"--audit-log-path={self.audit_log}",
            "--audit-log-mode=blocking", "--v=0",
        ])  # fmt: skip
        self._write_kubeconfig()
        self._wait_ready(timeout)
        # The pods' kubernetes Service, without kube-proxy.
        self._iptables("PREROUTING", "-s", POD_CIDR, "-d", f"{SERVICE_IP}/32", "-p", "tcp", "--dport", "443",
                       "-j", "DNAT", "--to-destination", f"{NODE_IP}:{api_port}")  # fmt: skip
        self._spawn("kube-controller-manager", [
            str(self.bins / "kube-controller-manager"), f"--kubeconfig={self.kubeconfig}",
            f"--root-ca-file={f / 'ca.crt'}", f"--service-account-private-key-file={f / 'sa.key'}",
            "--leader-elect=false", "--secure-port=0", "--controllers=*", "--v=1",
        ])  # fmt: skip
        self._spawn("kube-scheduler", [
            str(self.bins / "kube-scheduler"), f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
            "--bind-address=127.0.0.1", f"--secure-port={_free_port('127.0.0.1')}", "--v=1",
        ])  # fmt: skip
        self._start_containerd()
        self._start_kubelet()
        self._wait_node_ready(timeout)

    # --- the host ---------------------------------------------------------------------------
    def _host_setup(self) -> None:
        have = run("ip", "-o", "addr", "show", "dev", "lo").stdout
        if f" {NODE_IP}/" not in have:
            run("ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo")
            self._undo.append(["ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo"])
        self._undo.append(["ip", "link", "del", BRIDGE])
        # Nothing from a pod leaves this machine: pods reach only the node's own addresses.
        run("iptables", "-I", "FORWARD", "-s", POD_CIDR, "-j", "DROP")
        self._undo.append(["iptables", "-D", "FORWARD", "-s", POD_CIDR, "-j", "DROP"])
        self._netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        try:
            self._dns = ServiceDNS()
        except OSError as exc:
            raise Refused(f"cannot serve DNS on {NODE_IP}:53: {exc}") from None

    def _iptables(self, chain: str, *rule: str) -> None:
        run("iptables", "-t", "nat", "-I", chain, *rule)
        self._undo.append(["iptables", "-t", "nat", "-D", chain, *rule])

    # --- containerd -------------------------------------------------------------------------
    @property
    def containerd_socket(self) -> Path:
        return self.folder / "containerd" / "containerd.sock"

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run(
            "ctr", "-a", str(self.containerd_socket), "-n", "k8s.io", *args, check=check, timeout=timeout
        )

    def _start_containerd(self) -> None:
        c = self.folder / "containerd"
        (self.folder / "cni" / "net.d").mkdir(parents=True)
        (self.folder / "cni" / "net.d" / "10-ajw.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "ajw-node",
            "plugins": [{"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                         "hairpinMode": True,
                         "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                                  "routes": [{"dst": "0.0.0.0/0"}],
                                  "dataDir": str(self.folder / "cni" / "ipam")}}],
        }))  # fmt: skip
        c.mkdir()
        root, state, conf = c / "root", c / "state", self.folder / "cni" / "net.d"
        (c / "config.toml").write_text(f"""\
version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{self.containerd_socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/airbyte-watch-pause:node"
  # root here lacks CAP_SYS_RESOURCE: the sandbox's -998 would kill runc's child.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{conf}"
""")
        self._spawn("containerd", ["containerd", "--config", str(c / "config.toml")])
        deadline = time.monotonic() + 30
        while self.ctr("version", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise Refused(f"containerd did not start:\n{self.log_tail('containerd', 3000)}")
            time.sleep(0.2)
        self.ctr("images", "import", str(self.bins / "pause.tar"))
        tag = self.ctr("images", "ls", "-q").stdout.split()
        pause = next(t for t in tag if "airbyte-watch-pause" in t)
        self.ctr("images", "tag", "--force", pause, "localhost/airbyte-watch-pause:node")

    def import_image(self, name: str) -> None:
        """Copy a podman image into the node's containerd (no registry here)."""
        tar = self.folder / "image.tar"
        run("podman", "save", "--format", "docker-archive", "-o", str(tar), name, timeout=300)
        self.ctr("images", "import", str(tar))
        tar.unlink()
        self.image = name

    # --- kubelet ----------------------------------------------------------------------------
    def _start_kubelet(self) -> None:
        k = self.folder / "kubelet"
        k.mkdir()
        (k / "config.yaml").write_text(json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": NODE_IP, "port": 10250, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": 0,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "cgroupDriver": "cgroupfs", "failSwapOn": False,
            "failCgroupV1": False,  # /sys/fs/cgroup is a v1/v2 hybrid
            "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},  # on NODE_IP only: this machine's own callers
            "clusterDNS": [NODE_IP], "clusterDomain": "cluster.local",  # ServiceDNS
            "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        }))  # fmt: skip
        self._spawn("kubelet", [
            str(self.bins / "kubelet"), f"--config={k / 'config.yaml'}", f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={k / 'root'}", f"--cert-dir={k / 'pki'}", f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}", "--v=1",
        ])  # fmt: skip

    def _wait_node_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise Refused(f"{Path(str(proc.args[0])).name} exited ({proc.returncode}):\n"
                                  f"{self.log_tail(Path(str(proc.args[0])).name)}")  # fmt: skip
            ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
            done = self.kubectl("get", "node", NODE_NAME, "-o", ready, check=False)
            if done.stdout == "True":
                return
            time.sleep(0.5)
        raise Refused(f"node {NODE_NAME} not Ready after {timeout}s:\n{self.log_tail('kubelet')}")

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # --- teardown ---------------------------------------------------------------------------
    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.kubectl("delete", "pods", "--all-namespaces", "--all", "--grace-period=1", "--wait=true",
                         "--timeout=60s", check=False, timeout=90)  # fmt: skip
        if self.containerd_socket.exists():
            with contextlib.suppress(Exception):
                for line in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
                    self.ctr("tasks", "kill", "-s", "SIGKILL", line, check=False)
        # Our processes (kubelet first), then the shims containerd left, then mounts and host changes.
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                with contextlib.suppress(OSError):
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"containerd-shim" in cmdline and str(self.containerd_socket).encode() in cmdline:
                        os.kill(int(pid), 9)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.folder))), reverse=True):
            run("umount", "-l", mount, check=False)
        if os.path.isdir("/run/netns"):  # the pods' network namespaces, if a sandbox outlived us
            for netns in set(os.listdir("/run/netns")) - self._netns:
                if netns.startswith("cni-"):
                    run("ip", "netns", "del", netns, check=False)
        if self._dns is not None:
            self._dns.close()
            self._dns = None
        for undo in reversed(self._undo):
            run(*undo, check=False)
        self._undo.clear()
        super().stop()


@contextlib.contextmanager
def running_node(bins: Path) -> Iterator[NodeCluster]:
    cluster = NodeCluster(bins=bins)
    try:
        cluster.start()
        cluster.apply_crds()
        yield cluster
    finally:
        cluster.stop()
