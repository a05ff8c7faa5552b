"""One poll of one watch, in process, against the real API server and the fake Airbyte."""

from __future__ import annotations

import datetime
import json
from typing import Any

import kopf
import pytest
from airbyte_watch.airbyte.client import ClientPool
from airbyte_watch.kube.client import KubeClient, KubeError
from airbyte_watch.runtime.connections import Connections
from airbyte_watch.runtime.watches import Options, Watches

from tests.conftest import create_default_secret
from tests.support.cluster import apply, events, get, status_patches, watch_manifest
from tests.support.controlplane import ControlPlane
from tests.support.fake_airbyte import Fault, RunningFake

pytestmark = pytest.mark.cluster


class FlakyKube(KubeClient):
    """Fails the next `fail_patches` status patches, as an API server having a bad moment."""

    fail_patches = 0

    async def replace_status(self, namespace: str, name: str, uid: str, status: Any) -> bool:
        if self.fail_patches:
            self.fail_patches -= 1
            raise KubeError("injected: API server unavailable")
        return await super().replace_status(namespace, name, uid, status)


@pytest.fixture
async def setup(  # type: ignore[no-untyped-def]
    control_plane: ControlPlane, namespace: str, fake_airbyte: RunningFake, monkeypatch: pytest.MonkeyPatch
):
    create_default_secret(control_plane, namespace, fake_airbyte.url)

    def login() -> kopf.ConnectionInfo:
        return kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())  # type: ignore[return-value]

    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    kube = FlakyKube(login)
    clients = ClientPool()
    # Per-job reads: these tests fault the reads of one job.
    watches = Watches(
        kube=kube, connections=Connections(kube), clients=clients, options=Options(poll_mode="get")
    )
    yield watches, kube
    await clients.close()
    await kube.close()


def load(plane: ControlPlane, watches: Watches, namespace: str, name: str) -> tuple[str, str]:
    watches.observe(None, get(plane, namespace, name))
    return namespace, name


async def test_event_exists_once_when_the_status_patch_after_it_fails(
    control_plane: ControlPlane, namespace: str, fake_airbyte: RunningFake, setup: Any
) -> None:
    watches, kube = setup
    fake_airbyte.fake.add_job(61, [("succeeded", None)], rows=1)
    assert apply(control_plane, namespace, watch_manifest("w", {"jobId": 61})).returncode == 0
    key = load(control_plane, watches, namespace, "w")
    kube.fail_patches = 2
    await watches.step(key)  # the event is posted, the patch fails
    await watches.step(key)  # again: the same event is refused as a copy, the patch fails
    assert get(control_plane, namespace, "w")["status"] == {"observedGeneration": -1}
    await watches.step(key)  # the patch goes through
    assert get(control_plane, namespace, "w")["status"]["phase"] == "Succeeded"
    assert [e["reason"] for e in events(control_plane, namespace, "w")] == ["JobSucceeded"]
    assert status_patches(control_plane, namespace, "w") == 1


async def test_a_watch_deleted_during_its_poll_is_not_written(
    control_plane: ControlPlane, namespace: str, fake_airbyte: RunningFake, setup: Any
) -> None:
    watches, _ = setup
    fake_airbyte.fake.add_job(62, [("running", None)])
    assert apply(control_plane, namespace, watch_manifest("w", {"jobId": 62})).returncode == 0
    key = load(control_plane, watches, namespace, "w")
    body = get(control_plane, namespace, "w")
    original = watches.clients.get

    def get_then_delete(config: Any) -> Any:
        client = original(config)
        read = client.get_job

        async def read_while_deleted(job_id: int) -> Any:
            answer = await read(job_id)
            control_plane.kubectl("-n", namespace, "delete", "airbytejobwatch", "w")
            watches.observe("DELETED", body)  # what the watch stream reports
            return answer

        client.get_job = read_while_deleted
        return client

    watches.clients.get = get_then_delete  # type: ignore[method-assign]
    await watches.step(key)
    assert status_patches(control_plane, namespace, "w") == 0
    assert events(control_plane, namespace, "w") == []
    assert not watches.scheduler.is_scheduled(key) and key not in watches.known
    assert (
        json.loads(control_plane.kubectl("-n", namespace, "get", "ajw", "-o", "json").stdout)["items"] == []
    )


async def test_each_outage_is_announced_even_when_the_status_returns_to_the_same(
    control_plane: ControlPlane, namespace: str, fake_airbyte: RunningFake, setup: Any
) -> None:
    watches, _ = setup
    fake_airbyte.fake.add_job(63, [("running", None)])
    assert apply(control_plane, namespace, watch_manifest("w", {"jobId": 63})).returncode == 0
    key = load(control_plane, watches, namespace, "w")
    await watches.step(key)
    for _ in range(2):  # running -> outage -> running, twice: the same statuses recur
        fake_airbyte.fake.inject(Fault(503, "{}", path_contains="/jobs/63"))
        await watches.step(key)
        await watches.step(key)
    assert [e["reason"] for e in events(control_plane, namespace, "w")] == [
        "JobRunning", "AirbyteUnreachable", "AirbyteReachable", "AirbyteUnreachable", "AirbyteReachable",
    ]  # fmt: skip


async def test_a_status_write_meant_for_a_deleted_watch_never_lands_on_its_successor(
    control_plane: ControlPlane, namespace: str, setup: Any
) -> None:
    _, kube = setup
    assert apply(control_plane, namespace, watch_manifest("w", {"jobId": 64})).returncode == 0
    old_uid = get(control_plane, namespace, "w")["metadata"]["uid"]
    control_plane.kubectl("-n", namespace, "delete", "ajw", "w")
    assert apply(control_plane, namespace, watch_manifest("w", {"jobId": 65})).returncode == 0
    assert await kube.replace_status(namespace, "w", old_uid, {"phase": "Succeeded", "jobId": 64}) is False
    assert get(control_plane, namespace, "w")["status"] == {"observedGeneration": -1}
    new_uid = get(control_plane, namespace, "w")["metadata"]["uid"]
    assert await kube.replace_status(namespace, "w", new_uid, {"phase": "Pending", "jobId": 65})
    assert get(control_plane, namespace, "w")["status"] == {"phase": "Pending", "jobId": 65}


async def test_a_message_past_the_crd_bound_is_refused_by_the_real_api_server(
    control_plane: ControlPlane, namespace: str, setup: Any
) -> None:
    """Why every message is bounded: the API server refuses the whole status otherwise."""
    _, kube = setup
    assert apply(control_plane, namespace, watch_manifest("w", {"jobId": 66})).returncode == 0
    uid = get(control_plane, namespace, "w")["metadata"]["uid"]
    long = {"type": "Ready", "status": "False", "reason": "JobFailed", "message": "x" * 40_000,
            "lastTransitionTime": "2026-11-25T00:00:00Z"}  # fmt: skip
    with pytest.raises(KubeError, match="422"):
        await kube.replace_status(namespace, "w", uid, {"conditions": [long]})


async def test_an_event_posted_by_name_reads_back_and_a_missing_one_is_none(
    control_plane: ControlPlane, namespace: str, setup: Any
) -> None:
    """What keeps a watch's one outcome after a crash: the outcome Event, found by its name."""
    _, kube = setup
    ref = {"metadata": {"namespace": namespace, "name": "w", "uid": "u-1"}}
    now = datetime.datetime.now(datetime.UTC)
    assert await kube.post_event(ref, "Warning", "JobNotFound", "gone", now, name="w.outcome-1")
    assert not await kube.post_event(ref, "Warning", "TimedOut", "late", now, name="w.outcome-1")
    found = await kube.read_event(namespace, "w.outcome-1")
    assert found is not None and (found["reason"], found["message"]) == ("JobNotFound", "gone")
    assert await kube.read_event(namespace, "w.nothing") is None
