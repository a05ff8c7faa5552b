"""From a watch's serverRef to a usable ServerConfig, or the Problem that explains why not.

Secrets are read from the watch's own namespace only, and cached briefly so that thousands of
watches on one Secret do not read it on every poll. Cluster admins may limit which Airbyte
URLs a Secret can name (`--allowed-url`): a tenant who may create Secrets must not make the
operator call whatever address it can reach from where it runs.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import airbyte_types as at
from .kube_client import KubeClient, KubeError
from .server_config import InvalidSecret, ServerConfig, decode_secret_data, parse_server_config


@dataclass
class _Cached:
    value: ServerConfig | at.Problem
    until: float


# Credential values stay known for redaction this long after their Secret left the cache: an
# answer to a request made with them may still be on its way (timeouts, retries, cancels).
REDACT_GRACE = 600.0


class Connections:
    def __init__(self, kube: KubeClient, ttl: float = 30.0, missing_ttl: float = 5.0,
                 allowed_urls: Sequence[str] = (),
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._kube = kube
        self._ttl, self._missing_ttl = ttl, missing_ttl
        self._allowed = tuple(allowed_urls)
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._credentials: dict[tuple[str, str], tuple[tuple[str, ...], float]] = {}  # values, until

    def __len__(self) -> int:
        return len(self._cache)

    def forget(self, namespace: str, name: str) -> None:
        """Drop a cached Secret, e.g. after Airbyte rejected its credentials."""
        self._cache.pop((namespace, name), None)

    def prune(self) -> None:
        """Drop every entry past its time, so Secrets nobody uses any more are not kept."""
        now = self._monotonic()
        for key in [k for k, v in self._cache.items() if v.until <= now]:
            del self._cache[key]
        for key in [k for k, (_, until) in self._credentials.items() if until <= now]:
            del self._credentials[key]

    def secret_values(self) -> Iterator[str]:
        """Every credential value of the Secrets in use (or lately used): never to be written."""
        for values, _ in self._credentials.values():
            yield from values

    async def resolve(self, namespace: str, name: str) -> ServerConfig | at.Problem:
        key = (namespace, name)
        cached = self._cache.get(key)
        if cached is not None and self._monotonic() < cached.until:
            return cached.value
        value = await self._read(namespace, name)
        ttl = self._ttl if isinstance(value, ServerConfig) else self._missing_ttl
        if not (isinstance(value, at.Problem) and value.transient):
            self._cache[key] = _Cached(value, self._monotonic() + ttl)
        if isinstance(value, ServerConfig):
            self._credentials[key] = (value.credential_values(), self._monotonic() + ttl + REDACT_GRACE)
        return value

    def _check_allowed(self, name: str, config: ServerConfig) -> at.Problem | None:
        if not self._allowed:
            return None
        for key, url in (("url", config.url), ("tokenUrl", config.token_url)):
            if url is not None and not url_allowed(url, self._allowed):
                return at.Problem(
                    at.INVALID_SECRET,
                    f"Secret {name!r}: key {key!r} names a URL this operator may not call; the "
                    f"cluster admin allows only: {', '.join(self._allowed)}",
                )
        return None

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
            config = parse_server_config(decode_secret_data(data))
        except InvalidSecret as exc:
            return at.Problem(at.INVALID_SECRET, f"Secret {name!r}: {exc}")
        return self._check_allowed(name, config) or config


def url_allowed(url: str, patterns: Sequence[str]) -> bool:
    """`url` matches one of `patterns`, each `scheme://host[:port][/path]` where the host may
    be a glob (`https://*.airbyte.internal`): the same scheme, a host (and port) matching the
    glob, and a path under the pattern's path."""
    got = urlsplit(url)
    for pattern in patterns:
        want = urlsplit(pattern.strip())
        if got.scheme.lower() != want.scheme.lower() or not want.netloc:
            continue
        if not fnmatch.fnmatchcase(got.netloc.lower(), want.netloc.lower()):
            continue
        prefix = want.path.rstrip("/")
        if got.path == prefix or got.path.startswith(prefix + "/") or not prefix:
            return True
    return False
