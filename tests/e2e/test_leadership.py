"""Two operator processes, one Lease: the standby takes over when the leader is killed or frozen,
a frozen leader that wakes does not act, and trigger watches in flight start one job and post
one final Event each."""

from __future__ import annotations

import secrets
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import create_default_secret
from tests.e2e.test_endpoints import fetch, sample
from tests.support.cluster import OperatorProcess, apply, eventually, reasons, wait_for, watch_manifest
from tests.support.controlplane import ControlPlane, free_port
from tests.support.fake_airbyte import RunningFake, Step

pytestmark = pytest.mark.cluster

LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4, 2.5, 1.0
JOB_SECONDS = 6  # each triggered job runs this long: it is in flight across the takeover
TAKEOVERS: dict[str, float] = {}  # measured, for the report


class Replica:
    """One operator process with its own service account (so the audit log tells them apart)."""

    def __init__(
        self, plane: ControlPlane, ns: str, name: str, folder: Path, extra: tuple[str, ...] = ()
    ) -> None:
        self.user = f"system:serviceaccount:{ns}:{name}"
        plane.kubectl("-n", ns, "create", "serviceaccount", name)
        plane.kubectl("create", "clusterrolebinding", f"{ns}-{name}", "--clusterrole=cluster-admin",
                      f"--serviceaccount={ns}:{name}")  # fmt: skip
        config = yaml.safe_load(plane.kubeconfig.read_text())
        token = plane.kubectl("-n", ns, "create", "token", name).stdout.strip()
        config["users"] = [{"name": "admin", "user": {"token": token}}]
        own = ControlPlane(folder=plane.folder)
        own.server, own.kubeconfig = plane.server, folder / f"{name}.kubeconfig"
        own.kubeconfig.write_text(yaml.safe_dump(config))
        self.port = free_port()
        args = ["--namespace", ns, "--startup-spread=0.2", f"--metrics-port={self.port}", "--leader-elect",
                f"--leader-election-namespace={ns}", f"--lease-duration={LEASE_DURATION}",
                f"--renew-deadline={RENEW_DEADLINE}", f"--retry-period={RETRY_PERIOD}", *extra]  # fmt: skip
        self.process = OperatorProcess(own, folder / f"{name}.log", args)

    def role(self) -> str:
        return fetch(self.port, "/readyz")[1]

    def leads(self) -> bool:
        return self.role().startswith("ready: leader")

    def signal(self, sig: signal.Signals) -> None:
        assert self.process.proc is not None
        self.process.proc.send_signal(sig)


@pytest.fixture
def replicas(
    control_plane: ControlPlane, fake_airbyte: RunningFake, tmp_path: Path
) -> Iterator[tuple[str, Replica, Replica]]:
    ns = f"lead-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", ns)
    create_default_secret(control_plane, ns, fake_airbyte.url)
    a, b = Replica(control_plane, ns, "op-a", tmp_path), Replica(control_plane, ns, "op-b", tmp_path)
    a.process.start()
    eventually(a.leads, timeout=30)
    b.process.start()
    eventually(lambda: b.role().startswith("ready: standby"), timeout=30)
    yield ns, a, b
    for replica in (a, b):
        if replica.process.proc is not None and replica.process.proc.poll() is None:
            replica.signal(signal.SIGCONT)
        replica.process.stop()


def trigger_watches(plane: ControlPlane, fake: RunningFake, ns: str, names: list[str]) -> None:
    for name in names:
        connection = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ns}/{name}"))
        fake.fake.connection_scripts[connection] = [Step("running", seconds=JOB_SECONDS), Step("succeeded")]
        spec = {"connectionId": connection, "pollInterval": "1s"}
        assert apply(plane, ns, watch_manifest(name, spec)).returncode == 0


def writes_by(plane: ControlPlane, ns: str, user: str) -> int:
    """Writes of watches, their status and Events by `user`, as the API server's audit log saw them."""
    return sum(
        1 for r in plane.audit(ns) if r["user"]["username"] == user and r.get("stage") == "ResponseComplete"
    )


def takeover(b: Replica, since: float) -> float:
    eventually(b.leads, timeout=LEASE_DURATION * 3, interval=0.05)
    return time.monotonic() - since


def _running_then_succeeded(plane: ControlPlane, ns: str, name: str) -> bool:
    said = reasons(plane, ns, name)
    assert said == ["JobRunning", "JobSucceeded"], f"{name}: Events {said}"
    return True


def assert_one_job_and_one_final_event_each(
    plane: ControlPlane, fake: RunningFake, ns: str, names: list[str]
) -> None:
    for name in names:
        wait_for(plane, ns, name, "condition=Ready", timeout=JOB_SECONDS * 4)
    for name in names:
        connection = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ns}/{name}"))
        started = [j for j in fake.fake.jobs.values() if j.connection_id == connection]
        assert len(started) == 1, f"{name}: {len(started)} POST /jobs"
        eventually(lambda n=name: _running_then_succeeded(plane, ns, n))
    posts = sum(1 for r in fake.fake.requests if r.method == "POST" and r.path.endswith("/jobs"))
    assert posts == len(names)


def test_standby_takes_over_when_the_leader_is_killed(
    control_plane: ControlPlane, fake_airbyte: RunningFake, replicas: tuple[str, Replica, Replica]
) -> None:
    ns, a, b = replicas
    assert sample(fetch(b.port, "/metrics")[1], "airbyte_watch_leader") == 0
    assert sample(fetch(a.port, "/metrics")[1], "airbyte_watch_leader") == 1
    before = [f"before-{i}" for i in range(3)]
    trigger_watches(control_plane, fake_airbyte, ns, before)
    for name in before:
        wait_for(control_plane, ns, name, "jsonpath={.status.phase}=Running")
    standby = fetch(b.port, "/metrics")[1]
    assert "airbyte_watch_polls_total{" not in standby, "the standby polls nothing"
    assert sample(standby, "airbyte_watch_watches", phase="Running") == 0, "the standby lists nothing"
    assert writes_by(control_plane, ns, b.user) == 0, "the standby writes nothing"

    a.process.kill()
    killed = time.monotonic()
    during = [f"during-{i}" for i in range(3)]  # created while nobody leads
    trigger_watches(control_plane, fake_airbyte, ns, during)
    TAKEOVERS["kill"] = took = takeover(b, killed)
    assert took < LEASE_DURATION + 1.2 * RETRY_PERIOD + 1.0, f"took {took:.1f}s"
    assert sample(fetch(b.port, "/metrics")[1], "airbyte_watch_leader") == 1
    assert_one_job_and_one_final_event_each(control_plane, fake_airbyte, ns, before + during)
    print(f"\ntakeover after SIGKILL: {took:.2f}s; 6 watches, 6 POST /jobs, 6 JobSucceeded Events")


def test_a_frozen_leader_is_replaced_and_does_not_act_when_it_wakes(
    control_plane: ControlPlane, fake_airbyte: RunningFake, replicas: tuple[str, Replica, Replica]
) -> None:
    ns, a, b = replicas
    before = [f"before-{i}" for i in range(3)]
    trigger_watches(control_plane, fake_airbyte, ns, before)
    for name in before:
        wait_for(control_plane, ns, name, "jsonpath={.status.phase}=Running")

    a.signal(signal.SIGSTOP)
    frozen = time.monotonic()
    during = [f"during-{i}" for i in range(3)]
    trigger_watches(control_plane, fake_airbyte, ns, during)
    TAKEOVERS["freeze"] = took = takeover(b, frozen)
    assert took < LEASE_DURATION + 1.2 * RETRY_PERIOD + 1.0, f"took {took:.1f}s"
    # Let the jobs A started finish while it sleeps: when it wakes its polls are overdue and
    # would post JobSucceeded and patch status, but it is past its renew deadline.
    time.sleep(JOB_SECONDS)
    a_writes = writes_by(control_plane, ns, a.user)
    a.signal(signal.SIGCONT)
    assert a.process.proc is not None
    assert a.process.proc.wait(timeout=20) == 1, "a leader that lost its Lease exits"
    assert writes_by(control_plane, ns, a.user) == a_writes, "the old leader wrote after waking"
    assert "Lost leadership" in a.process.output
    # Which notices first on waking is a race: its lease keeper (stops the process) or an
    # overdue poll whose write the fence refuses ("does not hold Lease"); either way, no write.
    fenced = "does not hold Lease" in a.process.output
    assert_one_job_and_one_final_event_each(control_plane, fake_airbyte, ns, before + during)
    print(f"\ntakeover after SIGSTOP: {took:.2f}s; old leader exited on SIGCONT with 0 writes "
          f"(fence refused a write: {fenced}); 6 watches, 6 POST /jobs, 6 JobSucceeded Events")  # fmt: skip


def test_a_leader_stopped_cleanly_hands_over_at_once(replicas: tuple[str, Replica, Replica]) -> None:
    _, a, b = replicas
    stopped = time.monotonic()
    a.process.stop()  # SIGTERM, as in a rolling update: the leader gives the Lease up
    assert a.process.proc is not None and a.process.proc.returncode == 0
    TAKEOVERS["release"] = took = takeover(b, stopped)
    assert took < RENEW_DEADLINE, f"took {took:.1f}s: the Lease was not released"
    print(f"\ntakeover after SIGTERM (Lease released): {took:.2f}s")


def test_one_lease_per_shard(control_plane: ControlPlane, fake_airbyte: RunningFake, tmp_path: Path) -> None:
    ns = f"shard-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", ns)
    shards = [Replica(control_plane, ns, f"op-{i}", tmp_path, ("--shard-count=2", f"--shard-index={i}"))
              for i in range(2)]  # fmt: skip
    try:
        for replica in shards:
            replica.process.start()
        for replica in shards:
            eventually(replica.leads, timeout=30)
        holders = {
            name: control_plane.kubectl(
                "-n", ns, "get", "lease", name, "-o", "jsonpath={.spec.holderIdentity}"
            ).stdout
            for name in ("airbyte-watch-shard-0-of-2", "airbyte-watch-shard-1-of-2")
        }
        assert all(holders.values()) and len(set(holders.values())) == 2, holders
        assert "shard-0-of-2" in shards[0].role() and "shard-1-of-2" in shards[1].role()
    finally:
        for replica in shards:
            replica.process.stop()
