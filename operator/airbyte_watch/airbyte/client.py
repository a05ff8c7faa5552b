"""The Airbyte client the operator uses: the right API for a server (public or config), and one
client per server + credentials, shared by every watch that uses them.

Every call returns a Job or a typed Problem; nothing here raises for an HTTP or network fault.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .config_api import ConfigApiClient
from .public_api import PublicApiClient
from .rate_limit import RateLimiter
from .server_config import ServerConfig
from .transport import USER_AGENT, AirbyteApi, retry_after_seconds

__all__ = ["USER_AGENT", "AirbyteApi", "AirbyteClient", "ClientPool", "retry_after_seconds"]


def AirbyteClient(  # a function under the class name callers have always constructed
    config: ServerConfig,
    request_timeout: float = 15.0,
    limiter: RateLimiter | None = None,
    on_token_fetch: Callable[[str], None] = lambda host: None,
    user_agent: str = USER_AGENT,
    before_write: Callable[[], None] = lambda: None,
) -> AirbyteApi:
    """The client for the API the Secret names (`api: config` or the public API)."""
    kind = ConfigApiClient if config.api == "config" else PublicApiClient
    return kind(config, request_timeout, limiter, on_token_fetch, user_agent, before_write)


class ClientPool:
    """One client per server + credentials, shared by every watch that uses them, and one
    request budget per server host, shared by all its clients.

    `before_write` runs right before every request that changes something in Airbyte (start or
    cancel a job): a replica that lost leadership raises there, so it never writes.
    """

    def __init__(
        self,
        request_timeout: float = 15.0,
        max_requests_per_second: float = 100.0,
        on_token_fetch: Callable[[str], None] = lambda host: None,
        user_agent: str = USER_AGENT,
        before_write: Callable[[], None] = lambda: None,
    ) -> None:
        self._user_agent = user_agent
        self._clients: dict[str, AirbyteApi] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._request_timeout = request_timeout
        self._rate = max_requests_per_second
        self._on_token_fetch = on_token_fetch
        self._closing: set[asyncio.Future[None]] = set()
        self._before_write = before_write

    def get(self, config: ServerConfig) -> AirbyteApi:
        client = self._clients.get(config.key)
        if client is None:
            limiter = self._limiters.get(config.host)
            if limiter is None:
                limiter = self._limiters[config.host] = RateLimiter(self._rate, burst=self._rate)
            client = self._clients[config.key] = AirbyteClient(
                config,
                self._request_timeout,
                limiter,
                self._on_token_fetch,
                self._user_agent,
                self._before_write,
            )
        return client

    def __len__(self) -> int:
        return len(self._clients)

    def close_unused(self, in_use: set[str]) -> None:
        """Close the clients (sessions, tokens) of credentials no known watch uses any more,
        and the request budgets of servers none of the remaining clients talks to."""
        for key in [k for k in self._clients if k not in in_use]:
            client = self._clients.pop(key)
            self._closing.add(asyncio.ensure_future(client.close()))
            self._closing = {t for t in self._closing if not t.done()}
        hosts = {c.config.host for c in self._clients.values()}
        for host in [h for h in self._limiters if h not in hosts]:
            del self._limiters[host]

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self._clients.values()), *self._closing)
        self._clients.clear()
