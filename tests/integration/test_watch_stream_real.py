"""The watch stream against the real kube-apiserver: a watch from a resourceVersion it no longer
keeps is answered 410 Gone; the stream lists again, forgets what that list does not show, and
follows from the list's version."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import kopf
import pytest
from airbyte_watch.airbyte.client import ClientPool
from airbyte_watch.kube.client import KubeClient
from airbyte_watch.runtime.connections import Connections
from airbyte_watch.runtime.watch_stream import WatchStream
from airbyte_watch.runtime.watches import Options, Watches

from tests.support.cluster import apply, get, watch_manifest
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.cluster


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not reached in time")


async def test_a_watch_from_a_version_too_old_lists_again_and_follows(
    control_plane: ControlPlane,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    kube = KubeClient(lambda: kopf.login_with_kubeconfig(settings=kopf.OperatorSettings()))  # type: ignore[arg-type, return-value]
    clients = ClientPool()
    watches = Watches(kube, Connections(kube), clients, Options(namespaces=[namespace]), walks=False)
    assert apply(control_plane, namespace, watch_manifest("a", {"jobId": 1})).returncode == 0
    ghost = get(control_plane, namespace, "a")
    ghost["metadata"] = {**ghost["metadata"], "name": "ghost", "uid": "deleted-while-the-stream-was-down"}
    watches.observe(None, ghost)
    caplog.set_level(logging.INFO, logger="airbyte_watch.runtime.watch_stream")
    following = asyncio.create_task(WatchStream(watches).follow(namespace, "1"))
    try:
        await until(lambda: (namespace, "a") in watches.known and (namespace, "ghost") not in watches.known)
        assert "too old to continue" in caplog.text
        assert apply(control_plane, namespace, watch_manifest("b", {"jobId": 2})).returncode == 0
        await until(lambda: (namespace, "b") in watches.known)  # told by the watch after the list
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await clients.close()
        await kube.close()
