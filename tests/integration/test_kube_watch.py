"""KubeClient's list and watch of AirbyteJobWatches over HTTP, as an API server streams them:
events split across chunks or longer than aiohttp's line limit, bookmarks, 410 Gone as a status
and as an ERROR event, and a list's resourceVersion."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kopf
import pytest
from aiohttp import web
from airbyte_watch.kube.client import Gone, KubeClient, KubeError, WatchEvent

from tests.support.fake_airbyte import BackgroundServer


def obj(name: str, rv: str, note: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "ns", "name": name, "resourceVersion": rv}
    if note:
        meta["annotations"] = {"note": note}
    return {"apiVersion": "airbyte.watch/v1alpha1", "kind": "AirbyteJobWatch", "metadata": meta}


class StreamingApi:
    """Streams `chunks` (bytes, sent one by one with a pause) to a watch; answers lists."""

    def __init__(self, chunks: list[bytes], status: int = 200) -> None:
        self.chunks, self.status = chunks, status
        self.queries: list[dict[str, str]] = []

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.queries.append(dict(request.query))
            if request.query.get("watch") != "true":
                if request.query.get("continue"):
                    return web.json_response({"items": [obj("b", "7")], "metadata": {"resourceVersion": "9"}})
                meta = {"resourceVersion": "9", "continue": "next"}
                return web.json_response({"items": [obj("a", "5")], "metadata": meta})
            if self.status != 200:
                return web.json_response({"kind": "Status", "code": self.status}, status=self.status)
            response = web.StreamResponse()
            await response.prepare(request)
            for chunk in self.chunks:
                await response.write(chunk)
                await asyncio.sleep(0.01)
            await response.write_eof()
            return response

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


async def collect(api: StreamingApi, since: str = "9") -> list[WatchEvent]:
    with BackgroundServer(api.app) as server:
        client = KubeClient(lambda: kopf.ConnectionInfo(server=server.base, token="t"))
        try:
            return [e async for e in client.watch_watches("ns", since)]
        finally:
            await client.close()


def line(kind: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": body}).encode() + b"\n"


async def test_events_split_across_chunks_and_longer_than_aiohttps_line_limit_arrive_whole() -> None:
    big = "x" * 1_000_000  # etcd keeps objects up to 1.5 MiB; aiohttp's readline stops at 512 KiB
    stream = b"".join(
        [
            line("ADDED", obj("a", "10")),
            line("MODIFIED", obj("a", "11", big)),
            line("BOOKMARK", obj("", "12")),
        ]
    )
    chunks = [stream[i : i + 1000] for i in range(0, len(stream), 1000)]
    api = StreamingApi(chunks)
    events = await collect(api)
    assert [(e.type, e.object["metadata"]["resourceVersion"]) for e in events] == [
        ("ADDED", "10"), ("MODIFIED", "11"), ("BOOKMARK", "12"),
    ]  # fmt: skip
    assert events[1].object["metadata"]["annotations"]["note"] == big
    query = api.queries[0]
    assert query["resourceVersion"] == "9" and query["allowWatchBookmarks"] == "true"
    assert int(query["timeoutSeconds"]) > 0


async def test_410_as_a_status_or_an_error_event_is_gone_other_errors_are_kube_errors() -> None:
    with pytest.raises(Gone):
        await collect(StreamingApi([], status=410))
    error = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}
    with pytest.raises(Gone):
        await collect(StreamingApi([line("ERROR", error)]))
    with pytest.raises(KubeError) as raised:
        await collect(StreamingApi([line("ERROR", {"code": 500, "message": "etcd is sad"})]))
    assert not isinstance(raised.value, Gone) and "etcd is sad" in str(raised.value)
    with pytest.raises(KubeError, match="403"):
        await collect(StreamingApi([], status=403))
    with pytest.raises(KubeError):
        await collect(StreamingApi([b'{"type": "ADDED", "object": {"metad\n']))  # garbage
    with pytest.raises(KubeError, match="over"):  # a line without end is not kept in memory
        await collect(StreamingApi([b"x" * 1_000_000] * 9))


async def test_a_paged_list_gives_every_page_and_the_lists_resource_version() -> None:
    api = StreamingApi([])
    with BackgroundServer(api.app) as server:
        client = KubeClient(lambda: kopf.ConnectionInfo(server=server.base, token="t"))
        try:
            pages = [p async for p in client.list_watches("ns")]
        finally:
            await client.close()
    assert [[i["metadata"]["name"] for i in p.items] for p in pages] == [["a"], ["b"]]
    assert {p.resource_version for p in pages} == {"9"}
    assert api.queries[1]["continue"] == "next"


class HoldingApi:
    """Keeps every watch open (sending nothing) and answers anything else at once."""

    def __init__(self) -> None:
        self.open = 0

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            if request.query.get("watch") == "true":
                response = web.StreamResponse()
                await response.prepare(request)
                self.open += 1
                await asyncio.sleep(4)  # longer than the write may wait below
                return response
            return web.json_response({"metadata": {"resourceVersion": "42"}})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


async def test_writes_go_through_while_a_watch_per_namespace_holds_its_connection() -> None:
    """40 watched namespaces hold 40 connections for minutes; a status write must not wait for
    one of them to end."""
    api = HoldingApi()
    with BackgroundServer(api.app) as server:
        client = KubeClient(lambda: kopf.ConnectionInfo(server=server.base, token="t"))

        async def drain(namespace: str) -> None:
            async for _ in client.watch_watches(namespace, "1"):
                pass

        watching = [asyncio.create_task(drain(f"ns-{i}")) for i in range(40)]
        try:
            for _ in range(40):  # 2 s at most: the watches end after 4
                if api.open == 40:
                    break
                await asyncio.sleep(0.05)
            landed = await asyncio.wait_for(client.replace_status("ns", "w", "u", {"phase": "Running"}), 1.5)
            assert landed is True
            assert api.open == 40
        finally:
            for task in watching:
                task.cancel()
            await asyncio.gather(*watching, return_exceptions=True)
            await client.close()
