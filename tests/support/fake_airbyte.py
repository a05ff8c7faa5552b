"""A fake Airbyte public API (see ../shared/reference/airbyte-api.md), for tests and the demo.

It follows Airbyte's documented shapes: `POST /applications/token` (JSON or form body, a Bearer
token with `expires_in`), `GET /jobs/{jobId}` returning a JobResponse, and RFC-7807-like problem
bodies for errors. Jobs move through scripted statuses, by poll count or by time. It is a test
double: it is never the thing under test.

Run it alone: ``python -m tests.support.fake_airbyte --port 8001 --demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

PROBLEM_BASE = "https://reference.airbyte.com/reference/errors#"


@dataclass
class Step:
    status: str
    polls: int | None = None  # served for this many GETs, then the next step; None = forever
    seconds: float | None = None  # or for this long since the step began
    until: float | None = None  # or until this wall-clock time (epoch seconds)


@dataclass
class FakeJob:
    job_id: int
    steps: list[Step]
    connection_id: str = "9924bcd0-99be-453d-ba47-c2c9766f7da5"
    job_type: str = "sync"
    rows: int = 0
    bytes: int = 0
    created: float = field(default_factory=time.time)
    _index: int = 0
    _served: int = 0
    _step_began: float = field(default_factory=time.monotonic)
    final_at: float | None = None  # wall-clock time the job first reported a final status
    first_get: float | None = None  # wall-clock time of the first GET
    gets: int = 0
    cancelled_by_request: bool = False
    attempts: int = 1  # the config API reports attempts; failed ones carry `failure`
    failure: dict[str, str] | None = None  # failureOrigin, failureType, externalMessage

    def _advance(self) -> None:
        while self._index < len(self.steps) - 1:
            step = self.steps[self._index]
            done_by_polls = step.polls is not None and self._served >= step.polls
            done_by_time = step.seconds is not None and time.monotonic() - self._step_began >= step.seconds
            done_by_clock = step.until is not None and time.time() >= step.until
            if not (done_by_polls or done_by_time or done_by_clock):
                break
            self._index, self._served, self._step_began = self._index + 1, 0, time.monotonic()

    def current(self) -> str:
        """The status for this GET, advancing the script."""
        self._advance()
        self._served += 1
        self.gets += 1
        if self.first_get is None:
            self.first_get = time.time()
        status = self.steps[self._index].status
        if status in ("succeeded", "failed", "cancelled") and self.final_at is None:
            self.final_at = time.time()
        return status

    def peek(self) -> str:
        """The status now, without counting a poll."""
        self._advance()
        return self.steps[self._index].status

    def as_config_response(self, status: str) -> dict[str, Any]:
        """The config API's JobInfoRead: epoch seconds, nested stats, attempts with failures."""
        now = int(time.time())
        stats = {"recordsEmitted": self.rows, "bytesEmitted": self.bytes, "recordsCommitted": self.rows,
                 "bytesCommitted": self.bytes, "recordsRejected": 0}  # fmt: skip
        attempts = []
        for i in range(self.attempts):
            last = i == self.attempts - 1
            attempt_status = "running" if last and status not in FINAL else (
                "succeeded" if last and status == "succeeded" else "failed")  # fmt: skip
            attempt: dict[str, Any] = {"id": i, "status": attempt_status, "createdAt": int(self.created),
                                       "updatedAt": now, "bytesSynced": 0, "recordsSynced": 0}  # fmt: skip
            if attempt_status == "failed" and self.failure is not None:
                attempt["failureSummary"] = {
                    "failures": [{**self.failure, "retryable": False, "timestamp": now}],
                    "partialSuccess": False,
                }
            attempts.append({"attempt": attempt, "logType": "formatted", "logs": {"logLines": []}})
        return {
            "job": {"id": self.job_id, "configType": self.job_type, "configId": self.connection_id,
                    "enabledStreams": [], "createdAt": int(self.created), "updatedAt": now,
                    "startedAt": int(self.created), "status": status, "aggregatedStats": stats},
            "attempts": attempts,
        }  # fmt: skip

    def as_response(self, status: str) -> dict[str, Any]:
        start = datetime.datetime.fromtimestamp(int(self.created), datetime.UTC)
        body: dict[str, Any] = {
            "jobId": self.job_id,
            "status": status,
            "jobType": self.job_type,
            "startTime": start.isoformat().replace("+00:00", "Z"),
            "connectionId": self.connection_id,
        }
        if status != "pending":
            body["duration"] = f"PT{max(0, int(time.time() - self.created))}S"
        if status in ("succeeded", "failed", "cancelled"):
            body["lastUpdatedAt"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if status not in ("pending", "queued"):
            body["rowsSynced"] = self.rows
            body["bytesSynced"] = self.bytes
        return body


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


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str | None
    at: float
    user_agent: str = ""


def problem(status: int, title: str, detail: str, data: dict[str, Any] | None = None) -> web.Response:
    body = {
        "status": status,
        "type": PROBLEM_BASE + title,
        "title": title,
        "detail": detail,
        "documentationUrl": None,
    }
    if data is not None:
        body["data"] = data
    return web.json_response(body, status=status, content_type="application/problem+json")


class FakeAirbyte:
    """The server's state and routes. Thread-safe enough for a test thread to poke at it."""

    def __init__(
        self,
        prefix: str = "/v1",
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        static_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token_lifetime: int = 900,
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
        self.lock = threading.Lock()

    # --- scripting from tests ---------------------------------------------------------------

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

    # --- HTTP -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_fault])
        app.router.add_post(f"{self.prefix}/applications/token", self._token)
        app.router.add_get(f"{self.prefix}/jobs/{{job_id}}", self._get_job)
        app.router.add_delete(f"{self.prefix}/jobs/{{job_id}}", self._cancel_job)
        app.router.add_post(f"{self.prefix}/jobs", self._start_job)
        app.router.add_get(f"{self.prefix}/jobs", self._list_jobs)
        # The legacy config API, always at /api/v1 (POST + JSON).
        app.router.add_post("/api/v1/jobs/get", self._config_get_job)
        app.router.add_post("/api/v1/jobs/cancel", self._config_cancel_job)
        app.router.add_post("/api/v1/connections/sync", self._config_sync)
        app.router.add_post("/api/v1/connections/reset", self._config_sync)
        app.router.add_post("/api/v1/jobs/list", self._config_list_jobs)
        app.router.add_get(f"{self.prefix}/health", self._health)
        app.router.add_get("/_fake/stats", self._stats)
        return app

    @web.middleware
    async def _record_and_fault(self, request: web.Request, handler: Any) -> web.StreamResponse:
        with self.lock:
            self.requests.append(
                Recorded(request.method, request.path, request.headers.get("Authorization"),
                         time.monotonic(), request.headers.get("User-Agent", ""))
            )  # fmt: skip
            fault = next(
                (f for f in self.faults
                 if f.path_contains in request.path and f.method in ("", request.method)),
                None,
            )  # fmt: skip
            if fault is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
        if fault is not None:
            return await self._faulty(request, fault, handler)
        return await handler(request)

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
            content_type="application/json",
        )

    async def _cancel_job(self, request: web.Request) -> web.Response:
        """DELETE /jobs/{id}: cancel a job still running; 409 for one that has finished."""
        if not self._authorized(request.headers.get("Authorization")):
            return problem(401, "invalid-api-key", "The API key in the Authorization header is invalid.")
        with self.lock:
            job = self.jobs.get(int(request.match_info["job_id"]))
            if job is None:
                return problem(404, "resource-not-found", "The requested resource could not be found.")
            status = job.current()
            if status in FINAL:
                return problem(
                    409, "state-conflict", "State conflict", {"message": "Job is not currently running"}
                )
            job.steps, job._index = [Step("cancelled")], 0
            job.cancelled_by_request = True
        return web.json_response(job.as_response("cancelled"))

    async def _start_job(self, request: web.Request) -> web.Response:
        """POST /jobs: start a job on a connection; 409 try-again-later if one runs already."""
        if not self._authorized(request.headers.get("Authorization")):
            return problem(401, "invalid-api-key", "The API key in the Authorization header is invalid.")
        body = await request.json()
        connection = str(body.get("connectionId", ""))
        with self.lock:
            if connection not in self.connection_scripts:
                return problem(404, "resource-not-found", "The requested resource could not be found.",
                               {"resourceType": "connection", "resourceId": connection})  # fmt: skip
            for job in self.jobs.values():
                if job.connection_id == connection and job.peek() not in FINAL:
                    return problem(409, "try-again-later", "Please try again later.",
                                   {"message": f"A sync is already running for: {connection}"})  # fmt: skip
            self._next_job_id += 1
            job = FakeJob(self._next_job_id, list(self.connection_scripts[connection]),
                          connection_id=connection, job_type=str(body.get("jobType", "sync")))  # fmt: skip
            self.jobs[job.job_id] = job
        return web.json_response(job.as_response("pending"))

    async def _list_jobs(self, request: web.Request) -> web.Response:
        """GET /jobs?connectionId=&createdAtStart=&orderBy=createdAt|DESC&limit=."""
        if not self._authorized(request.headers.get("Authorization")):
            return problem(401, "invalid-api-key", "The API key in the Authorization header is invalid.")
        query = request.query
        since = query.get("createdAtStart")
        start = datetime.datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() if since else 0.0
        with self.lock:
            found = [
                j
                for j in self.jobs.values()
                if j.connection_id == query.get("connectionId", j.connection_id) and j.created >= start
            ]
            found.sort(
                key=lambda j: j.created, reverse=query.get("orderBy", "createdAt|DESC").endswith("DESC")
            )
            data = [j.as_response(j.peek()) for j in found[: int(query.get("limit", "20"))]]
        return web.json_response({"data": data, "next": None, "previous": None})  # fmt: skip

    async def _config_sync(self, request: web.Request) -> web.Response:
        """POST /api/v1/connections/sync or /reset: the public POST /jobs, as a JobInfoRead."""
        answer = await self._start_job(request)
        if answer.status != 200:
            detail = json.loads(answer.text or "{}").get("data", {}).get("message", "conflict")
            return web.json_response({"message": detail, "exceptionClassName": "ValueConflictKnownException"},
                                     status=answer.status)  # fmt: skip
        job = self.jobs[json.loads(answer.text or "{}")["jobId"]]
        if request.path.endswith("/reset"):
            job.job_type = "reset_connection"
        return web.json_response(job.as_config_response("pending"))

    async def _config_list_jobs(self, request: web.Request) -> web.Response:
        if not self._authorized(request.headers.get("Authorization")):
            return web.json_response({"message": "Unauthorized"}, status=401)
        body = await request.json()
        with self.lock:
            found = sorted((j for j in self.jobs.values() if j.connection_id == body.get("configId")),
                           key=lambda j: j.created, reverse=True)  # fmt: skip
            items = [{"job": j.as_config_response(j.peek())["job"], "attempts": []} for j in found]
        return web.json_response({"jobs": items, "totalJobCount": len(items)})

    async def _config_job(self, request: web.Request) -> tuple[FakeJob | None, web.Response | None]:
        if not self._authorized(request.headers.get("Authorization")):
            return None, web.json_response({"message": "Unauthorized"}, status=401)
        try:
            job_id = int((await request.json())["id"])
        except (ValueError, KeyError, TypeError):
            return None, web.json_response(
                {
                    "message": "Invalid input",
                    "exceptionClassName": "InvalidInputException",
                    "validationErrors": [{"propertyPath": "id", "message": "must be an integer"}],
                },
                status=422,
            )
        job = self.jobs.get(job_id)
        if job is None:
            return None, web.json_response(
                {
                    "id": str(job_id),
                    "message": f"Could not find job with id: {job_id}",
                    "exceptionClassName": "io.airbyte.commons.server.errors.NotFoundKnownException",
                },
                status=404,
            )
        return job, None  # fmt: skip

    async def _config_get_job(self, request: web.Request) -> web.Response:
        job, error = await self._config_job(request)
        if error is not None or job is None:
            return error or web.Response(status=500)
        with self.lock:
            status = job.current()
        return web.json_response(job.as_config_response(status))

    async def _config_cancel_job(self, request: web.Request) -> web.Response:
        job, error = await self._config_job(request)
        if error is not None or job is None:
            return error or web.Response(status=500)
        with self.lock:
            status = job.current()
            if status in FINAL:
                return web.json_response(
                    {"message": "Job is not currently running",
                     "exceptionClassName": "io.airbyte.commons.server.errors.ValueConflictKnownException"},
                    status=409)  # fmt: skip
            job.steps, job._index = [Step("cancelled")], 0
            job.cancelled_by_request = True
        return web.json_response(job.as_config_response("cancelled"))

    async def _stats(self, request: web.Request) -> web.Response:
        """Per-job poll counts and times, for the benchmark (which runs this in its own process)."""
        with self.lock:
            jobs = {
                str(j.job_id): {"gets": j.gets, "firstGet": j.first_get, "finalSeen": j.final_at}
                for j in self.jobs.values()
            }
            total = len(self.requests)
        return web.json_response({"requests": total, "jobs": jobs})

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="Successful operation")

    async def _token(self, request: web.Request) -> web.Response:
        if request.content_type == "application/x-www-form-urlencoded":
            body: dict[str, Any] = dict(await request.post())
        else:
            try:
                body = await request.json()
            except ValueError:
                return problem(400, "bad-request", "The request could not be understood by the server.")
        if self.client_id is None or (body.get("client_id"), body.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return problem(401, "invalid-api-key", "The API key in the Authorization header is invalid.")
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_lifetime
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}
        )

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

    async def _get_job(self, request: web.Request) -> web.Response:
        if not self._authorized(request.headers.get("Authorization")):
            return problem(401, "invalid-api-key", "The API key in the Authorization header is invalid.")
        raw = request.match_info["job_id"]
        if not raw.isdigit():
            return problem(
                400,
                "bad-request",
                "The request could not be understood by the server.",
                {"message": f"jobId {raw!r} is not an integer"},
            )
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
        return web.json_response(job.as_response(status))


FINAL = ("succeeded", "failed", "cancelled")


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
        help='JSON list of {"id": N, "finishAt": epoch, "final": "succeeded"}: running until then',
    )
    args = parser.parse_args()
    fake = FakeAirbyte(args.prefix, client_id=args.client_id, client_secret=args.client_secret)
    if args.jobs_file:
        with open(args.jobs_file) as f:
            for job in json.load(f):
                steps = [Step("running", until=job["finishAt"]), Step(job.get("final", "succeeded"))]
                fake.add_job(job["id"], steps, rows=job.get("rows", 0))
    if args.demo:
        for job_id, steps in DEMO_JOBS.items():
            fake.add_job(job_id, steps, rows=1000 * job_id, bytes_=65536 * job_id)
    web.run_app(
        fake.app(),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=lambda *_: print(f"fake Airbyte on http://127.0.0.1:{args.port}{args.prefix}", flush=True),
    )


if __name__ == "__main__":
    main()
