"""An HTTP proxy that breaks requests at random on their way to the fake Airbyte (chaos tests)."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web

FAULTS = ("drop", "delay", "500", "429", "429-retry-after", "garbage", "no-status")


class FaultProxy:
    def __init__(self, upstream: str, fault_rate: float = 0.3, seed: int = 7, max_delay: float = 3.0) -> None:
        self.upstream = upstream.rstrip("/")  # scheme://host:port
        self.fault_rate = fault_rate
        self.max_delay = max_delay
        self.random = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.enabled = True
        self._lock = threading.Lock()
        self._session: aiohttp.ClientSession | None = None

    def _pick(self) -> str:
        with self._lock:
            if not self.enabled or self.random.random() >= self.fault_rate:
                fault = "pass"
            else:
                fault = self.random.choice(FAULTS)
            self.counts[fault] += 1
            return fault

    async def handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._pick()
        if fault == "drop":
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        if fault == "500":
            return web.json_response({"status": 500, "title": "unexpected-problem"}, status=500)
        if fault == "429":
            return web.json_response({"message": "You are being rate limited."}, status=429)
        if fault == "429-retry-after":
            return web.json_response({"message": "slow down"}, status=429, headers={"Retry-After": "1"})
        if fault == "garbage":
            return web.Response(text="<html>proxy error</html>", content_type="application/json")
        if fault == "no-status":
            return web.json_response({"jobId": 1})
        if fault == "delay":
            await asyncio.sleep(self.random.uniform(0.2, self.max_delay))
        return await self._forward(request)

    async def _forward(self, request: web.Request) -> web.Response:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=await request.read()
        ) as upstream:
            body = await upstream.read()
            return web.Response(
                status=upstream.status, body=body, content_type=upstream.content_type or "application/json"
            )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)

        async def close(_: Any) -> None:
            if self._session is not None:
                await self._session.close()

        app.on_cleanup.append(close)
        return app
