"""Airbyte's public API over aiohttp: one session and token cache per server and credentials.

Every call returns a Job or a typed Problem; nothing here raises for an HTTP or network fault.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import email.utils
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp

from . import airbyte_types as at
from .rate_limit import RateLimiter
from .server_config import ServerConfig

log = logging.getLogger(__name__)

USER_AGENT = "airbyte-watch/0.1.0"
TOKEN_REFRESH_MARGIN = 60.0  # refresh this long before expires_in runs out, as Airbyte's SDK does


class _AuthRejected(Exception):
    """The token endpoint refused the client credentials."""


class AirbyteClient:
    def __init__(self, config: ServerConfig, request_timeout: float = 15.0,
                 limiter: RateLimiter | None = None,
                 on_token_fetch: Callable[[str], None] = lambda host: None,
                 user_agent: str = USER_AGENT,
                 before_write: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        self.config = config
        self.user_agent = user_agent
        self._before_write = before_write  # leader election's fence: raises if we may not write
        self._limiter = limiter
        self._on_token_fetch = on_token_fetch
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_expires_at = 0.0  # monotonic; 0 = fetch before use
        self._token_lock = asyncio.Lock()

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

    async def __aenter__(self) -> AirbyteClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _limit(self) -> None:
        if self._limiter is not None:
            await self._limiter.acquire()

    # --- auth -------------------------------------------------------------------------------

    async def _bearer(self, rejected: str | None = None) -> str:
        """A token for client credentials: cached, refreshed early, fetched once at a time.

        `rejected` is a token the server just answered 401 to: it is replaced, unless another
        caller already replaced it while this one waited for the lock.
        """
        async with self._token_lock:
            fresh = self._token is not None and time.monotonic() < self._token_expires_at
            if fresh and self._token != rejected:
                return self._token  # type: ignore[return-value]
            self._token = None
            body = {
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret,
                "grant-type": "client_credentials",
            }
            self._on_token_fetch(self.config.host)
            await self._limit()
            async with self.session.post(self.config.token_endpoint, json=body) as response:
                text = await response.text()
                if response.status in (400, 401, 403):
                    raise _AuthRejected(f"token endpoint answered {response.status}: {_detail(text)}")
                if response.status >= 300:
                    raise _HttpProblem(response.status, text, response.headers)
            try:
                payload = json.loads(text)
                token = payload["access_token"]
            except (ValueError, KeyError, TypeError):
                raise _Malformed("token endpoint answered without an access_token") from None
            expires_in = payload.get("expires_in")
            lifetime = float(expires_in) if isinstance(expires_in, int | float) else float("inf")
            self._token = str(token)
            self._token_expires_at = time.monotonic() + lifetime - TOKEN_REFRESH_MARGIN
            return self._token

    async def _headers(self, rejected: str | None = None) -> dict[str, str]:
        cfg = self.config
        if cfg.client_id:
            return {"Authorization": f"Bearer {await self._bearer(rejected)}"}
        if cfg.token:
            return {"Authorization": f"Bearer {cfg.token}"}
        if cfg.username:
            return {"Authorization": aiohttp.encode_basic_auth(cfg.username, cfg.password or "")}
        return {}

    # --- calls ------------------------------------------------------------------------------

    async def get_job(self, job_id: int) -> at.Job | at.Problem:
        """GET /jobs/{id}, or the config API's POST /jobs/get."""
        if self.config.api == "config":
            answer = await self._call("POST", "/jobs/get", job_read=True, body={"id": job_id})
            return answer if isinstance(answer, at.Problem) else _parse_config_job(answer, job_id)
        answer = await self._call("GET", f"/jobs/{job_id}", job_read=True)
        return answer if isinstance(answer, at.Problem) else _parse_job(answer, job_id)

    async def cancel_job(self, job_id: int) -> str | at.Problem:
        """DELETE /jobs/{id}: "cancelled", or "finished" when Airbyte says it is not running (409).

        Airbyte cancels whatever its connection runs now, so callers read the job first and
        cancel only a job they saw still running.
        """
        self._before_write()
        if self.config.api == "config":
            answer = await self._call("POST", "/jobs/cancel", job_read=False, body={"id": job_id})
        else:
            answer = await self._call("DELETE", f"/jobs/{job_id}", job_read=False)
        if isinstance(answer, at.Problem):
            return "finished" if answer.kind == at.CONFLICT else answer
        return "cancelled"

    async def trigger_job(self, connection_id: str, job_type: str) -> at.Job | at.Problem:
        """POST /jobs: start a job; a 409 means the connection runs one already."""
        self._before_write()
        if self.config.api == "config":
            path, body = "/connections/sync", {"connectionId": connection_id}
            if job_type != "sync":
                path = "/connections/reset"
            answer = await self._call("POST", path, job_read=False, body=body)
            return answer if isinstance(answer, at.Problem) else _parse_config_job(answer, 0)
        body = {"connectionId": connection_id, "jobType": job_type}
        answer = await self._call("POST", "/jobs", job_read=False, body=body)
        return answer if isinstance(answer, at.Problem) else _parse_job(answer, 0)

    async def list_jobs(self, connection_id: str, since: str | None = None) -> list[at.Job] | at.Problem:
        """GET /jobs for a connection, newest first; `since`: only jobs created at or after it."""
        if self.config.api == "config":
            return await self._list_config_jobs(connection_id, since)
        query = {"connectionId": connection_id, "orderBy": "createdAt|DESC", "limit": "100"}
        if since:
            query["createdAtStart"] = since
        answer = await self._call("GET", f"/jobs?{urlencode(query)}", job_read=False)
        if isinstance(answer, at.Problem):
            return answer
        try:
            data = json.loads(answer).get("data") or []
        except (ValueError, AttributeError):
            return at.Problem(at.MALFORMED, "Airbyte answered the job list with a body that is not JSON")
        jobs = [
            _job_from(item, 0)
            for item in data
            if isinstance(item, dict) and isinstance(item.get("status"), str)
        ]
        return jobs

    async def _list_config_jobs(self, connection_id: str, since: str | None) -> list[at.Job] | at.Problem:
        """The config API's POST /jobs/list for a connection, newest first, filtered by `since`."""
        body = {"configTypes": ["sync", "reset_connection", "clear"], "configId": connection_id}
        answer = await self._call("POST", "/jobs/list", job_read=False, body=body)
        if isinstance(answer, at.Problem):
            return answer
        try:
            items = json.loads(answer).get("jobs") or []
        except (ValueError, AttributeError):
            return at.Problem(at.MALFORMED, "Airbyte answered the job list with a body that is not JSON")
        start = datetime.datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() if since else 0.0
        jobs = []
        for item in items:
            job = item.get("job") if isinstance(item, dict) else None
            if (
                isinstance(job, dict)
                and isinstance(job.get("status"), str)
                and (job.get("createdAt") or 0) >= start
            ):
                parsed = _parse_config_job(json.dumps({"job": job, "attempts": []}), 0)
                if isinstance(parsed, at.Job):
                    jobs.append(dataclasses.replace(parsed, attempts=None))
        return sorted(jobs, key=lambda j: -j.job_id)

    async def _call(self, method: str, path: str, job_read: bool, body: Any = None) -> str | at.Problem:
        """One API call's body, or the Problem; a 401 with client credentials re-fetches the
        token once and retries."""
        try:
            rejected: str | None = None
            for attempt in (1, 2):
                headers = {"Accept": "application/json", **await self._headers(rejected)}
                await self._limit()
                async with self.session.request(
                    method, f"{self.config.url}{path}", headers=headers, json=body
                ) as response:
                    text = await response.text()
                    if response.status == 401 and attempt == 1 and self.config.client_id:
                        rejected = headers["Authorization"].removeprefix("Bearer ")
                        continue
                    if response.status >= 300:
                        return _problem_for(response.status, text, response.headers, job_read=job_read)
                    return text
            raise AssertionError("unreachable")  # pragma: no cover
        except _AuthRejected as exc:
            return at.Problem(at.AUTH_FAILED, f"Airbyte rejected the credentials: {exc}")
        except _HttpProblem as exc:
            return _problem_for(exc.status, exc.text, exc.headers, job_read=False)
        except _Malformed as exc:
            return at.Problem(at.MALFORMED, str(exc))
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            return at.Problem(at.UNREACHABLE, f"TLS failure talking to {self.config.host}: {exc}")
        except aiohttp.ClientConnectorDNSError:
            return at.Problem(at.UNREACHABLE, f"cannot resolve {self.config.host}")
        except aiohttp.ClientConnectorError as exc:
            return at.Problem(at.UNREACHABLE, f"cannot connect to {self.config.host}: {exc.os_error}")
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return at.Problem(at.TIMEOUT, f"no answer from {self.config.host} in time")
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            return at.Problem(at.UNREACHABLE, f"connection to {self.config.host} broke: {type(exc).__name__}")
        except aiohttp.ClientError as exc:
            return at.Problem(at.UNREACHABLE, f"request to {self.config.host} failed: {type(exc).__name__}")


class _HttpProblem(Exception):
    def __init__(self, status: int, text: str, headers: Mapping[str, str]) -> None:
        super().__init__(status)
        self.status, self.text, self.headers = status, text, headers


class _Malformed(Exception):
    pass


def _parse_job(text: str, job_id: int) -> at.Job | at.Problem:
    try:
        body = json.loads(text)
    except ValueError:
        return at.Problem(at.MALFORMED, "Airbyte answered 200 with a body that is not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        return at.Problem(at.MALFORMED, "Airbyte answered 200 without a job status")
    return _job_from(body, job_id)


def _job_from(body: dict[str, Any], job_id: int) -> at.Job:
    """A public-API JobResponse."""
    return at.Job(
        job_id=int(body.get("jobId", job_id)),
        status=body["status"],
        job_type=_opt_str(body.get("jobType")),
        connection_id=_opt_str(body.get("connectionId")),
        rows_synced=_opt_int(body.get("rowsSynced")),
        bytes_synced=_opt_int(body.get("bytesSynced")),
    )


def _parse_config_job(text: str, job_id: int) -> at.Job | at.Problem:
    """The config API's JobInfoRead: the job, its attempts and their failure reasons."""
    try:
        body = json.loads(text)
    except ValueError:
        return at.Problem(at.MALFORMED, "Airbyte answered 200 with a body that is not JSON")
    job = body.get("job") if isinstance(body, dict) else None
    if not isinstance(job, dict) or not isinstance(job.get("status"), str):
        return at.Problem(at.MALFORMED, "Airbyte answered 200 without a job status")
    attempts = body.get("attempts") if isinstance(body.get("attempts"), list) else []
    stats = job.get("aggregatedStats") if isinstance(job.get("aggregatedStats"), dict) else {}
    return at.Job(
        job_id=_opt_int(job.get("id")) or job_id,
        status=job["status"],
        # The config API says reset_connection where the public API says reset.
        job_type={"reset_connection": "reset"}.get(job.get("configType"), _opt_str(job.get("configType"))),
        connection_id=_opt_str(job.get("configId")),
        rows_synced=_opt_int(stats.get("recordsCommitted")),
        bytes_synced=_opt_int(stats.get("bytesCommitted")),
        attempts=len(attempts),
        failure=_last_failure(attempts),
    )


def _last_failure(attempts: list[Any]) -> str | None:
    """The last attempt's first failure as "origin type: message", Airbyte's own words."""
    for entry in reversed(attempts):
        attempt = entry.get("attempt") if isinstance(entry, dict) else None
        summary = attempt.get("failureSummary") if isinstance(attempt, dict) else None
        failures = summary.get("failures") if isinstance(summary, dict) else None
        if failures and isinstance(failures[0], dict):
            first = failures[0]
            kind = " ".join(str(first[k]) for k in ("failureOrigin", "failureType") if first.get(k))
            message = first.get("externalMessage") or first.get("internalMessage") or ""
            return f"{kind}: {message}" if kind and message else (kind or message or None)
        if attempt is not None:
            return None  # the last attempt carries no failure
    return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _detail(text: str) -> str:
    """Airbyte's own words from an error body: problem `detail` and `data.message`, or `message`."""
    try:
        body = json.loads(text)
    except ValueError:
        return (text.strip()[:200] or "empty body") if "<html" not in text.lower() else "HTML page"
    if not isinstance(body, dict):
        return str(body)[:200]
    parts = [body.get("title"), body.get("detail")]
    data = body.get("data")
    if isinstance(data, dict):
        parts.append(data.get("message"))
    parts.append(body.get("message"))
    words = [str(p) for p in parts if p]
    return ": ".join(dict.fromkeys(words)) or "no detail"


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


def _problem_for(status: int, text: str, headers: Mapping[str, str], job_read: bool) -> at.Problem:
    detail = f"{status} {_detail(text)}"
    if status == 429:
        return at.Problem(
            at.RATE_LIMITED,
            f"rate limited: {detail}",
            status,
            retry_after_seconds(headers.get("Retry-After")),
        )
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


class ClientPool:
    """One AirbyteClient per server + credentials, shared by every watch that uses them, and
    one request budget per server host, shared by all its clients."""

    def __init__(self, request_timeout: float = 15.0, max_requests_per_second: float = 100.0,
                 on_token_fetch: Callable[[str], None] = lambda host: None,
                 user_agent: str = USER_AGENT,
                 before_write: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        self._user_agent = user_agent
        self._before_write = before_write
        self._clients: dict[str, AirbyteClient] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._request_timeout = request_timeout
        self._rate = max_requests_per_second
        self._on_token_fetch = on_token_fetch

    def get(self, config: ServerConfig) -> AirbyteClient:
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

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self._clients.values()))
        self._clients.clear()
