"""KubeClient retries what an API server having a bad moment answers, and gives up cleanly."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import kopf
import pytest
from aiohttp import web
from airbyte_watch.kube import client as kube_client
from airbyte_watch.kube.client import KubeClient, KubeError

from tests.support.fake_airbyte import BackgroundServer


class FlakyApi:
    """Answers the first `failures` requests with the given status, then like an API server."""

    def __init__(self, failures: list[int]) -> None:
        self.failures = list(failures)
        self.seen: list[str] = []

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.seen.append(f"{request.method} {request.path}")
            if self.failures:
                status = self.failures.pop(0)
                return web.json_response({"kind": "Status", "message": "busy"}, status=status,
                                         headers={"Retry-After": "1"} if status == 429 else {})  # fmt: skip
            return web.json_response({"metadata": {"resourceVersion": "42"}})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(kube_client, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    yield


def client_for(server: BackgroundServer) -> KubeClient:
    return KubeClient(lambda: kopf.ConnectionInfo(server=server.base, token="t"))


async def test_5xx_and_429_are_retried_until_the_patch_lands() -> None:
    api = FlakyApi([503, 500, 429])
    with BackgroundServer(api.app) as server:
        client = client_for(server)
        try:
            landed = await client.replace_status("ns", "w", "u", {"phase": "Running"})
        finally:
            await client.close()
    assert landed is True
    assert len(api.seen) == 4


async def test_persistent_failure_raises_kube_error_after_the_retries() -> None:
    api = FlakyApi([503] * 10)
    with BackgroundServer(api.app) as server:
        client = client_for(server)
        try:
            with pytest.raises(KubeError, match="503"):
                await client.replace_status("ns", "w", "u", {"phase": "Running"})
            # An Event that could not be posted is raised too: the caller must not move on.
            with pytest.raises(KubeError, match="503"):
                await client.post_event(
                    {"metadata": {"namespace": "ns", "name": "w", "uid": "u"}}, "Normal", "JobRunning", "m",
                    datetime.datetime.now(datetime.UTC),
                )  # fmt: skip
        finally:
            await client.close()


async def test_unreachable_api_server_raises_kube_error() -> None:
    api = FlakyApi([])
    with BackgroundServer(api.app) as server:
        base = server.base
    client = KubeClient(lambda: kopf.ConnectionInfo(server=base, token="t"))
    try:
        with pytest.raises(KubeError):
            await client.replace_status("ns", "w", "u", {"phase": "Running"})
    finally:
        await client.close()
