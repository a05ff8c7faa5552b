"""What both Airbyte APIs share: one aiohttp session, the login (a cached token for client
credentials, a static bearer token or basic auth), the request budget, and turning every HTTP or
network fault into a typed Problem. The two APIs are subclasses (`airbyte_public`,
`airbyte_config_api`); nothing here raises for an HTTP or network fault.
"""

from __future__ import annotations

import abc
import asyncio
import email.utils
import json
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

import aiohttp

from . import model as at
from .rate_limit import RateLimiter
from .server_config import ServerConfig
from .text import bounded, describe_body, redact

USER_AGENT = "airbyte-watch/0.1.0"
# Refresh a token this long before it expires: a minute, as Airbyte's SDK does, but never more
# than a third of its life, so a token that lives seconds still serves many requests.
MAX_REFRESH_MARGIN = 60.0
# A token answer without `expires_in` (the config API's token endpoint sends none) is taken to
# live 3 minutes: the shortest lifetime Airbyte ever documented for its application tokens. A
# token the server forgets sooner still gets one 401 and one re-fetch.
DEFAULT_TOKEN_LIFETIME = 180.0
# After the token endpoint fails (refused, 5xx, no answer), callers get that failure again
# without a request for 1 s, then 2, 4, ... up to a minute: thousands of watches waiting on one
# login must not each ask the endpoint again.
TOKEN_RETRY_BASE, TOKEN_RETRY_MAX = 1.0, 60.0
# Answers that mean "log in again, once": 401 always; a list also on 403, which Airbyte sends
# for a token it no longer maps to a user (a revoked application) as well as for a missing right.
RELOGIN = frozenset({401})
RELOGIN_LIST = frozenset({401, 403})


def http_date(value: str | None) -> float | None:
    """An HTTP date (the `Date` header) as epoch seconds; None when absent or bad."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def refresh_margin(lifetime: float) -> float:
    return min(MAX_REFRESH_MARGIN, lifetime / 3)


class _TokenFault(Exception):
    """The token endpoint refused the client credentials, failed, or did not answer."""

    def __init__(self, problem: at.Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


class AirbyteApi(abc.ABC):
    """One Airbyte server and its credentials. Subclasses speak one API over `_call`."""

    def __init__(
        self,
        config: ServerConfig,
        request_timeout: float = 15.0,
        limiter: RateLimiter | None = None,
        on_token_fetch: Callable[[str], None] = lambda host: None,
        user_agent: str = USER_AGENT,
        before_write: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.user_agent = user_agent
        self._limiter = limiter
        self._on_token_fetch = on_token_fetch
        self._before_write = before_write
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._last_token: str | None = None  # the one replaced last: still redacted from text
        self._token_refresh_at = 0.0  # monotonic; 0 = fetch before use
        self._token_lock = asyncio.Lock()
        self._token_fault: _TokenFault | None = None  # the last failure, answered until retry_at
        self._token_faults = 0  # in a row
        self._token_retry_at = 0.0  # monotonic

    # --- the four calls every API offers -------------------------------------------------

    @abc.abstractmethod
    async def get_job(self, job_id: int) -> at.Job | at.Problem: ...

    @abc.abstractmethod
    async def cancel_job(self, job_id: int) -> str | at.Problem:
        """ "cancelled", or "finished" when Airbyte says nothing runs (409)."""

    @abc.abstractmethod
    async def trigger_job(self, connection_id: str, job_type: str) -> at.Job | at.Problem: ...

    @abc.abstractmethod
    async def list_jobs(self, connection_id: str, since: str | None = None) -> list[at.Job] | at.Problem:
        """The connection's jobs, newest first; `since`: created at or after it (ISO 8601)."""

    # --- session ----------------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.config.insecure_skip_tls_verify:
            return False
        if self.config.ca_bundle:
            return ssl.create_default_context(cadata=self.config.ca_bundle)
        return True

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl(), limit=64, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                raise_for_status=False,
                headers={"User-Agent": self.user_agent},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _limit(self) -> None:
        if self._limiter is not None:
            await self._limiter.acquire()

    # --- auth -------------------------------------------------------------------------------

    def _secrets(self) -> tuple[str | None, ...]:
        """Every credential value this client knows, for redaction."""
        cfg = self.config
        basic = aiohttp.encode_basic_auth(cfg.username, cfg.password or "") if cfg.username else None
        return (
            cfg.client_secret,
            cfg.token,
            cfg.password,
            self._token,
            basic,
            basic.removeprefix("Basic ") if basic else None,
        )

    def _describe(self, text: str, content_type: str) -> str:
        return describe_body(text, content_type, self._secrets())

    def _clean(self, text: str | None) -> str | None:
        """Airbyte's words from a 200 answer (a failure reason), redacted and bounded."""
        return None if text is None else bounded(redact(text, self._secrets()))

    async def _bearer(self, rejected: str | None = None) -> str:
        """A token for client credentials: cached, refreshed early, fetched once at a time.

        `rejected` is a token the server just answered 401 to: it is replaced, unless another
        caller already replaced it while this one waited for the lock. A failed fetch is
        answered again without a request until its backoff ends.
        """
        async with self._token_lock:
            fresh = self._token is not None and time.monotonic() < self._token_refresh_at
            if fresh and self._token != rejected:
                return self._token  # type: ignore[return-value]
            if self._token_fault is not None and time.monotonic() < self._token_retry_at:
                raise self._token_fault
            self._last_token, self._token = self._token or self._last_token, None
            try:
                token, lifetime = await self._fetch_token()
            except _TokenFault as fault:
                self._token_faults += 1
                backoff = TOKEN_RETRY_BASE * 2 ** min(self._token_faults - 1, 10)
                self._token_fault = fault
                self._token_retry_at = time.monotonic() + min(TOKEN_RETRY_MAX, backoff)
                raise
            self._token_fault, self._token_faults = None, 0
            self._token = token
            self._token_refresh_at = time.monotonic() + lifetime - refresh_margin(lifetime)
            return token

    async def _fetch_token(self) -> tuple[str, float]:
        """One token request: the token and its lifetime, or a _TokenFault that says the token
        endpoint is where it went wrong."""
        # The server reads `grant-type` (its own wire-format test); its published document
        # lists `grant_type` as required. We follow the server.
        body = {
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "grant-type": "client_credentials",
        }
        self._on_token_fetch(self.config.host)
        await self._limit()
        try:
            async with self.session.post(self.config.token_endpoint, json=body) as response:
                text = await response.text()
                status, content_type = response.status, response.content_type
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise _TokenFault(at.Problem(at.TIMEOUT, "the token endpoint did not answer in time")) from None
        except aiohttp.ClientError as exc:
            why = self._unreachable(f"the token endpoint could not be reached: {_network_fault(exc)}")
            raise _TokenFault(why) from None
        detail = f"token endpoint answered {status}: {self._describe(text, content_type)}"
        if status in (400, 401, 403):
            raise _TokenFault(at.Problem(at.AUTH_FAILED, f"Airbyte rejected the credentials: {detail}"))
        if status >= 300:
            kind = at.RATE_LIMITED if status == 429 else at.SERVER_ERROR if status >= 500 else at.CLIENT_ERROR
            raise _TokenFault(at.Problem(kind, detail, status))
        no_token = _TokenFault(at.Problem(at.MALFORMED, "token endpoint answered without an access_token"))
        try:
            payload = json.loads(text)
            token = payload["access_token"]
        except (ValueError, KeyError, TypeError):
            raise no_token from None
        if not isinstance(token, str) or not token:
            raise no_token
        expires_in = payload.get("expires_in")
        usable = type(expires_in) in (int, float) and expires_in > 0  # not a bool, not a string
        return token, float(expires_in) if usable else DEFAULT_TOKEN_LIFETIME

    async def _headers(self, rejected: str | None = None) -> dict[str, str]:
        cfg = self.config
        if cfg.client_id:
            return {"Authorization": f"Bearer {await self._bearer(rejected)}"}
        if cfg.token:
            return {"Authorization": f"Bearer {cfg.token}"}
        if cfg.username:
            return {"Authorization": aiohttp.encode_basic_auth(cfg.username, cfg.password or "")}
        return {}

    # --- one call ---------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        job_read: bool,
        body: Any = None,
        writes: bool = False,
        server_time: list[float] | None = None,
        relogin: frozenset[int] = RELOGIN,
    ) -> str | at.Problem:
        """One API call's body, or the Problem; a 401 with client credentials re-fetches the
        token once and retries. `writes`: the call changes something in Airbyte, so the
        `before_write` fence runs right before it is sent."""
        try:
            rejected: str | None = None
            for attempt in (1, 2):
                headers = {"Accept": "application/json", **await self._headers(rejected)}
                await self._limit()
                if writes:
                    self._before_write()
                async with self.session.request(
                    method, f"{self.config.url}{path}", headers=headers, json=body
                ) as response:
                    text = await response.text()
                    if response.status in relogin and attempt == 1 and self.config.client_id:
                        rejected = headers["Authorization"].removeprefix("Bearer ")
                        continue
                    if response.status >= 300:
                        return self._problem_for(
                            response.status, text, response.content_type, response.headers, job_read=job_read
                        )
                    if server_time is not None:  # Airbyte's clock when it answered: its Date header
                        when = http_date(response.headers.get("Date"))
                        if when is not None:
                            server_time.append(when)
                    return text
            raise AssertionError("unreachable")  # pragma: no cover
        except _TokenFault as fault:
            return fault.problem
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            return self._unreachable(f"TLS failure talking to {self.config.host}: {exc}")
        except aiohttp.ClientConnectorDNSError:
            return at.Problem(at.UNREACHABLE, f"cannot resolve {self.config.host}")
        except aiohttp.ClientConnectorError as exc:
            return self._unreachable(f"cannot connect to {self.config.host}: {exc.os_error}")
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return at.Problem(at.TIMEOUT, f"no answer from {self.config.host} in time")
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            return at.Problem(at.UNREACHABLE, f"connection to {self.config.host} broke: {type(exc).__name__}")
        except aiohttp.ClientError as exc:
            return at.Problem(at.UNREACHABLE, f"request to {self.config.host} failed: {type(exc).__name__}")

    def _unreachable(self, text: str) -> at.Problem:
        return at.Problem(at.UNREACHABLE, bounded(redact(text, self._secrets())))

    def _problem_for(
        self, status: int, text: str, content_type: str, headers: Mapping[str, str], job_read: bool
    ) -> at.Problem:
        detail = f"{status} {self._describe(text, content_type)}"
        if status == 429:
            retry_after = retry_after_seconds(headers.get("Retry-After"))
            return at.Problem(at.RATE_LIMITED, f"rate limited: {detail}", status, retry_after)
        if status >= 500:
            return at.Problem(at.SERVER_ERROR, detail, status)
        if status == 401:
            return at.Problem(at.AUTH_FAILED, f"Airbyte rejected the credentials: {detail}", status)
        # Airbyte answers an unknown or foreign job id with 403, 404 or 409 depending on the path.
        if job_read and status in (403, 404, 409):
            return at.Problem(at.NOT_FOUND, detail, status)
        if status == 409:
            return at.Problem(at.CONFLICT, detail, status)
        return at.Problem(at.CLIENT_ERROR, detail, status)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _network_fault(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return str(exc.os_error)
    return type(exc).__name__


def malformed(what: str) -> at.Problem:
    return at.Problem(at.MALFORMED, f"Airbyte answered {what}")


def job_id_of(value: Any) -> int | None:
    """A usable job id: a positive JSON integer (never a bool, a string or null)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None
