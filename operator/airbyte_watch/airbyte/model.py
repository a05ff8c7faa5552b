"""What Airbyte answers to a poll: a Job, or a typed problem. Shared by the client and the core."""

from __future__ import annotations

from dataclasses import dataclass, field

# Airbyte's seven job statuses (public and config API alike), by what a watch does with them.
WAITING = frozenset({"pending", "queued", "running", "incomplete"})
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
ENDED = frozenset({SUCCEEDED, FAILED, CANCELLED})  # a job in one of these never changes again
# All seven, in a fixed order: what the public job list's `status` filter takes, one at a time.
STATUSES = tuple(sorted(WAITING | ENDED))

# How Airbyte reads a job's type back: a job started as `clear` (public API) or
# `reset_connection` (config API) runs as a reset and reads back as `reset`.
_READ_BACK_AS = {"clear": "reset", "reset_connection": "reset"}


def normalize_job_type(value: object) -> str | None:
    """A job type as the server reads it back (`reset` for clear); None when not a string."""
    return _READ_BACK_AS.get(value, value) if isinstance(value, str) else None


@dataclass(frozen=True)
class Job:
    job_id: int
    status: str  # Airbyte's word, lower-case as sent
    job_type: str | None = None
    connection_id: str | None = None
    rows_synced: int | None = None
    bytes_synced: int | None = None
    attempts: int | None = None  # the config API tells; the public API does not
    failure: str | None = None  # the last attempt's first failure, when the config API tells
    # When Airbyte last changed the job (epoch seconds, its clock), when the answer tells.
    # Not part of equality: a job is "the same" while what a watch reports of it is.
    updated: float | None = field(default=None, compare=False)
    created: float | None = field(default=None, compare=False)  # when Airbyte created it, likewise


@dataclass(frozen=True)
class Page:
    """One page of a job list, and Airbyte's clock when it answered (epoch seconds), if it said."""

    jobs: list[Job]
    server_time: float | None = None


@dataclass(frozen=True)
class Problem:
    """A poll that did not yield a job. `transient` problems are retried with backoff."""

    kind: str  # one of the KIND_* names below; a metric label and part of messages
    detail: str  # human text, never carrying credentials
    status_code: int | None = None
    retry_after: float | None = None  # seconds, from a 429's Retry-After

    @property
    def transient(self) -> bool:
        return self.kind in TRANSIENT_KINDS


# Transient: the watch keeps waiting and backs off.
UNREACHABLE = "Unreachable"  # refused, DNS, TLS, reset
TIMEOUT = "Timeout"
SERVER_ERROR = "ServerError"  # 5xx
MALFORMED = "MalformedResponse"  # 2xx without a usable body
RATE_LIMITED = "RateLimited"  # 429
CLIENT_ERROR = "ClientError"  # any other 4xx; retried: it may be a proxy or an API hiccup
TRANSIENT_KINDS = frozenset({UNREACHABLE, TIMEOUT, SERVER_ERROR, MALFORMED, RATE_LIMITED, CLIENT_ERROR})

# Not transient: each has its own condition reason.
AUTH_FAILED = "AuthenticationFailed"  # 401 after one token refresh, or the token endpoint refused
NOT_FOUND = "JobNotFound"  # 404, 403 and 409 on a job read ("missing or inaccessible")
CONFLICT = "Conflict"  # 409 on a write
SECRET_NOT_FOUND = "SecretNotFound"
WAITING_FOR_JOB_ID = "WaitingForJobId"  # spec.jobIdFrom's ConfigMap or key does not exist yet
WAITING_FOR_CONNECTION = "WaitingForConnection"  # a sync runs already; spec.ifRunning: Wait
NO_JOB_YET = frozenset({WAITING_FOR_JOB_ID, WAITING_FOR_CONNECTION})  # wait, no backoff
CONNECTION_BUSY = "ConnectionBusy"  # a sync runs already; spec.ifRunning: Fail
INVALID_SECRET = "InvalidSecret"
INVALID_JOB_ID = "InvalidJobId"  # spec.jobIdFrom's ConfigMap holds something that is not a job id
