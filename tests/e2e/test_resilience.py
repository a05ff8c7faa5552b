"""Restarts, deletes in flight, spec edits, many watches on one server: nothing lost or doubled."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import create_default_secret
from tests.support.cluster import (
    OperatorProcess,
    apply,
    events,
    eventually,
    get,
    reasons,
    status_patches,
    wait_for,
    watch_manifest,
)
from tests.support.controlplane import ControlPlane, running
from tests.support.fake_airbyte import Fault, RunningFake, Step

pytestmark = pytest.mark.cluster


@pytest.fixture
def own_namespace(control_plane: ControlPlane, fake_airbyte: RunningFake) -> str:
    """A namespace no session operator watches, with the default Secret, for a private operator."""
    name = f"own-{secrets.token_hex(4)}"
    control_plane.kubectl("create", "namespace", name)
    create_default_secret(control_plane, name, fake_airbyte.url)
    return name


@pytest.fixture
def private_operator(
    control_plane: ControlPlane, own_namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(control_plane, tmp_path / "operator.log",
                           ["--namespace", own_namespace, "--startup-spread=0.2"])  # fmt: skip
    proc.start()
    yield proc
    proc.stop()


def create(plane: ControlPlane, namespace: str, name: str, **spec: object) -> None:
    done = apply(plane, namespace, watch_manifest(name, {"pollInterval": "1s", **spec}))
    assert done.returncode == 0, done.stderr


def test_sigkill_and_restart_loses_nothing_and_doubles_nothing(
    control_plane: ControlPlane, own_namespace: str, fake_airbyte: RunningFake,
    private_operator: OperatorProcess,
) -> None:  # fmt: skip
    ns = own_namespace
    fake_airbyte.fake.add_job(31, [Step("running", polls=1), Step("running", seconds=6), Step("succeeded")])
    fake_airbyte.fake.add_job(32, [("failed", None)])
    fake_airbyte.fake.add_job(33, [("running", None)])
    create(control_plane, ns, "finishes-while-down", jobId=31)
    create(control_plane, ns, "already-final", jobId=32)
    create(control_plane, ns, "still-running", jobId=33)
    wait_for(control_plane, ns, "finishes-while-down", "jsonpath={.status.phase}=Running")
    wait_for(control_plane, ns, "still-running", "jsonpath={.status.phase}=Running")
    wait_for(control_plane, ns, "already-final", "condition=Stalled")
    before = {n: get(control_plane, ns, n)["status"] for n in ("finishes-while-down", "still-running")}

    private_operator.kill()
    final_polls = fake_airbyte.fake.job_gets(32)
    time.sleep(7)  # job 31 succeeds while nobody watches
    private_operator.start()

    wait_for(control_plane, ns, "finishes-while-down", "condition=Ready")
    time.sleep(3)  # a few polls of the still-running watch after the restart
    assert reasons(control_plane, ns, "finishes-while-down") == ["JobRunning", "JobSucceeded"]
    assert reasons(control_plane, ns, "still-running") == ["JobRunning"]
    assert reasons(control_plane, ns, "already-final") == ["JobFailed"]
    for name, old in before.items():
        now = get(control_plane, ns, name)["status"]
        assert (now["startedAt"], now["deadline"]) == (old["startedAt"], old["deadline"]), name
    assert fake_airbyte.fake.job_gets(32) == final_polls, "a final watch is not polled after a restart"
    # The still-running watch changed nothing, so the restart wrote nothing for it.
    assert status_patches(control_plane, ns, "still-running") == 1


def test_delete_while_a_poll_is_in_flight(
    control_plane: ControlPlane, own_namespace: str, fake_airbyte: RunningFake,
    private_operator: OperatorProcess,
) -> None:  # fmt: skip
    ns = own_namespace
    fake_airbyte.fake.add_job(34, [("running", None)])
    create(control_plane, ns, "first", jobId=34)
    wait_for(control_plane, ns, "first", "jsonpath={.status.phase}=Running")
    fake_airbyte.fake.inject(Fault(200, delay=3.0, path_contains="/jobs/34"))
    eventually(lambda: fake_airbyte.fake.faults == [], timeout=10)  # the slow GET has begun
    patches = status_patches(control_plane, ns, "first")
    control_plane.kubectl("-n", ns, "delete", "airbytejobwatch", "first", "--timeout=10s")
    time.sleep(4.5)
    assert status_patches(control_plane, ns, "first") == patches
    gets = fake_airbyte.fake.job_gets(34)
    time.sleep(2)
    assert fake_airbyte.fake.job_gets(34) == gets, "nothing keeps polling for a deleted watch"
    assert "Traceback" not in private_operator.output and "ERROR" not in private_operator.output


def test_spec_edit_applies_from_the_next_poll(
    control_plane: ControlPlane, own_namespace: str, fake_airbyte: RunningFake,
    private_operator: OperatorProcess,
) -> None:  # fmt: skip
    ns = own_namespace
    fake_airbyte.fake.add_job(35, [("running", 3), ("succeeded", None)])
    create(control_plane, ns, "slowpoke", jobId=35, pollInterval="1h")
    wait_for(control_plane, ns, "slowpoke", "jsonpath={.status.phase}=Running")
    control_plane.kubectl("-n", ns, "patch", "airbytejobwatch", "slowpoke", "--type=merge",
                          "-p", '{"spec":{"pollInterval":"1s"}}')  # fmt: skip
    wait_for(control_plane, ns, "slowpoke", "condition=Ready", timeout=20)
    obj = get(control_plane, ns, "slowpoke")
    assert obj["metadata"]["generation"] == 2 and obj["status"]["observedGeneration"] == 2
    moved = '{"spec":{"serverRef":{"name":"elsewhere"}}}'
    done = control_plane.kubectl("-n", ns, "patch", "airbytejobwatch", "slowpoke", "--type=merge",
                                 "-p", moved, check=False)  # fmt: skip
    assert done.returncode != 0 and "serverRef is immutable" in done.stderr


def test_edit_of_a_final_watch_is_acknowledged_without_polling(
    control_plane: ControlPlane, own_namespace: str, fake_airbyte: RunningFake,
    private_operator: OperatorProcess,
) -> None:  # fmt: skip
    ns = own_namespace
    fake_airbyte.fake.add_job(36, [("succeeded", None)])
    create(control_plane, ns, "done", jobId=36)
    wait_for(control_plane, ns, "done", "condition=Ready")
    gets = fake_airbyte.fake.job_gets(36)
    control_plane.kubectl("-n", ns, "patch", "airbytejobwatch", "done", "--type=merge",
                          "-p", '{"spec":{"pollInterval":"5s"}}')  # fmt: skip
    wait_for(control_plane, ns, "done", "jsonpath={.status.observedGeneration}=2")
    assert fake_airbyte.fake.job_gets(36) == gets
    assert reasons(control_plane, ns, "done") == ["JobSucceeded"]


def test_many_watches_on_one_server_share_one_token(
    control_plane: ControlPlane, own_namespace: str, fake_airbyte: RunningFake,
    private_operator: OperatorProcess,
) -> None:  # fmt: skip
    ns = own_namespace
    manifests = []
    for i in range(30):
        fake_airbyte.fake.add_job(1000 + i, [("running", 1), ("succeeded", None)])
        manifests.append(json.loads(watch_manifest(f"w{i}", {"jobId": 1000 + i, "pollInterval": "1s"})))
    listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests})
    assert apply(control_plane, ns, listing).returncode == 0
    for i in range(30):
        wait_for(control_plane, ns, f"w{i}", "condition=Ready")
    tokens = [r for r in fake_airbyte.fake.requests if r.path.endswith("/applications/token")]
    assert len(tokens) == 1


def test_api_server_restart_drops_watch_streams_and_nothing_is_lost(
    fake_airbyte: RunningFake, tmp_path: Path
) -> None:
    with running() as plane:  # its own control plane: this test kills the API server
        ns = "restarts"
        plane.kubectl("create", "namespace", ns)
        create_default_secret(plane, ns, fake_airbyte.url)
        fake_airbyte.fake.add_job(
            37, [Step("running", polls=1), Step("running", seconds=8), Step("succeeded")]
        )
        create(plane, ns, "survivor", jobId=37)
        operator = OperatorProcess(plane, tmp_path / "operator.log", ["--namespace", ns])
        operator.start()
        try:
            wait_for(plane, ns, "survivor", "jsonpath={.status.phase}=Running")
            plane.restart_apiserver(down_for=3)  # polls meanwhile find no API server to write to
            wait_for(plane, ns, "survivor", "condition=Ready", timeout=60)
            create(plane, ns, "newcomer", jobId=37)  # seen through the re-established watch
            wait_for(plane, ns, "newcomer", "condition=Ready", timeout=30)
        finally:
            operator.stop()
        assert reasons(plane, ns, "survivor") == ["JobRunning", "JobSucceeded"]
        assert operator.proc is not None and operator.proc.returncode in (0, -15)


def test_request_budget_per_server_holds_with_many_watches(
    control_plane: ControlPlane, own_namespace: str, fake_airbyte: RunningFake, tmp_path: Path
) -> None:
    ns, rate = own_namespace, 5
    items = []
    for i in range(40):
        fake_airbyte.fake.add_job(2000 + i, [("running", None)])
        items.append(json.loads(watch_manifest(f"w{i}", {"jobId": 2000 + i, "pollInterval": "1s"})))
    assert (
        apply(control_plane, ns, json.dumps({"apiVersion": "v1", "kind": "List", "items": items})).returncode
        == 0
    )
    args = ["--namespace", ns, f"--max-requests-per-second={rate}", "--startup-spread=0.1"]
    operator = OperatorProcess(control_plane, tmp_path / "operator.log", args)
    operator.start()
    try:
        time.sleep(8)
    finally:
        operator.stop()
    times = sorted(r.at for r in fake_airbyte.fake.requests)
    assert len(times) > 20, "the watches polled"
    # Forty watches want 40 requests a second; the budget lets through `rate` (plus one burst).
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t - start < 2.0)
        assert in_window <= 2 * rate + rate + 1, f"{in_window} requests within 2s"
    spread = times[-1] - times[0]
    assert len(times) <= rate * spread + rate + 1


def test_two_shards_handle_every_watch_exactly_once_also_across_a_restart(
    control_plane: ControlPlane, own_namespace: str, fake_airbyte: RunningFake, tmp_path: Path
) -> None:
    ns = own_namespace
    items = []
    for i in range(24):
        steps = [Step("running", polls=1), Step("running", seconds=4), Step("succeeded")]
        fake_airbyte.fake.add_job(3000 + i, steps)
        items.append(json.loads(watch_manifest(f"w{i}", {"jobId": 3000 + i, "pollInterval": "1s"})))
    assert (
        apply(control_plane, ns, json.dumps({"apiVersion": "v1", "kind": "List", "items": items})).returncode
        == 0
    )
    shards = [
        OperatorProcess(control_plane, tmp_path / f"shard{i}.log",
                        ["--namespace", ns, "--shard-count=2", f"--shard-index={i}", "--startup-spread=0.2"])
        for i in range(2)
    ]  # fmt: skip
    for shard in shards:
        shard.start()
    try:
        time.sleep(2)
        shards[1].kill()  # one shard dies mid-watch and comes back
        time.sleep(1)
        shards[1].start()
        for i in range(24):
            wait_for(control_plane, ns, f"w{i}", "condition=Ready", timeout=40)
    finally:
        for shard in shards:
            shard.stop()
    pollers: dict[int, set[str]] = {}
    for r in fake_airbyte.fake.requests:
        if r.method == "GET" and "/jobs/" in r.path:
            pollers.setdefault(int(r.path.rsplit("/", 1)[1]), set()).add(r.user_agent)
    assert len(pollers) == 24
    assert all(len(agents) == 1 for agents in pollers.values()), pollers
    assert {next(iter(a)) for a in pollers.values()} == {
        "airbyte-watch/0.1.0 (shard 0/2)", "airbyte-watch/0.1.0 (shard 1/2)",
    }  # fmt: skip
    for i in range(24):
        posted = events(control_plane, ns, f"w{i}")
        assert [e["reason"] for e in posted] == ["JobRunning", "JobSucceeded"]
        assert len({e["reportingInstance"] for e in posted}) == 1
