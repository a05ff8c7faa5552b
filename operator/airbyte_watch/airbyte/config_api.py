"""Airbyte's legacy config API (`<host>/api/v1`, every call a POST with JSON): JobInfoRead in,
Job out, with the attempts and their failure reasons the public API does not tell.

Read beside the contract: /jobs/get {id}, /jobs/cancel {id}, /connections/sync and
/connections/reset {connectionId}, /jobs/list {configTypes, configId, pagination}; see
tests/support/AIRBYTE.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

from . import model as at
from .transport import AirbyteApi, job_id_of, malformed

# Every job type a watch can start; the server reads `clear` back as `reset_connection`.
LIST_CONFIG_TYPES = ["sync", "reset_connection", "clear"]
LIST_PAGE_SIZE = 100


class ConfigApiClient(AirbyteApi):
    async def get_job(self, job_id: int) -> at.Job | at.Problem:
        answer = await self._call("POST", "/jobs/get", job_read=True, body={"id": job_id})
        if isinstance(answer, at.Problem):
            return answer
        job = _parse_job_info(answer)
        return dataclasses.replace(job, failure=self._clean(job.failure)) if isinstance(job, at.Job) else job

    async def cancel_job(self, job_id: int) -> str | at.Problem:
        """POST /jobs/cancel: connection-scoped, like the public DELETE."""
        answer = await self._call("POST", "/jobs/cancel", job_read=False, body={"id": job_id}, writes=True)
        if isinstance(answer, at.Problem):
            return "finished" if answer.kind == at.CONFLICT else answer
        return "cancelled"

    async def trigger_job(self, connection_id: str, job_type: str) -> at.Job | at.Problem:
        """/connections/sync, or /connections/reset for reset and clear (the config API has
        no clear of its own; the public API runs a clear as a reset too)."""
        path = "/connections/sync" if job_type == "sync" else "/connections/reset"
        answer = await self._call(
            "POST", path, job_read=False, body={"connectionId": connection_id}, writes=True
        )
        return answer if isinstance(answer, at.Problem) else _parse_job_info(answer)

    async def list_jobs(self, connection_id: str, since: str | None = None) -> list[at.Job] | at.Problem:
        body: dict[str, Any] = {
            "configTypes": LIST_CONFIG_TYPES,
            "configId": connection_id,
            "pagination": {"pageSize": LIST_PAGE_SIZE, "rowOffset": 0},
            "orderByField": "createdAt",
            "orderByMethod": "DESC",
        }
        if since:
            body["createdAtStart"] = since
        answer = await self._call("POST", "/jobs/list", job_read=False, body=body)
        if isinstance(answer, at.Problem):
            return answer
        try:
            items = json.loads(answer).get("jobs")
        except (ValueError, AttributeError):
            return malformed("the job list with a body that is not a JSON object")
        if not isinstance(items, list):
            return malformed("the job list without a `jobs` list")
        start = _epoch(since) if since else 0.0
        jobs: list[at.Job] = []
        for item in items:
            job = _job_from(item.get("job") if isinstance(item, dict) else None, None)
            if isinstance(job, at.Problem):
                return job  # one unreadable entry spoils the list, as on the public API
            created = item["job"].get("createdAt")
            if not isinstance(created, int) or created >= start:  # the server filters too
                jobs.append(job)
        return sorted(jobs, key=lambda j: -j.job_id)


def _epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _parse_job_info(text: str) -> at.Job | at.Problem:
    """JobInfoRead: the job, its attempts and their failure reasons."""
    try:
        body = json.loads(text)
    except ValueError:
        return malformed("200 with a body that is not JSON")
    if not isinstance(body, dict):
        return malformed("200 with a body that is not a JSON object")
    attempts = body.get("attempts") if isinstance(body.get("attempts"), list) else []
    return _job_from(body.get("job"), attempts)


def _job_from(job: Any, attempts: list[Any] | None) -> at.Job | at.Problem:
    """A JobRead: `id` and `status` are required; a 200 without them is malformed. `attempts`:
    None where the answer does not carry them (the list)."""
    if not isinstance(job, dict):
        return malformed("200 without a job")
    job_id = job_id_of(job.get("id"))
    if job_id is None:
        return malformed("200 without a usable integer job id")
    if not isinstance(job.get("status"), str):
        return malformed(f"200 without a status for job {job_id}")
    stats = job.get("aggregatedStats") if isinstance(job.get("aggregatedStats"), dict) else {}
    return at.Job(
        job_id=job_id,
        status=job["status"],
        job_type=at.normalize_job_type(job.get("configType")),
        connection_id=job.get("configId") if isinstance(job.get("configId"), str) else None,
        rows_synced=_opt_int(stats.get("recordsCommitted")),
        bytes_synced=_opt_int(stats.get("bytesCommitted")),
        attempts=None if attempts is None else len(attempts),
        failure=_last_failure(attempts or []),
        updated=_opt_int(job.get("updatedAt")),  # JobRead.updatedAt: epoch seconds
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


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
