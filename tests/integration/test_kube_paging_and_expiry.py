"""KubeClient over HTTP: a paged list gives every page and the list's resourceVersion, and
credentials whose own expiration has passed are asked for again before the next request
(an exec plugin's token, a rotating service account token: kube/login.py)."""

from __future__ import annotations

import datetime
from typing import Any

import kopf
from aiohttp import web
from airbyte_watch.kube.client import KubeClient

from tests.support.fake_airbyte import BackgroundServer


def obj(name: str, rv: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "ns", "name": name, "resourceVersion": rv}
    return {"apiVersion": "airbyte.watch/v1alpha1", "kind": "AirbyteJobWatch", "metadata": meta}


class ListingApi:
    """Answers a list in two pages, and records each request's bearer token."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.tokens: list[str] = []

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.queries.append(dict(request.query))
            self.tokens.append(request.headers.get("Authorization", ""))
            if request.query.get("continue"):
                return web.json_response({"items": [obj("b", "7")], "metadata": {"resourceVersion": "9"}})
            meta = {"resourceVersion": "9", "continue": "next"}
            return web.json_response({"items": [obj("a", "5")], "metadata": meta})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


async def test_a_paged_list_gives_every_page_and_the_lists_resource_version() -> None:
    api = ListingApi()
    with BackgroundServer(api.app) as server:
        client = KubeClient(lambda: kopf.ConnectionInfo(server=server.base, token="t"))
        try:
            pages = [p async for p in client.list_watches("ns")]
        finally:
            await client.close()
    assert [[i["metadata"]["name"] for i in p.items] for p in pages] == [["a"], ["b"]]
    assert {p.resource_version for p in pages} == {"9"}
    assert api.queries[1]["continue"] == "next"


async def test_expired_credentials_are_asked_for_again_before_the_next_request() -> None:
    api = ListingApi()
    logins: list[str] = []
    now = datetime.datetime.now(datetime.UTC)

    def login() -> kopf.ConnectionInfo:
        logins.append(token := f"token-{len(logins)}")
        # The first token has already expired; the second lasts an hour.
        ends = now - datetime.timedelta(seconds=1) if len(logins) == 1 else now + datetime.timedelta(hours=1)
        return kopf.ConnectionInfo(server=server.base, token=token, expiration=ends)

    with BackgroundServer(api.app) as server:
        client = KubeClient(login)
        try:
            for _ in range(3):
                assert await client.read_data("secrets", "ns", "s") is not None
        finally:
            await client.close()
    assert logins == ["token-0", "token-1"]
    assert api.tokens == ["Bearer token-0", "Bearer token-1", "Bearer token-1"]
