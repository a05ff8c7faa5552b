"""A bare Kubernetes client on aiohttp: the few calls the floor and the benchmark's set-up make.

No retries, no caching, no watch: the least a program can do to write what the operator writes.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp
import yaml

GROUP = "airbyte.watch/v1alpha1"


class Kube:
    def __init__(self, kubeconfig: Path, concurrency: int = 64) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server = cluster["server"]
        self._ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self._headers = {"Authorization": f"Bearer {config['users'][0]['user']['token']}"}
        self._concurrency = concurrency
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Kube:
        connector = aiohttp.TCPConnector(limit=self._concurrency, ssl=self._ssl)
        self.session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def _call(self, method: str, path: str, body: Any = None, content_type: str = "") -> Any:
        assert self.session is not None
        headers = {"Content-Type": content_type} if content_type else {}
        async with self.session.request(method, self.server + path, json=body, headers=headers) as answer:
            data = await answer.json(content_type=None)
            if answer.status >= 300 and answer.status != 409:
                raise RuntimeError(f"{method} {path}: {answer.status} {data}")
            return data

    async def create_namespace(self, name: str) -> None:
        await self._call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})

    async def create_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        body = {"metadata": {"name": name}, "stringData": data}
        await self._call("POST", f"/api/v1/namespaces/{namespace}/secrets", body)

    async def create_watch(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": GROUP, "kind": "AirbyteJobWatch", "metadata": {"name": name}, "spec": spec}
        await self._call("POST", f"/apis/{GROUP}/namespaces/{namespace}/airbytejobwatches", body)

    async def list_watches(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            path = f"/apis/{GROUP}/namespaces/{namespace}/airbytejobwatches?limit=5000"
            page = await self._call("GET", path + (f"&continue={token}" if token else ""))
            items += page["items"]
            token = page["metadata"].get("continue", "")
            if not token:
                return items

    async def patch_status(self, namespace: str, name: str, uid: str, status: dict[str, Any]) -> None:
        """A JSON patch of /status that first tests the uid, as the operator writes it."""
        ops = [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "add", "path": "/status", "value": status},
        ]
        path = f"/apis/{GROUP}/namespaces/{namespace}/airbytejobwatches/{name}/status"
        await self._call("PATCH", path, ops, content_type="application/json-patch+json")

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        await self._call("POST", f"/api/v1/namespaces/{namespace}/events", event)
