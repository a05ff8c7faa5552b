"""Airbyte's public API (`/v1` on Cloud, `/api/public/v1` self-managed): JobResponse in, Job out.

Read beside the contract: GET /jobs/{jobId}, DELETE /jobs/{jobId}, POST /jobs
{connectionId, jobType}, GET /jobs?connectionId&createdAtStart&orderBy&limit; see
tests/support/AIRBYTE.md for what the server does with each.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any
from urllib.parse import urlencode

from . import model as at
from .transport import RELOGIN_LIST, AirbyteApi, job_id_of, malformed

LIST_LIMIT = 100  # the largest page the server serves


class PublicApiClient(AirbyteApi):
    async def get_job(self, job_id: int, server_time: list[float] | None = None) -> at.Job | at.Problem:
        """`server_time`: gets Airbyte's clock when it answered (its Date header), if it said."""
        answer = await self._call("GET", f"/jobs/{job_id}", job_read=True, server_time=server_time)
        return answer if isinstance(answer, at.Problem) else _parse_job(answer)

    async def cancel_job(self, job_id: int) -> str | at.Problem:
        """DELETE /jobs/{id}. The server cancels whatever the job's connection runs now, so
        callers read the job first and cancel only a job they saw still running."""
        answer = await self._call("DELETE", f"/jobs/{job_id}", job_read=False, writes=True)
        if isinstance(answer, at.Problem):
            return "finished" if answer.kind == at.CONFLICT else answer
        return "cancelled"

    async def trigger_job(self, connection_id: str, job_type: str) -> at.Job | at.Problem:
        """POST /jobs; a 409 means the connection runs a job already."""
        body = {"connectionId": connection_id, "jobType": job_type}
        answer = await self._call("POST", "/jobs", job_read=False, body=body, writes=True)
        return answer if isinstance(answer, at.Problem) else _parse_job(answer)

    async def list_jobs(self, connection_id: str, since: str | None = None) -> list[at.Job] | at.Problem:
        query = {"connectionId": connection_id, "orderBy": "createdAt|DESC", "limit": str(LIST_LIMIT)}
        if since:
            query["createdAtStart"] = since
        jobs = await self._list(query)
        return jobs if isinstance(jobs, at.Problem) else sorted(jobs, key=lambda j: -j.job_id)

    async def jobs_updated_since(self, start: float, offset: int = 0) -> at.Page | at.Problem:
        """One page of every job (of every connection these credentials see) updated at or after
        `start` (epoch seconds, Airbyte's clock), oldest update first: `GET /jobs?updatedAtStart=
        &orderBy=updatedAt|ASC&limit=100&offset=`, with Airbyte's clock when it answered. A 403
        means these credentials may not list."""
        query = {"updatedAtStart": _iso(start), "orderBy": "updatedAt|ASC", "limit": str(LIST_LIMIT),
                 "offset": str(offset)}  # fmt: skip
        return await self._walk_page(query)

    async def jobs_updated_in_second(
        self, second: float, created_since: float, offset: int = 0
    ) -> at.Page | at.Problem:
        """One page of the jobs updated within one whole second (both ends inclusive), created
        at or after `created_since`, in the order they were created: `GET /jobs?updatedAtStart=
        &updatedAtEnd=&createdAtStart=&orderBy=createdAt|ASC&limit=100&offset=`. Rows that
        share their `updatedAt` come in no promised order; their creation times tell them apart."""
        query = {"updatedAtStart": _iso(second), "updatedAtEnd": _iso(second + 1),
                 "createdAtStart": _iso(created_since), "orderBy": "createdAt|ASC",
                 "limit": str(LIST_LIMIT), "offset": str(offset)}  # fmt: skip
        return await self._walk_page(query)

    async def jobs_of_status_in_seconds(
        self, status: str, updated: float, created: float, offset: int = 0
    ) -> at.Page | at.Problem:
        """One page of the jobs of one status updated within the second `updated` and created
        within the second `created` (each range inclusive at both ends): `GET /jobs?status=
        &updatedAtStart=&updatedAtEnd=&createdAtStart=&createdAtEnd=&orderBy=createdAt|ASC`.
        What is left when neither time tells rows apart."""
        query = {"status": status, "updatedAtStart": _iso(updated), "updatedAtEnd": _iso(updated + 1),
                 "createdAtStart": _iso(created), "createdAtEnd": _iso(created + 1),
                 "orderBy": "createdAt|ASC", "limit": str(LIST_LIMIT), "offset": str(offset)}  # fmt: skip
        return await self._walk_page(query)

    async def _walk_page(self, query: dict[str, str]) -> at.Page | at.Problem:
        """One page of a list walk, with Airbyte's clock when it answered (its Date header)."""
        server_time: list[float] = []
        jobs = await self._list(query, server_time)
        return (
            jobs if isinstance(jobs, at.Problem) else at.Page(jobs, server_time[0] if server_time else None)
        )

    async def _list(
        self, query: dict[str, str], server_time: list[float] | None = None
    ) -> list[at.Job] | at.Problem:
        """One page of `GET /jobs`. One unreadable entry spoils the page: adoption must not miss
        a job, nor a walk a change."""
        answer = await self._call(
            "GET", f"/jobs?{urlencode(query)}", job_read=False, server_time=server_time, relogin=RELOGIN_LIST
        )
        if isinstance(answer, at.Problem):
            return answer
        try:
            data = json.loads(answer).get("data")
        except (ValueError, AttributeError):
            return malformed("the job list with a body that is not a JSON object")
        if not isinstance(data, list):
            return malformed("the job list without a `data` list")
        jobs: list[at.Job] = []
        for item in data:
            job = _job_from(item)
            if isinstance(job, at.Problem):
                return job
            jobs.append(job)
        return jobs


def updated_at(body: dict[str, Any]) -> float | None:
    """When Airbyte last changed the job (epoch seconds, whole): `lastUpdatedAt` for a final
    job; otherwise `startTime` + `duration`, which the server computes as updatedAt - createdAt;
    `startTime` alone for a pending job, which has changed since it was created."""
    if isinstance(body.get("lastUpdatedAt"), str):
        return _epoch(body["lastUpdatedAt"])
    start = _epoch(body["startTime"]) if isinstance(body.get("startTime"), str) else None
    if start is None:
        return None
    return start + (_seconds(body["duration"]) if isinstance(body.get("duration"), str) else 0.0)


_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def _seconds(duration: str) -> float:
    """Java's Duration.toString() (PT8H6M12S) in seconds; 0 when it is not one."""
    match = _DURATION.match(duration)
    if match is None:
        return 0.0
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _epoch(text: str) -> float | None:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo else moment.replace(tzinfo=datetime.UTC).timestamp()


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_job(text: str) -> at.Job | at.Problem:
    try:
        body = json.loads(text)
    except ValueError:
        return malformed("200 with a body that is not JSON")
    return _job_from(body)


def _job_from(body: Any) -> at.Job | at.Problem:
    """A JobResponse: jobId and status are required; a 200 without them is malformed."""
    if not isinstance(body, dict):
        return malformed("200 with a body that is not a JSON object")
    job_id = job_id_of(body.get("jobId"))
    if job_id is None:
        return malformed("200 without a usable integer jobId")
    if not isinstance(body.get("status"), str):
        return malformed(f"200 without a status for job {job_id}")
    return at.Job(
        job_id=job_id,
        status=body["status"],
        job_type=at.normalize_job_type(body.get("jobType")),
        connection_id=_opt_str(body.get("connectionId")),
        rows_synced=_opt_int(body.get("rowsSynced")),
        bytes_synced=_opt_int(body.get("bytesSynced")),
        updated=updated_at(body),
        created=_epoch(body["startTime"]) if isinstance(body.get("startTime"), str) else None,
    )


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
