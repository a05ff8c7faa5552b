"""Leader election's fence at the two places writes leave the operator: a replica that may
not act sends no Kubernetes write and no Airbyte write, and still reads."""

from __future__ import annotations

from collections.abc import Iterator

import kopf
import pytest
from aiohttp import web
from airbyte_watch.airbyte import model as at
from airbyte_watch.airbyte.client import ClientPool
from airbyte_watch.airbyte.server_config import ServerConfig
from airbyte_watch.kube import client as kube_client
from airbyte_watch.kube.client import KubeClient
from airbyte_watch.kube.leadership import NotLeader

from tests.support.fake_airbyte import BackgroundServer, FakeAirbyte, RunningFake, Step


class Fence:
    """A stand-in for Leadership.check that the test opens and closes."""

    def __init__(self) -> None:
        self.open, self.checks = True, 0

    def __call__(self) -> None:
        self.checks += 1
        if not self.open:
            raise NotLeader("not the leader")


class ApiServer:
    """Answers 503 to the first `failures` requests, then 200; records what reached it."""

    def __init__(self, failures: int = 0, on_failure: object = None) -> None:
        self.failures, self.on_failure = failures, on_failure
        self.seen: list[str] = []

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.seen.append(request.method)
            if self.failures:
                self.failures -= 1
                if callable(self.on_failure):
                    self.on_failure()
                return web.json_response({"message": "busy"}, status=503)
            return web.json_response({"metadata": {"resourceVersion": "7"}})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(kube_client, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    yield


async def test_kubernetes_writes_stop_at_the_fence_and_reads_do_not() -> None:
    api, fence = ApiServer(), Fence()
    with BackgroundServer(api.app) as server:
        client = KubeClient(lambda: kopf.ConnectionInfo(server=server.base, token="t"))
        client.before_write = fence
        try:
            # _request is the one door every write goes through (status, Events, finalizers).
            assert (await client._request("PATCH", "/w/status", body={}))[0] == 200
            fence.open = False
            with pytest.raises(NotLeader):
                await client._request("PATCH", "/w/status", body={})
            with pytest.raises(NotLeader):
                await client._request("POST", "/events", body={})
            assert await client.read_data("secrets", "ns", "s") == (200, {})
        finally:
            await client.close()
    assert api.seen == ["PATCH", "GET"]


async def test_a_retried_write_is_fenced_again_before_each_attempt() -> None:
    fence = Fence()
    api = ApiServer(failures=1, on_failure=lambda: setattr(fence, "open", False))  # lost mid-retry
    with BackgroundServer(api.app) as server:
        client = KubeClient(lambda: kopf.ConnectionInfo(server=server.base, token="t"))
        client.before_write = fence
        try:
            with pytest.raises(NotLeader):
                await client._request("PATCH", "/w/status", body={})
        finally:
            await client.close()
    assert api.seen == ["PATCH"], "the retry after the 503 was not sent"


async def test_airbyte_writes_stop_at_the_fence_and_reads_do_not() -> None:
    fence = Fence()
    with RunningFake(FakeAirbyte("/v1", client_id="cid", client_secret="cs")) as fake:
        fake.fake.connection_scripts["c1"] = [Step("running")]
        fake.fake.add_job(5, [("running", None)])
        pool = ClientPool(before_write=fence)
        client = pool.get(ServerConfig(url=fake.url, client_id="cid", client_secret="cs"))
        try:
            fence.open = False
            with pytest.raises(NotLeader):
                await client.trigger_job("c1", "sync")
            with pytest.raises(NotLeader):
                await client.cancel_job(5)
            assert isinstance(await client.get_job(5), at.Job)
        finally:
            await pool.close()
        writes = [r for r in fake.fake.requests if r.method in ("POST", "DELETE") and "/jobs" in r.path]
    assert writes == [] and fence.checks == 2
