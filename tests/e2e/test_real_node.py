"""The chart on a real node: helm installs it into a cluster whose kubelet runs the image in
containerd, two operator pods run with one holding the Lease, a watch reaches Succeeded, and when
the leader's pod is deleted the other takes over and the next watch succeeds too.

tests/node/build.sh builds the kubelet, controller manager, scheduler and sandbox image;
tests/support/node.py says what each of the node's settings works around on this machine.
Where a piece refuses (no root, a package that will not install, containerd or the kubelet
exiting, the node never Ready), the test is skipped with what refused.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import CLIENT_ID, CLIENT_SECRET, create_default_secret
from tests.support import node
from tests.support.cluster import apply, eventually, reasons, wait_for, watch_manifest
from tests.support.controlplane import ROOT, build_lock
from tests.support.fake_airbyte import FakeAirbyte, RunningFake, Step
from tests.support.helm import CHART, Helm

pytestmark = pytest.mark.cluster

IMAGE_BUILD = ROOT / "tests" / "image" / "build.sh"
RELEASE, NAMESPACE, TEAM = "aw", "aw-node", "team-node"
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"


def _image() -> str:
    with build_lock():  # test_image builds it too, maybe at once on another pytest-xdist worker
        done = subprocess.run(["bash", str(IMAGE_BUILD)], capture_output=True, text=True, timeout=1200)
    if done.returncode == node.SKIP:
        refused = [line for line in done.stderr.splitlines() if line.startswith("SKIP: ")]
        pytest.skip(refused[-1].removeprefix("SKIP: ") if refused else done.stderr.strip())
    if done.returncode != 0:
        raise AssertionError(f"tests/image/build.sh failed:\n{done.stderr[-6000:]}")
    return done.stdout.split()[-1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[node.NodeCluster]:
    image = _image()
    try:
        bins = node.build()
    except node.Refused as exc:
        pytest.skip(f"tests/node/build.sh: {exc}")
    started = time.monotonic()
    plane = node.NodeCluster(bins=bins)
    try:
        plane.start()
        plane.apply_crds()
        plane.import_image(image)
    except node.Refused as exc:
        plane.stop()
        pytest.skip(f"no node on this machine: {exc}")
    except BaseException:
        plane.stop()
        raise
    print(f"node {node.NODE_NAME} Ready with {image} imported in {time.monotonic() - started:.0f} s")
    try:
        yield plane
    finally:
        plane.stop()


def _pods(plane: node.NodeCluster) -> list[dict[str, Any]]:
    out = plane.kubectl("-n", NAMESPACE, "get", "pods", "-l", SELECTOR, "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def _holder(plane: node.NodeCluster) -> str:
    """The pod whose operator holds the Lease (identities are <pod name>_<random>)."""
    done = plane.kubectl("-n", NAMESPACE, "get", "lease", "airbyte-watch", "-o", "json", check=False)
    if done.returncode != 0:
        return ""
    return str(json.loads(done.stdout)["spec"].get("holderIdentity") or "").rpartition("_")[0]


def _story(plane: node.NodeCluster) -> str:
    parts = [plane.kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", check=False).stdout]
    for pod in _pods(plane):
        name = pod["metadata"]["name"]
        logs = plane.kubectl("-n", NAMESPACE, "logs", name, "--tail=40", check=False)
        parts.append(f"--- {name}\n{logs.stdout}{logs.stderr}")
    parts.append(plane.kubectl("-n", NAMESPACE, "get", "lease", "-o", "yaml", check=False).stdout)
    parts.append("--- kubelet\n" + plane.log_tail("kubelet", 3000))
    return "\n".join(parts)


def _succeeds(plane: node.NodeCluster, fake: FakeAirbyte, name: str, job: int) -> None:
    fake.add_job(job, [Step("running", seconds=2), Step("succeeded")])  # by time: list walks count no GETs
    assert apply(plane, TEAM, watch_manifest(name, {"jobId": job, "pollInterval": "1s"})).returncode == 0
    try:
        wait_for(plane, TEAM, name, "jsonpath={.status.phase}=Succeeded", timeout=90)
    except AssertionError as exc:
        seen = [f"{r.method} {r.path}" for r in fake.requests[-10:]]
        raise AssertionError(f"{exc}\nthe fake's last requests: {seen}\n{_story(plane)}") from None
    assert reasons(plane, TEAM, name)[-1] == "JobSucceeded"


def test_chart_on_a_real_node_fails_over_when_the_leader_pod_is_deleted(cluster: node.NodeCluster) -> None:
    fake = FakeAirbyte("/api/public/v1", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with RunningFake(fake) as served:
        forward = node.Forwarder(served.port)  # the pods reach the fake on the node's address
        try:
            _run(cluster, fake, f"http://{node.NODE_IP}:{forward.port}{fake.prefix}")
        finally:
            forward.close()


def _run(plane: node.NodeCluster, fake: FakeAirbyte, url: str) -> None:
    helm = Helm(plane)
    repository, _, tag = plane.image.rpartition(":")
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "leaderElection": {"leaseDuration": 6, "renewDeadline": 4, "retryPeriod": 1},
    }
    started = time.monotonic()
    helm.run(
        "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace", "-f", helm.values_file(values)
    )
    try:
        try:
            pods = eventually(
                lambda: (p := _pods(plane)) and len(p) == 2 and all(map(_ready, p)) and p, 180, 1
            )
            names = {p["metadata"]["name"] for p in pods}
            leader = eventually(lambda: _holder(plane) in names and _holder(plane), 60, 0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_story(plane)}") from None
        print(
            f"two operator pods Ready in {time.monotonic() - started:.0f} s: {sorted(names)}, leader {leader}"
        )
        assert all(p["spec"]["nodeName"] == node.NODE_NAME for p in pods)

        plane.kubectl("create", "namespace", TEAM)
        create_default_secret(plane, TEAM, url)
        _succeeds(plane, fake, "before", 77)
        print("watch `before` Succeeded under", leader)

        deleted = time.monotonic()
        plane.kubectl("-n", NAMESPACE, "delete", "pod", leader, "--wait=false")
        (standby,) = (n for n in names if n != leader)
        # Either live replica may win the released Lease: the standby, or the Deployment's
        # replacement pod if it starts and writes first (both saw the Lease free; one PUT wins).
        try:
            successor = eventually(lambda: (h := _holder(plane)) not in ("", leader) and h, 60, 0.5)
        except AssertionError:
            raise AssertionError(f"the Lease stayed with {_holder(plane)!r}\n{_story(plane)}") from None
        which = "the standby" if successor == standby else "the replacement pod"
        took = time.monotonic() - deleted
        print(f"{successor} ({which}) took the Lease {took:.1f} s after {leader} was deleted")
        assert successor in {p["metadata"]["name"] for p in _pods(plane)}, "the Lease went to no live pod"
        _succeeds(plane, fake, "after", 78)
        print("watch `after` Succeeded under", successor)
        # The Deployment replaces the deleted pod; two pods run again, the successor leading.
        eventually(lambda: (p := _pods(plane)) and len(p) == 2 and all(map(_ready, p)), 120, 1)
        assert _holder(plane) == successor
    finally:
        helm.run("uninstall", RELEASE, "-n", NAMESPACE, check=False)
