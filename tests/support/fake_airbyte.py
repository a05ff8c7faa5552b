"""A fake Airbyte (public API and the legacy config API), for tests and the demo.

It does what the server does for everything the operator uses (tests/support/AIRBYTE.md lists
each behaviour with the airbyte-platform file it comes from), and every request it receives and
every answer it sends is checked against Airbyte's published contract (`airbyte_contract`).
Jobs move through scripted statuses, by poll count or by time. It is a test double: it is never
the thing under test.

Run it alone: ``python -m tests.support.fake_airbyte --port 8001 --demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlencode

from aiohttp import web

from tests.support import airbyte_contract as contract
from tests.support.fake_jobs import CONFIG_TYPE, FINAL, FakeJob, JobQuery, Step, epoch

__all__ = ["FINAL", "BackgroundServer", "FakeAirbyte", "FakeJob", "Fault", "RunningFake", "Step"]


@dataclass
class Fault:
    """The next `count` matching requests get this answer instead of the real one."""

    status: int
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    count: int = 1
    path_contains: str = ""
    delay: float = 0.0  # wait this long before answering (a slow server)
    method: str = ""  # only requests with this method ("" = any)
    passthrough: bool = False  # after the delay, answer as usual (a slow but working server)
    reset: bool = False  # start a 200 body, then drop the connection mid-body
    content_type: str = "application/json"
    every: int = 0  # > 0: every n-th matching request gets it, for as long as the fault stays
    path_ends: str = ""  # only requests whose path ends so ("/jobs": the list, not a job)
    _seen: int = 0


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str | None
    at: float
    user_agent: str = ""


def json_answer(body: Any, status: int = 200) -> web.Response:
    """JSON as the server sends it: `Content-Type: application/json`, no charset parameter."""
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


def problem(status: int, title: str, detail: str, data: dict[str, Any] | None = None) -> web.Response:
    """A problem as the server's AbstractThrowableProblemHandler sends it: the problem fields of
    api-problems.yaml, as `application/json`."""
    body: dict[str, Any] = {
        "status": status,
        "type": contract.PROBLEM_TYPES[title],
        "title": title,
        "detail": detail,
    }
    if data is not None:
        body["data"] = data
    return json_answer(body, status=status)


def error_id(status: int) -> web.Response:
    """What the server's validation handlers send (bad JSON, a bad enum, a limit out of range):
    only an id to find the logged error by."""
    return json_answer({"errorId": str(uuid.uuid4())}, status=status)


def bad_request(message: str) -> web.Response:
    return problem(
        400,
        "bad-request",
        "The request could not be understood by the server due to malformed syntax.",
        {"message": message},
    )


class RequestCounts:
    """Airbyte requests by kind, and when each job was last served to the client (a GET of it or
    a row of a list): what the benchmark reads from /_fake/stats."""

    KINDS = ("token", "job_get", "job_list", "other")

    def __init__(self) -> None:
        self.by_kind = dict.fromkeys(self.KINDS, 0)
        self.last_served: dict[int, float] = {}
        self.rows_listed = 0

    @staticmethod
    def kind(prefix: str, method: str, path: str) -> str:
        if method == "POST" and path == f"{prefix}/applications/token":
            return "token"
        if method == "GET" and path == f"{prefix}/jobs":
            return "job_list"
        if method == "GET" and path.startswith(f"{prefix}/jobs/"):
            return "job_get"
        return "other"

    def served(self, body: Any) -> None:
        """Note the jobs of a 200 answer (a job, or a page of jobs) as served now."""
        try:
            answer = json.loads(body) if isinstance(body, bytes) else None
        except ValueError:
            return
        if not isinstance(answer, dict):
            return
        rows = answer["data"] if isinstance(answer.get("data"), list) else [answer]
        now = time.time()
        for row in rows:
            if isinstance(row, dict) and isinstance(row.get("jobId"), int):
                self.last_served[row["jobId"]] = now
        if "data" in answer:
            self.rows_listed += len(rows)

    def summary(self, jobs: Iterable[FakeJob], since: float | None) -> dict[str, Any]:
        """Read-only: no job's script is advanced by asking."""
        body: dict[str, Any] = {
            "requests": sum(self.by_kind.values()),
            "byKind": dict(self.by_kind),
            "rowsListed": self.rows_listed,
            "jobsKnown": sum(1 for _ in jobs),
            "jobsServed": len(self.last_served),
        }
        if since is not None:
            body["jobsServedSince"] = sum(1 for t in self.last_served.values() if t >= since)
        return body


def scripted_end(entry: dict[str, Any]) -> list[Step]:
    """A job of a jobs file: running until `finishAt` (epoch seconds), then its `final` status."""
    return [Step("running", until=entry["finishAt"]), Step(entry.get("final", "succeeded"))]


NOT_RUNNING = {"message": "Job is not currently running"}
UNAUTHORIZED = ("invalid-api-key", "The API key in the Authorization header is invalid.")


class FakeAirbyte:
    """The server's state and routes. Thread-safe enough for a test thread to poke at it.

    Every request and every answer that is not an injected Fault is checked against Airbyte's
    published contract (`airbyte_contract`); what fails lands in `violations`, and RunningFake
    fails the test when it stops.
    """

    def __init__(
        self,
        prefix: str = "/v1",
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        static_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token_lifetime: int | None = 900,  # None: answer without expires_in, tokens never expire
    ) -> None:
        self.prefix = prefix.rstrip("/")
        self.client_id, self.client_secret = client_id, client_secret
        self.static_token = static_token
        self.username, self.password = username, password
        self.token_lifetime = token_lifetime
        self.jobs: dict[int, FakeJob] = {}
        # Trigger mode: the script of jobs started on a connection with POST /jobs.
        self.connection_scripts: dict[str, list[Step]] = {}
        self._next_job_id = 500_000
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.lock = threading.Lock()
        self.keep_requests = True  # False: count requests only (a long benchmark would fill memory)
        self.shuffle_ties = True  # rows equal in the sort field: a new order on each request
        self.counts = RequestCounts()

    # --- scripting from tests ---------------------------------------------------------------

    def add_scripted(self, entry: dict[str, Any]) -> FakeJob:
        """One job of a jobs file (or of POST /_fake/jobs): running since `createdAt` (default:
        now) until `finishAt`, then its `final` status."""
        since = entry.get("createdAt")
        times = {"created": since, "updated": since} if since is not None else {}
        return self.add_job(int(entry["id"]), scripted_end(entry), rows=entry.get("rows", 0), **times)

    def add_job(
        self,
        job_id: int,
        steps: Iterable[Step | tuple[str, int | None]],
        rows: int = 0,
        bytes_: int = 0,
        **kwargs: Any,
    ) -> FakeJob:
        script = [s if isinstance(s, Step) else Step(s[0], polls=s[1]) for s in steps]
        job = FakeJob(job_id, script, rows=rows, bytes=bytes_, **kwargs)
        with self.lock:
            self.jobs[job_id] = job
        return job

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def job_gets(self, job_id: int) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.method == "GET" and r.path.endswith(f"/jobs/{job_id}"))

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def rotate_client(self, client_id: str, client_secret: str) -> None:
        """The administrator replaces the application: the old one is deleted, so its token
        request answers 401 and the tokens it was given stop working at once (Airbyte checks
        each token online against its identity provider), and the new client logs in."""
        with self.lock:
            self.client_id, self.client_secret = client_id, client_secret
            self.tokens.clear()

    def take_violations(self) -> list[str]:
        """The contract violations so far, forgotten: for tests that provoke one on purpose."""
        with self.lock:
            taken, self.violations = self.violations, []
        return taken

    # --- HTTP -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        # A benchmark's POST /_fake/jobs for 50,000 jobs is a few MB; aiohttp refuses over 1 MiB.
        app = web.Application(middlewares=[self._record_and_fault], client_max_size=64 * 2**20)
        p = self.prefix
        self._contract: dict[tuple[str, str], tuple[contract.Check | None, contract.Check | None]] = {
            ("POST", f"{p}/applications/token"): (contract.token_request, contract.token_response),
            ("GET", f"{p}/jobs/{{job_id}}"): (None, contract.job_response),
            ("DELETE", f"{p}/jobs/{{job_id}}"): (None, contract.job_response),
            ("POST", f"{p}/jobs"): (contract.job_create_request, contract.job_response),
            ("GET", f"{p}/jobs"): (None, contract.jobs_response),
            ("POST", "/api/v1/jobs/get"): (contract.job_id_request, contract.job_info_read),
            ("POST", "/api/v1/jobs/cancel"): (contract.job_id_request, contract.job_info_read),
            ("POST", "/api/v1/connections/sync"): (contract.connection_id_request, contract.job_info_read),
            ("POST", "/api/v1/connections/reset"): (contract.connection_id_request, contract.job_info_read),
            ("POST", "/api/v1/jobs/list"): (contract.job_list_request, contract.job_read_list),
        }
        app.router.add_post(f"{p}/applications/token", self._token)
        app.router.add_get(f"{p}/jobs/{{job_id}}", self._get_job)
        app.router.add_delete(f"{p}/jobs/{{job_id}}", self._cancel_job)
        app.router.add_post(f"{p}/jobs", self._start_job)
        app.router.add_get(f"{p}/jobs", self._list_jobs)
        # The legacy config API, always at /api/v1 (POST + JSON).
        app.router.add_post("/api/v1/jobs/get", self._config_get_job)
        app.router.add_post("/api/v1/jobs/cancel", self._config_cancel_job)
        app.router.add_post("/api/v1/connections/sync", self._config_sync)
        app.router.add_post("/api/v1/connections/reset", self._config_sync)
        app.router.add_post("/api/v1/jobs/list", self._config_list_jobs)
        app.router.add_get(f"{p}/health", self._health)
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_post("/_fake/jobs", self._load_jobs)
        return app

    @web.middleware
    async def _record_and_fault(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await handler(request)  # the harness's own calls: not Airbyte traffic
        kind = self.counts.kind(self.prefix, request.method, request.path)
        with self.lock:
            self.counts.by_kind[kind] += 1
            if self.keep_requests:
                self.requests.append(
                    Recorded(
                        request.method,
                        request.path,
                        request.headers.get("Authorization"),
                        time.monotonic(),
                        request.headers.get("User-Agent", ""),
                    )
                )
            fault = None
            for f in self.faults:
                if f.path_contains not in request.path or f.method not in ("", request.method):
                    continue
                if not request.path.endswith(f.path_ends):
                    continue
                if f.every > 0:  # a flaky server: every n-th request fails, the rest pass
                    f._seen += 1
                    if f._seen % f.every:
                        continue
                else:
                    f.count -= 1
                    if f.count <= 0:
                        self.faults.remove(f)
                fault = f
                break
        checks = self._contract.get(
            (
                request.method,
                request.match_info.route.resource.canonical if request.match_info.route.resource else "",
            )
        )
        if checks is not None:
            self._check(request, "request", checks[0], await self._request_body(request))
            if request.method == "GET" and request.path.endswith("/jobs"):
                self._check(request, "request", contract.list_jobs_query, request.query)
            if "{job_id}" in (request.match_info.route.resource.canonical or ""):  # type: ignore[union-attr]
                raw = request.match_info["job_id"]
                if not (raw.isdigit() and int(raw) < 2**63):
                    self._check(request, "request", lambda _: [f"jobId {raw!r} is not an int64"], None)
        if fault is not None and not fault.passthrough:
            return await self._faulty(request, fault, handler)
        answer = await (self._faulty(request, fault, handler) if fault is not None else handler(request))
        if checks is not None and isinstance(answer, web.Response):
            self._check_answer(request, answer, checks[1])
        if kind in ("job_get", "job_list") and isinstance(answer, web.Response) and answer.status == 200:
            self.counts.served(answer.body)
        return answer

    async def _request_body(self, request: web.Request) -> Any:
        raw = await request.read()  # aiohttp keeps it for the handler
        if request.content_type == "application/x-www-form-urlencoded":
            return dict(await request.post())
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def _check(self, request: web.Request, what: str, check: contract.Check | None, body: Any) -> None:
        found = check(body) if check is not None else []
        if found:
            with self.lock:
                self.violations += [f"{request.method} {request.path} {what}: {v}" for v in found]

    def _check_answer(self, request: web.Request, answer: web.Response, check: contract.Check | None) -> None:
        try:
            body = json.loads(answer.body) if isinstance(answer.body, bytes) else None
        except ValueError:
            body = None
        if answer.status < 300:
            self._check(request, "answer", check, body)
        else:
            self._check(
                request, "answer", lambda b: contract.error_body(answer.status, answer.content_type, b), body
            )

    async def _faulty(self, request: web.Request, fault: Fault, handler: Any) -> web.StreamResponse:
        if fault.passthrough:
            # Like a real server, finish the work even if the client hangs up meanwhile.
            async def slowly() -> web.StreamResponse:
                await request.read()  # the body arrived with the request; keep it
                await asyncio.sleep(fault.delay)
                return await handler(request)

            return await asyncio.shield(asyncio.ensure_future(slowly()))
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.reset:
            # Raw bytes: headers promising 500 bytes, a fragment of them, then a dropped connection.
            assert request.transport is not None
            request.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                b'{"jobId": 1, "sta'
            )
            request.transport.close()
            raise asyncio.CancelledError  # nothing more is to be written on this connection
        return web.Response(
            status=fault.status,
            text=fault.body or "",
            headers=fault.headers,
            content_type=fault.content_type,
        )

    # --- the public API ---------------------------------------------------------------------

    def _current_job(self, connection_id: str) -> FakeJob | None:
        """The job the connection runs now: the newest that is not final (one at a time)."""
        running = [
            j for j in self.jobs.values() if j.connection_id == connection_id and j.peek() not in FINAL
        ]
        return max(running, key=lambda j: (j.created, j.job_id), default=None)

    def _cancel_current(self, job: FakeJob) -> bool:
        """Cancel what the job's connection runs now, whatever job was named
        (SchedulerHandler.submitCancellationToWorker); False when nothing runs."""
        current = self._current_job(job.connection_id)
        if current is None:
            return False
        current.cancel()
        return True

    async def _cancel_job(self, request: web.Request) -> web.Response:
        """DELETE /jobs/{id}: cancel the connection's current job, answer with the job named."""
        if not self._authorized(request.headers.get("Authorization")):
            return problem(401, *UNAUTHORIZED)
        raw = request.match_info["job_id"]
        if not raw.isdigit():
            return bad_request(f"jobId {raw!r} is not an integer")
        with self.lock:
            job = self.jobs.get(int(raw))
            if job is None:
                return problem(
                    404,
                    "resource-not-found",
                    "The requested resource could not be found.",
                    {"resourceType": "job", "resourceId": raw},
                )
            if not self._cancel_current(job):
                return problem(409, "state-conflict", "State conflict", NOT_RUNNING)
            return json_answer(job.as_response(job.peek()))

    def _start(self, connection: str, job_type: str) -> FakeJob | web.Response:
        """A new job on the connection; 404 for an unknown connection, 409 while one runs."""
        with self.lock:
            if connection not in self.connection_scripts:
                return problem(
                    404,
                    "resource-not-found",
                    "The requested resource could not be found.",
                    {"resourceType": "connection", "resourceId": connection},
                )
            if self._current_job(connection) is not None:
                return problem(
                    409,
                    "try-again-later",
                    "Please try again later.",
                    {"message": f"A sync is already running for: {connection}"},
                )
            self._next_job_id += 1
            job = FakeJob(
                self._next_job_id,
                list(self.connection_scripts[connection]),
                connection_id=connection,
                job_type=job_type,
            )
            self.jobs[job.job_id] = job
        return job

    async def _start_job(self, request: web.Request) -> web.Response:
        """POST /jobs: sync, or a reset for reset and clear (both read back as `reset`); the
        server refuses refresh, and an unknown or missing jobType fails its JSON binding."""
        if not self._authorized(request.headers.get("Authorization")):
            return problem(401, *UNAUTHORIZED)
        try:
            body = await request.json()
        except ValueError:
            return error_id(422)
        if not isinstance(body, dict) or not isinstance(body.get("connectionId"), str):
            return error_id(422)
        job_type = body.get("jobType")
        if job_type not in contract.JOB_TYPES:
            return error_id(422)
        if job_type == "refresh":
            return problem(
                422,
                "unprocessable-entity",
                "The body of the request was not understood",
                {"message": "Refreshes are not supported in the public API"},
            )
        started = self._start(body["connectionId"], "sync" if job_type == "sync" else "reset")
        return started if isinstance(started, web.Response) else json_answer(started.as_response("pending"))

    async def _list_jobs(self, request: web.Request) -> web.Response:
        """GET /jobs: filters, order (createdAt ascending unless asked), offset paging and the
        next/previous links as JobsResponseMapper and PaginationMapper build them."""
        if not self._authorized(request.headers.get("Authorization")):
            return problem(401, *UNAUTHORIZED)
        q = request.query
        try:
            limit, offset = int(q.get("limit", "20")), int(q.get("offset", "0"))
            dates = {
                k: epoch(q[k])
                for k in ("createdAtStart", "createdAtEnd", "updatedAtStart", "updatedAtEnd")
                if k in q
            }
        except ValueError:
            return bad_request("a query parameter could not be converted")  # Micronaut's conversion error
        if not (1 <= limit <= 100 and offset >= 0):
            return error_id(400)  # a bean-validation violation (InvalidInputExceptionHandler)
        job_type, status = q.get("jobType"), q.get("status")
        if (job_type is not None and job_type not in contract.JOB_TYPES) or (
            status is not None and status not in contract.JOB_STATUSES
        ):
            return bad_request("a query parameter could not be converted")
        order = re.search(r"([a-zA-Z0-9]+)\|(ASC|DESC)", q.get("orderBy", "createdAt|ASC"))
        if order is None or order.group(1) not in ("createdAt", "updatedAt"):
            return bad_request(f"Invalid order by clause provided: {q.get('orderBy')}")
        query = JobQuery(
            connection_id=q.get("connectionId"),
            config_types=frozenset({CONFIG_TYPE[job_type]}) if job_type else None,
            statuses=frozenset({status}) if status else None,
            created_start=dates.get("createdAtStart"),
            created_end=dates.get("createdAtEnd"),
            updated_start=dates.get("updatedAtStart"),
            updated_end=dates.get("updatedAtEnd"),
            order_field=order.group(1),
            descending=order.group(2) == "DESC",
            limit=limit,
            offset=offset,
        )
        with self.lock:
            page, _ = query.run(self.jobs.values(), self.shuffle_ties)
            data = [job.as_response(status) for job, status in page]
        # The links keep only jobType and connectionId of the query (the other filters are lost),
        # then limit and offset; "" where there is no page.
        base = f"{request.scheme}://{request.host}{self.prefix.removesuffix('/v1')}/v1/jobs"
        keep = {k: q[k] for k in ("jobType", "connectionId") if k in q}
        link = lambda at: f"{base}?{urlencode({**keep, 'limit': limit, 'offset': at})}"  # noqa: E731
        return json_answer(
            {
                "data": data,
                "next": link(offset + limit) if data else "",
                "previous": link(max(offset - limit, 0)) if offset != 0 else "",
            }
        )

    async def _get_job(self, request: web.Request) -> web.Response:
        if not self._authorized(request.headers.get("Authorization")):
            return problem(401, *UNAUTHORIZED)
        raw = request.match_info["job_id"]
        if not raw.isdigit():
            return bad_request(f"jobId {raw!r} is not an integer")
        with self.lock:
            job = self.jobs.get(int(raw))
            status = job.current() if job else None
        if job is None or status is None:
            return problem(
                404,
                "resource-not-found",
                "The requested resource could not be found.",
                {"resourceType": "job", "resourceId": raw},
            )
        return json_answer(job.as_response(status))

    async def _token(self, request: web.Request) -> web.Response:
        if request.content_type == "application/x-www-form-urlencoded":
            body: Any = dict(await request.post())
        else:
            try:
                body = await request.json()
            except ValueError:
                return error_id(422)  # InvalidJsonExceptionHandler
        if (
            not isinstance(body, dict)
            or self.client_id is None
            or (body.get("client_id"), body.get("client_secret")) != (self.client_id, self.client_secret)
        ):
            return problem(401, *UNAUTHORIZED)
        token = secrets.token_urlsafe(24)
        lifetime = self.token_lifetime
        with self.lock:
            self.tokens[token] = time.monotonic() + (lifetime if lifetime is not None else float("inf"))
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if lifetime is not None:
            answer["expires_in"] = lifetime
        return json_answer(answer)

    def _authorized(self, header: str | None) -> bool:
        if self.client_id is None and self.static_token is None and self.username is None:
            return True  # an OSS server without auth
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme == "Bearer":
            if self.static_token is not None and secrets.compare_digest(value, self.static_token):
                return True
            with self.lock:
                expiry = self.tokens.get(value)
            return expiry is not None and time.monotonic() < expiry
        if scheme == "Basic" and self.username is not None:
            expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return secrets.compare_digest(value, expected)
        return False

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="Successful operation")

    async def _stats(self, request: web.Request) -> web.Response:
        """Requests by kind, and how many jobs the client was told about, for the benchmark (which
        runs the fake in its own process). `?since=EPOCH`: also how many jobs were served (in a
        GET or a list row) at or after that time; `?jobs=1`: also each job's figures."""
        since = float(request.query["since"]) if "since" in request.query else None
        with self.lock:
            body = self.counts.summary(self.jobs.values(), since)
            if request.query.get("jobs"):
                body["jobs"] = {
                    str(j.job_id): {
                        "gets": j.gets,
                        "firstGet": j.first_get,
                        "finalSeen": j.final_at,
                        "served": self.counts.last_served.get(j.job_id),
                    }
                    for j in self.jobs.values()
                }
        return json_answer(body)

    async def _load_jobs(self, request: web.Request) -> web.Response:
        """POST /_fake/jobs: the --jobs-file loader over HTTP, so a benchmark can say when jobs end
        once its watches are running. A job already here keeps its status history and is only
        re-timed: it runs until the new `finishAt`, then takes the new `final` status."""
        entries = await request.json()
        with self.lock:
            for entry in entries:
                job = self.jobs.get(int(entry["id"]))
                if job is not None and job.peek() not in FINAL:
                    job.steps[job._index :] = scripted_end(entry)
        for entry in entries:
            if int(entry["id"]) not in self.jobs:
                self.add_scripted(entry)
        return json_answer({"loaded": len(entries)})

    # --- the config API ---------------------------------------------------------------------

    @staticmethod
    def _known_exception(status: int, message: str, exception: str) -> web.Response:
        return json_answer({"message": message, "exceptionClassName": exception}, status=status)

    async def _config_sync(self, request: web.Request) -> web.Response:
        """POST /api/v1/connections/sync or /reset: a new job, as a JobInfoRead."""
        if not self._authorized(request.headers.get("Authorization")):
            return json_answer({"message": "Unauthorized"}, status=401)
        body = await request.json()
        reset = request.path.endswith("/reset")
        started = self._start(str(body.get("connectionId", "")), "reset" if reset else "sync")
        if isinstance(started, web.Response):
            data = json.loads(started.text or "{}").get("data", {})
            return self._known_exception(
                started.status,
                data.get("message") or "Could not find connection",
                "io.airbyte.commons.server.errors.ValueConflictKnownException",
            )
        return json_answer(started.as_config_response("pending"))

    async def _config_list_jobs(self, request: web.Request) -> web.Response:
        """POST /api/v1/jobs/list: configTypes required; pageSize 200 and newest first unless asked
        (JobHistoryHandler.listJobsFor, JobServiceDataImpl)."""
        if not self._authorized(request.headers.get("Authorization")):
            return json_answer({"message": "Unauthorized"}, status=401)
        body = await request.json()
        types = body.get("configTypes") if isinstance(body, dict) else None
        if not types:
            return self._known_exception(
                422, "configType cannot be null.", "java.lang.IllegalArgumentException"
            )
        paging = body.get("pagination") or {}
        method = body.get("orderByMethod")
        query = JobQuery(
            connection_id=body.get("configId"),
            config_types=frozenset(types),
            statuses=frozenset(body["statuses"]) if body.get("statuses") else None,
            created_start=epoch(body["createdAtStart"]) if body.get("createdAtStart") else None,
            created_end=epoch(body["createdAtEnd"]) if body.get("createdAtEnd") else None,
            updated_start=epoch(body["updatedAtStart"]) if body.get("updatedAtStart") else None,
            updated_end=epoch(body["updatedAtEnd"]) if body.get("updatedAtEnd") else None,
            order_field=(body.get("orderByField") or "createdAt") if method else "createdAt",
            descending=method != "ASC",
            limit=paging.get("pageSize") or 200,
            offset=paging.get("rowOffset") or 0,
        )
        with self.lock:
            page, total = query.run(self.jobs.values(), self.shuffle_ties)
            items = [{"job": job.as_config_response(status)["job"], "attempts": []} for job, status in page]
        return json_answer({"jobs": items, "totalJobCount": total})

    async def _config_job(self, request: web.Request) -> tuple[FakeJob | None, web.Response | None]:
        if not self._authorized(request.headers.get("Authorization")):
            return None, json_answer({"message": "Unauthorized"}, status=401)
        try:
            job_id = int((await request.json())["id"])
        except (ValueError, KeyError, TypeError):
            return None, json_answer(
                {
                    "message": "Invalid input",
                    "exceptionClassName": "InvalidInputException",
                    "validationErrors": [{"propertyPath": "id", "message": "must be an integer"}],
                },
                status=422,
            )
        job = self.jobs.get(job_id)
        if job is None:
            return None, json_answer(
                {
                    "id": str(job_id),
                    "message": f"Could not find job with id: {job_id}",
                    "exceptionClassName": "io.airbyte.commons.server.errors.NotFoundKnownException",
                },
                status=404,
            )
        return job, None

    async def _config_get_job(self, request: web.Request) -> web.Response:
        job, error = await self._config_job(request)
        if error is not None or job is None:
            return error or web.Response(status=500)
        with self.lock:
            status = job.current()
        return json_answer(job.as_config_response(status))

    async def _config_cancel_job(self, request: web.Request) -> web.Response:
        """POST /api/v1/jobs/cancel: connection-scoped, like the public DELETE."""
        job, error = await self._config_job(request)
        if error is not None or job is None:
            return error or web.Response(status=500)
        with self.lock:
            if not self._cancel_current(job):
                return self._known_exception(
                    409,
                    NOT_RUNNING["message"],
                    "io.airbyte.commons.server.errors.ValueConflictKnownException",
                )
            return json_answer(job.as_config_response(job.peek()))


class BackgroundServer:
    """An aiohttp app served on a loopback port from a background thread with its own loop."""

    def __init__(self, app: Callable[[], web.Application], port: int = 0, ssl_context: Any = None) -> None:
        self._app = app
        self._port = port
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, ssl_context=self._ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class RunningFake(BackgroundServer):
    """A FakeAirbyte served on a loopback port from a background thread."""

    def __init__(self, fake: FakeAirbyte, port: int = 0, ssl_context: Any = None) -> None:
        super().__init__(fake.app, port, ssl_context)
        self.fake = fake

    @property
    def url(self) -> str:
        return f"{self.base}{self.fake.prefix}"

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        violations = self.fake.take_violations()
        if violations and exc[0] is None:
            raise AssertionError("Airbyte contract violated:\n  " + "\n  ".join(violations))


DEMO_JOBS: dict[int, list[Step]] = {
    # Referenced by deploy/examples/: each ends in a different way.
    101: [Step("pending", seconds=2), Step("running", seconds=6), Step("succeeded")],
    102: [Step("running", seconds=5), Step("failed")],
    103: [Step("queued", seconds=3), Step("running", seconds=3), Step("cancelled")],
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Airbyte public API.")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--prefix", default="/api/public/v1")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--demo", action="store_true", help="serve the demo's scripted jobs")
    parser.add_argument(
        "--jobs-file",
        help='JSON list of {"id": N, "finishAt": epoch, "final": "succeeded", "createdAt": epoch}: '
        "running since createdAt (default: now) until finishAt (POST the same list to /_fake/jobs "
        "to re-time them later)",
    )
    parser.add_argument(
        "--count-only",
        action="store_true",
        help="count requests by kind without keeping each one (long benchmark runs)",
    )
    parser.add_argument(
        "--stable-ties",
        action="store_true",
        help="rows equal in the sort field in one order (by id) on every request, as a database may "
        "also give them: the benchmark's floor pages by plain offset (default: a new order each time)",
    )
    args = parser.parse_args()
    fake = FakeAirbyte(args.prefix, client_id=args.client_id, client_secret=args.client_secret)
    fake.keep_requests = not args.count_only
    fake.shuffle_ties = not args.stable_ties
    if args.jobs_file:
        with open(args.jobs_file) as f:
            for job in json.load(f):
                fake.add_scripted(job)
    if args.demo:
        for job_id, steps in DEMO_JOBS.items():
            fake.add_job(job_id, steps, rows=1000 * job_id, bytes_=65536 * job_id)
    app = fake.app()

    async def report_violations(_: web.Application) -> None:
        # Run alone (bench, demo) no test fails for the fake: say it where the output goes.
        for violation in fake.take_violations():
            print(f"Airbyte contract violated: {violation}", file=sys.stderr, flush=True)

    app.on_shutdown.append(report_violations)
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=lambda *_: print(f"fake Airbyte on http://127.0.0.1:{args.port}{args.prefix}", flush=True),
    )


if __name__ == "__main__":
    main()
