"""From a watch's serverRef to a usable ServerConfig, or the Problem that explains why not.

Secrets are read from the watch's own namespace only, and cached briefly so that thousands of
watches on one Secret do not read it on every poll.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import airbyte_types as at
from .kube_client import KubeClient, KubeError
from .server_config import InvalidSecret, ServerConfig, decode_secret_data, parse_server_config


@dataclass
class _Cached:
    value: ServerConfig | at.Problem
    until: float


class Connections:
    def __init__(self, kube: KubeClient, ttl: float = 30.0, missing_ttl: float = 5.0) -> None:
        self._kube = kube
        self._ttl, self._missing_ttl = ttl, missing_ttl
        self._cache: dict[tuple[str, str], _Cached] = {}

    def forget(self, namespace: str, name: str) -> None:
        """Drop a cached Secret, e.g. after Airbyte rejected its credentials."""
        self._cache.pop((namespace, name), None)

    async def resolve(self, namespace: str, name: str) -> ServerConfig | at.Problem:
        key = (namespace, name)
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() < cached.until:
            return cached.value
        value = await self._read(namespace, name)
        ttl = self._ttl if isinstance(value, ServerConfig) else self._missing_ttl
        if not (isinstance(value, at.Problem) and value.transient):
            self._cache[key] = _Cached(value, time.monotonic() + ttl)
        return value

    async def _read(self, namespace: str, name: str) -> ServerConfig | at.Problem:
        try:
            status, data = await self._kube.read_data("secrets", namespace, name)
        except KubeError as exc:
            return at.Problem(at.UNREACHABLE, f"cannot read Secret {name!r}: {exc}")
        if status == 404:
            return at.Problem(at.SECRET_NOT_FOUND, f"Secret {name!r} not found in namespace {namespace!r}")
        if status == 403:
            return at.Problem(
                at.SECRET_NOT_FOUND,
                f"Secret {name!r} in namespace {namespace!r} is not readable by the operator (forbidden)",
            )
        if status != 200 or data is None:
            return at.Problem(at.UNREACHABLE, f"reading Secret {name!r} answered {status}")
        try:
            return parse_server_config(decode_secret_data(data))
        except InvalidSecret as exc:
            return at.Problem(at.INVALID_SECRET, f"Secret {name!r}: {exc}")
