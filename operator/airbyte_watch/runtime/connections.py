"""From a watch's serverRef to a usable ServerConfig, or the Problem that explains why not.

Secrets are read from the watch's own namespace only, and cached briefly so that thousands of
watches on one Secret do not read it on every poll. A Secret that watches use is read again once
per the shortest interval among them (at most every `ttl`), whether or not they poll: a watch
served by the list walks does not step while its job runs, and a rotated credential, a moved
URL or a switch of API must still reach it within one interval. Cluster admins may limit which Airbyte
URLs a Secret can name (`--allowed-url`): a tenant who may create Secrets must not make the
operator call whatever address it can reach from where it runs.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..airbyte import model as at
from ..airbyte.server_config import InvalidSecret, ServerConfig, decode_secret_data, parse_server_config
from ..kube.client import KubeClient, KubeError


@dataclass
class _Cached:
    value: ServerConfig | at.Problem
    until: float
    read_at: float  # monotonic start of the read that gave it


@dataclass
class _Users:
    """The watches that use one Secret, and the intervals they ask for."""

    intervals: dict[Hashable, float] = field(default_factory=dict)
    counts: Counter[float] = field(default_factory=Counter)  # interval -> how many watches
    seen: str | None = None  # what the Secret said when last read (a fingerprint, no values)
    read_at: float = float("-inf")


def fingerprint(value: ServerConfig | at.Problem) -> str:
    """Tells two readings of a Secret apart without holding its values."""
    return value.key if isinstance(value, ServerConfig) else f"{value.kind}: {value.detail}"


# Credential values stay known for redaction this long after their Secret left the cache: an
# answer to a request made with them may still be on its way (timeouts, retries, cancels).
REDACT_GRACE = 600.0
MIN_REFRESH = 1.0  # seconds between two reads of one Secret in use, at least
REFRESH_BATCH = 32  # Secret reads in flight at once while refreshing


class Connections:
    def __init__(self, kube: KubeClient, ttl: float = 30.0, missing_ttl: float = 5.0,
                 allowed_urls: Sequence[str] = (),
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._kube = kube
        self._ttl, self._missing_ttl = ttl, missing_ttl
        self._allowed = tuple(allowed_urls)
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str], _Cached] = {}
        # (namespace, name, config key) -> (values, until): every version of a Secret lately read,
        # so that a rotated-out value is still redacted from answers to requests made with it.
        self._credentials: dict[tuple[str, str, str], tuple[tuple[str, ...], float]] = {}
        self._reading: dict[tuple[str, str], asyncio.Future[ServerConfig | at.Problem]] = {}
        self._users: dict[tuple[str, str], _Users] = {}
        self._uses: dict[Hashable, tuple[str, str]] = {}  # watcher -> the Secret it uses

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
        """Every credential value of the Secrets in use (or lately used): never to be written.
        After a rotation the old values stay here, for redaction only, for `REDACT_GRACE`."""
        for values, _ in self._credentials.values():
            yield from values

    async def resolve(
        self, namespace: str, name: str, read_after: float | None = None
    ) -> ServerConfig | at.Problem:
        """The Secret's config (cached). `read_after`: a monotonic time; a reading that began
        before it is not good enough (Airbyte refused the credentials then: has the Secret
        changed since?). Watches that ask at once share one read."""
        key = (namespace, name)
        cached = self._cache.get(key)
        now = self._monotonic()
        if cached is not None and now < cached.until and (read_after is None or cached.read_at >= read_after):
            return cached.value
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.ensure_future(self._read_and_keep(namespace, name))
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        return await asyncio.shield(reading)

    async def _read_and_keep(self, namespace: str, name: str) -> ServerConfig | at.Problem:
        key, started = (namespace, name), self._monotonic()
        value = await self._read(namespace, name)
        now = self._monotonic()
        ttl = self._ttl if isinstance(value, ServerConfig) else self._missing_ttl
        users = self._users.get(key)
        if users is not None:
            users.read_at = started  # a failed read too: the refresh keeps its pace
        if not (isinstance(value, at.Problem) and value.transient):
            self._cache[key] = _Cached(value, now + ttl, started)
            if users is not None:
                users.seen = fingerprint(value)
        if isinstance(value, ServerConfig):
            self._credentials[(*key, value.key)] = (value.credential_values(), now + ttl + REDACT_GRACE)
        return value

    # --- the Secrets in use, kept fresh -------------------------------------------------------

    def use(self, namespace: str, name: str, watcher: Hashable, interval: float) -> None:
        """`watcher` uses this Secret and wants its changes within `interval` seconds."""
        key = (namespace, name)
        if self._uses.get(watcher) != key:
            self.release(watcher)
            self._uses[watcher] = key
        users = self._users.get(key)
        if users is None:
            users = self._users[key] = _Users()
            cached = self._cache.get(key)
            if cached is not None:
                users.seen, users.read_at = fingerprint(cached.value), cached.read_at
        before = users.intervals.get(watcher)
        if before != interval:
            if before is not None:
                _drop(users.counts, before)
            users.intervals[watcher] = interval
            users.counts[interval] += 1

    def release(self, watcher: Hashable) -> None:
        key = self._uses.pop(watcher, None)
        users = self._users.get(key) if key is not None else None
        if users is not None and watcher in users.intervals:
            _drop(users.counts, users.intervals.pop(watcher))
            if not users.intervals:
                del self._users[key]  # type: ignore[arg-type]

    async def refresh(self) -> list[Hashable]:
        """Read again each Secret in use whose last reading is older than the shortest interval
        of its watches (or `ttl`); the watches of those that now say something else."""
        now = self._monotonic()
        due = [
            key for key, users in self._users.items()
            if now - users.read_at >= max(MIN_REFRESH, min(self._ttl, min(users.counts, default=self._ttl)))
        ]  # fmt: skip
        changed: list[Hashable] = []
        for start in range(0, len(due), REFRESH_BATCH):
            batch = due[start : start + REFRESH_BATCH]
            before = [self._users[k].seen for k in batch]
            await asyncio.gather(*(self.resolve(*key, read_after=now) for key in batch))
            for key, seen in zip(batch, before, strict=True):
                users = self._users.get(key)
                if users is not None and seen is not None and users.seen != seen:
                    changed.extend(users.intervals)
        return changed

    @property
    def allowed_urls(self) -> tuple[str, ...]:
        """`--allowed-url`'s patterns (admission checks Secrets against them too)."""
        return self._allowed

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


def _drop(counts: Counter[float], interval: float) -> None:
    counts[interval] -= 1
    if counts[interval] <= 0:
        del counts[interval]


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
