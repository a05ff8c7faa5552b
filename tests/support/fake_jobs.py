"""The fake Airbyte's jobs: scripted statuses, and how the server renders and lists them.

Every rendering rule here is the server's; tests/support/AIRBYTE.md names the file each comes from.
"""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FINAL = ("succeeded", "failed", "cancelled")
# The public API's job type -> the config API's configType (and back, JobResponseMapper).
CONFIG_TYPE = {"sync": "sync", "reset": "reset_connection", "clear": "clear", "refresh": "refresh"}
PUBLIC_TYPE = {v: k for k, v in CONFIG_TYPE.items()}
DEFAULT_CONNECTION = "9924bcd0-99be-453d-ba47-c2c9766f7da5"


@dataclass
class Step:
    status: str
    polls: int | None = None  # served for this many GETs, then the next step; None = forever
    seconds: float | None = None  # or for this long since the step began
    until: float | None = None  # or until this wall-clock time (epoch seconds)


def iso_seconds(epoch: float) -> str:
    """Java's OffsetDateTime.toString() of whole seconds: `2024-05-01T10:00Z` when the seconds
    are zero, `2024-05-01T10:00:05Z` otherwise (JobResponseMapper)."""
    moment = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%MZ" if moment.second == 0 else "%Y-%m-%dT%H:%M:%SZ")


def java_duration(seconds: int) -> str:
    """Java's Duration.toString(): PT8H6M12S, PT58M, PT0S."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + (f"{secs}S" if secs or text == "PT" else "")


@dataclass
class FakeJob:
    job_id: int
    steps: list[Step]
    connection_id: str = DEFAULT_CONNECTION
    job_type: str = "sync"  # as the public API reads it back: sync, reset, clear, refresh
    rows: int = 0
    bytes: int = 0
    created: float = field(default_factory=time.time)
    updated: float = 0.0  # wall-clock time of the last status change; moves with each one
    _index: int = 0
    _served: int = 0
    _step_began: float = field(default_factory=time.monotonic)
    final_at: float | None = None  # wall-clock time the job first reported a final status
    first_get: float | None = None  # wall-clock time of the first GET
    gets: int = 0
    cancelled_by_request: bool = False
    attempts: int = 1  # the config API reports attempts; failed ones carry `failure`
    failure: dict[str, str] | None = None  # failureOrigin, failureType, externalMessage

    def __post_init__(self) -> None:
        self.updated = self.updated or self.created

    def _advance(self) -> None:
        while self._index < len(self.steps) - 1:
            step = self.steps[self._index]
            done_by_polls = step.polls is not None and self._served >= step.polls
            done_by_time = step.seconds is not None and time.monotonic() - self._step_began >= step.seconds
            done_by_clock = step.until is not None and time.time() >= step.until
            if not (done_by_polls or done_by_time or done_by_clock):
                break
            # When the status changed, as the server's row records it: a step that ended by time
            # or clock ended then, not when someone next looked (jobs ending between two list
            # walks keep the order they ended in).
            ended = time.monotonic()
            if done_by_time and step.seconds is not None:
                ended = min(ended, self._step_began + step.seconds)
            elif done_by_clock and step.until is not None:
                ended = min(ended, time.monotonic() - (time.time() - step.until))
            self._index, self._served, self._step_began = self._index + 1, 0, ended
            if self.steps[self._index].status != step.status:
                self.updated = time.time() - (time.monotonic() - ended)

    def current(self) -> str:
        """The status for this GET, advancing the script."""
        self._advance()
        self._served += 1
        self.gets += 1
        if self.first_get is None:
            self.first_get = time.time()
        status = self.steps[self._index].status
        if status in FINAL and self.final_at is None:
            self.final_at = time.time()
        return status

    def peek(self) -> str:
        """The status now, without counting a poll."""
        self._advance()
        return self.steps[self._index].status

    def cancel(self) -> None:
        self.steps, self._index, self._served = [Step("cancelled")], 0, 0
        self.updated = time.time()
        self.cancelled_by_request = True

    @property
    def config_type(self) -> str:
        return CONFIG_TYPE.get(self.job_type, self.job_type)

    def as_config_response(self, status: str) -> dict[str, Any]:
        """The config API's JobInfoRead: epoch seconds, nested stats, attempts with failures."""
        updated = int(self.updated)
        stats = {
            "recordsEmitted": self.rows,
            "bytesEmitted": self.bytes,
            "recordsCommitted": self.rows,
            "bytesCommitted": self.bytes,
            "recordsRejected": 0,
        }
        attempts = []
        for i in range(self.attempts):
            last = i == self.attempts - 1
            attempt_status = (
                "running"
                if last and status not in FINAL
                else ("succeeded" if last and status == "succeeded" else "failed")
            )
            attempt: dict[str, Any] = {
                "id": i,
                "status": attempt_status,
                "createdAt": int(self.created),
                "updatedAt": updated,
                "bytesSynced": 0,
                "recordsSynced": 0,
            }
            if attempt_status == "failed" and self.failure is not None:
                attempt["failureSummary"] = {
                    "failures": [{**self.failure, "retryable": False, "timestamp": updated}],
                    "partialSuccess": False,
                }
            attempts.append({"attempt": attempt, "logType": "formatted", "logs": {"logLines": []}})
        return {
            "job": {
                "id": self.job_id,
                "configType": self.config_type,
                "configId": self.connection_id,
                "enabledStreams": [],
                "createdAt": int(self.created),
                "updatedAt": updated,
                "startedAt": int(self.created),
                "status": status,
                "aggregatedStats": stats,
            },
            "attempts": attempts,
        }

    def as_response(self, status: str) -> dict[str, Any]:
        """The public API's JobResponse, built from the config API's job as JobResponseMapper does."""
        body: dict[str, Any] = {
            "jobId": self.job_id,
            "status": status,
            "jobType": PUBLIC_TYPE.get(self.config_type, self.job_type),
            "startTime": iso_seconds(self.created),
            "connectionId": self.connection_id,
        }
        if status != "pending":
            body["duration"] = java_duration(int(self.updated) - int(self.created))
        if status in FINAL:
            body["lastUpdatedAt"] = iso_seconds(self.updated)
        if status not in ("pending", "queued"):
            body["rowsSynced"] = self.rows
            body["bytesSynced"] = self.bytes
        return body


@dataclass
class JobQuery:
    """What both APIs' list calls filter and order by (the server's JobsWithAttemptsRepository)."""

    connection_id: str | None = None
    config_types: frozenset[str] | None = None
    statuses: frozenset[str] | None = None
    created_start: float | None = None
    created_end: float | None = None
    updated_start: float | None = None
    updated_end: float | None = None
    order_field: str = "createdAt"
    descending: bool = False
    limit: int = 20
    offset: int = 0

    def run(
        self, jobs: Iterable[FakeJob], shuffle_ties: bool = True
    ) -> tuple[list[tuple[FakeJob, str]], int]:
        """One page of (job, status now) and the count of all matches."""
        found = []
        for job in jobs:
            status = job.peek()
            created, updated = job.created, job.updated  # the database's full precision
            if (
                (self.connection_id is None or job.connection_id == self.connection_id)
                and (self.config_types is None or job.config_type in self.config_types)
                and (self.statuses is None or status in self.statuses)
                and (self.created_start is None or created >= self.created_start)
                and (self.created_end is None or created <= self.created_end)
                and (self.updated_start is None or updated >= self.updated_start)
                and (self.updated_end is None or updated <= self.updated_end)
            ):
                found.append((job, status))
        field_of = (lambda j: j.created) if self.order_field == "createdAt" else (lambda j: j.updated)
        # Sorted by the one field asked for; rows equal in it come in whatever order the
        # database finds them, a new one on each request (PostgreSQL promises none).
        if shuffle_ties:
            random.shuffle(found)
        else:
            found.sort(key=lambda pair: pair[0].job_id)
        found.sort(key=lambda pair: field_of(pair[0]), reverse=self.descending)
        # The server pages with Pageable.from(offset / limit, limit): an offset inside a page
        # starts at that page's first row.
        start = (self.offset // self.limit) * self.limit
        return found[start : start + self.limit], len(found)


def epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
