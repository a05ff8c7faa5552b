"""The decision core: from (spec, stored status, Airbyte's answer, now) to what to write and do.

No I/O and no clock reads. The layers around it poll Airbyte, call `decide`, patch the status if
it changed, post the events, and schedule the next poll.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..airbyte import model as at
from . import conditions as c
from . import names as n
from .durations import format_duration
from .names import CANCELLED, FAILED, FINAL_PHASES, NORMAL, PENDING, RUNNING, SUCCEEDED, WARNING
from .spec import InvalidSpec, WatchSpec
from .text import bound

# Airbyte status -> (phase, Reconciling reason, message tail) for statuses we keep waiting on.
_WAITING: dict[str, tuple[str, str, str]] = {
    "pending": (PENDING, n.JOB_PENDING, "is pending"),
    "queued": (PENDING, n.JOB_QUEUED, "is queued, waiting for Airbyte capacity"),
    "running": (RUNNING, n.JOB_RUNNING, "is running"),
    "incomplete": (RUNNING, n.JOB_INCOMPLETE, "is incomplete: an attempt failed and Airbyte retries"),
}
# Airbyte status -> (phase, reason, message tail) for final statuses.
_FINAL: dict[str, tuple[str, str, str]] = {
    at.SUCCEEDED: (SUCCEEDED, n.JOB_SUCCEEDED, "succeeded"),
    at.FAILED: (FAILED, n.JOB_FAILED, "failed"),
    at.CANCELLED: (CANCELLED, n.JOB_CANCELLED, "was cancelled"),
}
# Problems that stall the watch until the user fixes them; re-checked with backoff.
_STALLING: dict[str, str] = {
    at.SECRET_NOT_FOUND: n.SECRET_NOT_FOUND,
    at.INVALID_SECRET: n.INVALID_SECRET,
    at.AUTH_FAILED: n.AUTHENTICATION_FAILED,
}
# Stalling problems re-checked at pollInterval, not with backoff: reading them costs Airbyte nothing.
_STALLING_NO_BACKOFF: dict[str, str] = {at.INVALID_JOB_ID: n.INVALID_JOB_ID}
# Reasons whose event is Normal; every other final or stalled reason is a Warning.
_NORMAL_REASONS = frozenset({n.JOB_SUCCEEDED})


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    status: dict[str, Any]
    events: tuple[Event, ...]
    next_poll_in: float | None  # seconds; None when the watch is not to be polled again
    failures: int  # consecutive polls that met a problem, for the backoff


def timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def is_final(status: Mapping[str, Any]) -> bool:
    return status.get("phase") in FINAL_PHASES


def backoff_delay(spec: WatchSpec, failures: int) -> float:
    """pollInterval × 2^(n-1) for the n-th consecutive failure, capped at maxDelay."""
    if not spec.backoff_exponential or failures <= 1:
        return spec.poll_interval
    # The cap is reached long before 2^n overflows; min() keeps the exponent small anyway.
    return min(spec.backoff_max_delay, spec.poll_interval * 2 ** min(failures - 1, 62))


def decide(
    spec: WatchSpec | InvalidSpec,
    status: Mapping[str, Any],
    failures: int,
    answer: at.Job | at.Problem | None,
    now: datetime.datetime,
    generation: int,
    cancelled: str | None = None,
) -> Decision:
    """The one decision of a step: the new status, the events of this transition, when to poll
    next.

    `spec` is what the schema let through, or why the operator cannot use it; `answer` is what
    Airbyte (or the way to it) said, None when nothing was asked (a final watch, an invalid
    spec); `cancelled` is what Airbyte said to the cancel that `wants_cancel` asked for.
    Every message in the result is bounded.
    """
    if is_final(status):
        decision = Decision(restamp(status, generation), (), None, 0)
    elif isinstance(spec, InvalidSpec):
        decision = _decide_invalid_spec(status, spec, now, generation)
    else:
        assert answer is not None, "a watch that is neither final nor invalid was polled"
        decision = _decide_job(spec, status, failures, answer, now, generation)
        if cancelled is not None and spec.job_id is not None:
            decision = _with_cancel_outcome(decision, spec.job_id, cancelled)
    return _bounded(decision)


def wants_cancel(
    spec: WatchSpec, status: Mapping[str, Any], answer: at.Job | at.Problem, now: datetime.datetime
) -> bool:
    """spec.cancelOnTimeout, the deadline passed, and the job was read not final in this very
    poll (Airbyte cancels whatever its connection runs now: never cancel on older news)."""
    return (
        spec.cancel_on_timeout
        and isinstance(answer, at.Job)
        and answer.status not in _FINAL
        and (answer.status in _WAITING or spec.on_unknown_status == "Wait")
        and now >= _deadline(spec, status, now)
    )


def _deadline(spec: WatchSpec, status: Mapping[str, Any], now: datetime.datetime) -> datetime.datetime:
    started_at = status.get("startedAt") or timestamp(now)
    return parse_timestamp(started_at) + datetime.timedelta(seconds=spec.timeout)


def _bounded(decision: Decision) -> Decision:
    status = dict(decision.status)
    if isinstance(status.get("message"), str):
        status["message"] = bound(status["message"])
    if status.get("conditions"):
        status["conditions"] = [{**x, "message": bound(x.get("message", ""))} for x in status["conditions"]]
    events = tuple(Event(e.type, e.reason, bound(e.message)) for e in decision.events)
    return dataclasses.replace(decision, status=status, events=events)


def _decide_job(
    spec: WatchSpec,
    status: Mapping[str, Any],
    failures: int,
    answer: at.Job | at.Problem,
    now: datetime.datetime,
    generation: int,
) -> Decision:
    stamp = timestamp(now)
    started_at = status.get("startedAt") or stamp
    deadline = _deadline(spec, status, now)
    new: dict[str, Any] = {
        **status,
        "observedGeneration": generation,
        "startedAt": started_at,
        "deadline": timestamp(deadline),
    }
    if spec.job_id is not None:
        new["jobId"] = spec.job_id
    new.setdefault("phase", PENDING)
    conds = list(status.get("conditions") or [])
    job_name = f"Airbyte job {spec.job_id}" if spec.job_id is not None else "The Airbyte job"
    events: list[Event] = []
    was_retrying = _reconciling_reason(status) == n.PROGRESSING_WITH_RETRY

    def finish(phase: str, reason: str, message: str) -> Decision:
        new.update(phase=phase, message=message, completedAt=stamp)
        if phase == SUCCEEDED:
            new["conditions"] = c.mark_ready(conds, reason, message, generation, stamp)
        else:
            new["conditions"] = c.mark_stalled(conds, reason, message, generation, stamp)
        kind = NORMAL if reason in _NORMAL_REASONS else WARNING
        events.append(Event(kind, reason, message))
        return Decision(new, tuple(events), None, 0)

    if isinstance(answer, at.Job):
        if was_retrying:
            events.append(Event(NORMAL, n.AIRBYTE_REACHABLE, f"Airbyte answers again for {job_name}"))
        _record_job(new, answer)
        word = answer.status
        if word in _FINAL:
            unmet = _unmet_expectation(spec, job_name, answer) if word == at.SUCCEEDED else None
            if unmet is not None:
                return finish(FAILED, *unmet)
            phase, reason, tail = _FINAL[word]
            return finish(phase, reason, _final_message(job_name, tail, answer))
        if word in _WAITING:
            phase, reason, tail = _WAITING[word]
            message = f"{job_name} {tail}"
        elif spec.on_unknown_status == "Fail":
            return finish(
                FAILED,
                n.UNKNOWN_JOB_STATUS,
                f"{job_name} has status {word!r}, which this operator does not know",
            )
        else:
            phase, reason = status.get("phase") or PENDING, n.JOB_UNKNOWN_STATUS_WAITING
            message = f"{job_name} has unknown status {word!r}; waiting as spec.onUnknownStatus=Wait"
        if now >= deadline:
            return _timed_out(finish, job_name, spec, f"last status: {word}")
        if phase == RUNNING and status.get("phase") != RUNNING:
            events.append(Event(NORMAL, n.JOB_RUNNING, f"{job_name} is running"))
        new.update(phase=phase, message=message)
        new["conditions"] = c.mark_waiting(conds, reason, message, generation, stamp)
        new.pop("completedAt", None)
        return Decision(new, tuple(events), _until(spec.poll_interval, now, deadline), 0)

    # A problem: no job this time.
    if answer.kind in at.NO_JOB_YET:
        if now >= deadline:
            return _timed_out(finish, "The job", spec, answer.detail)
        message = f"waiting for the job: {answer.detail}"
        new["message"] = message
        new["conditions"] = c.mark_waiting(conds, answer.kind, message, generation, stamp)
        return Decision(new, tuple(events), _until(spec.poll_interval, now, deadline), 0)
    if answer.kind in _STALLING_NO_BACKOFF:
        if now >= deadline:
            return _timed_out(finish, "The job", spec, answer.detail)
        reason = _STALLING_NO_BACKOFF[answer.kind]
        message = f"{answer.detail}; re-read every {format_duration(spec.poll_interval)} until the deadline"
        if _stalled_reason(status) != reason:
            events.append(Event(WARNING, reason, answer.detail))
        new["message"] = message
        new["conditions"] = c.mark_stalled(conds, reason, message, generation, stamp)
        return Decision(new, tuple(events), _until(spec.poll_interval, now, deadline), 0)
    if answer.kind == at.CONNECTION_BUSY:
        return finish(FAILED, n.CONNECTION_BUSY, answer.detail)
    failures += 1
    if answer.kind == at.NOT_FOUND:
        return finish(FAILED, n.JOB_NOT_FOUND, f"{job_name} was not found: {answer.detail}")
    if now >= deadline:
        return _timed_out(finish, job_name, spec, f"last error: {answer.detail}")
    if answer.kind in _STALLING:
        if was_retrying and answer.kind == at.AUTH_FAILED:
            events.append(Event(NORMAL, n.AIRBYTE_REACHABLE, f"Airbyte answers again for {job_name}"))
        reason = _STALLING[answer.kind]
        message = f"{answer.detail}; {job_name} is re-checked until the deadline"
        if _stalled_reason(status) != reason:
            events.append(Event(WARNING, reason, f"{job_name}: {answer.detail}"))
        new["message"] = message
        new["conditions"] = c.mark_stalled(conds, reason, message, generation, stamp)
        return Decision(new, tuple(events), _until(backoff_delay(spec, failures), now, deadline), failures)

    # Transient trouble with the API: keep waiting, back off, say so once per outage.
    delay = backoff_delay(spec, failures)
    if answer.kind == at.RATE_LIMITED and answer.retry_after is not None:
        delay = max(answer.retry_after, spec.poll_interval)
    delay = _until(delay, now, deadline)
    message = f"Airbyte API trouble ({answer.kind}: {answer.detail}); next try in {format_duration(delay)}"
    if not was_retrying:
        events.append(Event(WARNING, n.AIRBYTE_UNREACHABLE, f"{job_name}: {answer.kind}: {answer.detail}"))
    new["message"] = message
    new["conditions"] = c.mark_waiting(conds, n.PROGRESSING_WITH_RETRY, message, generation, stamp)
    return Decision(new, tuple(events), delay, failures)


def _decide_invalid_spec(
    status: Mapping[str, Any], error: InvalidSpec, now: datetime.datetime, generation: int
) -> Decision:
    """A spec the schema let through but the operator cannot use: Stalled until it is edited."""
    stamp = timestamp(now)
    message = f"invalid spec: {error}"
    new: dict[str, Any] = {**status, "observedGeneration": generation, "message": message}
    new.setdefault("phase", PENDING)
    new["conditions"] = c.mark_stalled(
        status.get("conditions") or [], n.INVALID_SPEC, message, generation, stamp
    )
    events = (
        ()
        if _stalled_reason(status) == n.INVALID_SPEC and status.get("message") == bound(message)
        else (Event(WARNING, n.INVALID_SPEC, message),)
    )
    return Decision(new, events, None, 0)


def _with_cancel_outcome(decision: Decision, job_id: int, outcome: str) -> Decision:
    """Fold what Airbyte said to the cancel into the TimedOut status and event.

    `outcome`: "cancelled", "finished" (Airbyte: not running any more), or why it failed.
    """
    said = {
        "cancelled": f"cancelled Airbyte job {job_id}",
        "finished": f"Airbyte job {job_id} had already finished when it was to be cancelled",
    }.get(outcome, f"cancelling Airbyte job {job_id} failed: {outcome}")
    status = {**decision.status, "cancelRequested": True}
    status["message"] = f"{status['message']}; {said}"
    status["conditions"] = [
        {**x, "message": status["message"]} if x["type"] in (n.READY, n.STALLED) else x
        for x in status["conditions"]
    ]
    events = tuple(
        Event(e.type, e.reason, f"{e.message}; {said}") if e.reason == n.TIMED_OUT else e
        for e in decision.events
    )
    return dataclasses.replace(decision, status=status, events=events)


# Final reasons: the outcome of a watch. Each watch announces one, once.
FINAL_REASONS = frozenset({n.JOB_SUCCEEDED, n.JOB_FAILED, n.JOB_CANCELLED, n.UNKNOWN_JOB_STATUS,
                           n.JOB_NOT_FOUND, n.TIMED_OUT, n.CONNECTION_BUSY,
                           n.TOO_FEW_ROWS, n.TOO_FEW_BYTES, n.ROWS_UNKNOWN})  # fmt: skip


def as_announced(
    status: Mapping[str, Any], reason: str, message: str, generation: int, now: datetime.datetime
) -> dict[str, Any]:
    """The final status of the outcome already announced by an Event, when a retry after a crash
    (or a failed status patch) decided another one: the first announcement stands."""
    stamp = timestamp(now)
    phase = {n.JOB_SUCCEEDED: SUCCEEDED, n.JOB_CANCELLED: CANCELLED}.get(reason, FAILED)
    mark = c.mark_ready if phase == SUCCEEDED else c.mark_stalled
    conditions = mark(status.get("conditions") or [], reason, bound(message), generation, stamp)
    return {
        **status,
        "phase": phase,
        "message": bound(message),
        "completedAt": stamp,
        "conditions": conditions,
    }


def restamp(status: Mapping[str, Any], generation: int) -> dict[str, Any]:
    """A final watch whose spec was edited: nothing to poll, but the edit is acknowledged."""
    return {
        **status,
        "observedGeneration": generation,
        "conditions": c.restamp(status.get("conditions") or [], generation),
    }


def _record_job(new: dict[str, Any], job: at.Job) -> None:
    new["jobStatus"] = job.status
    for key, value in (
        ("jobType", job.job_type),
        ("connectionId", job.connection_id),
        ("rowsSynced", job.rows_synced),
        ("bytesSynced", job.bytes_synced),
        ("attempts", job.attempts),
    ):
        if value is not None:
            new[key] = value


def _final_message(job_name: str, tail: str, job: at.Job) -> str:
    if job.status == at.FAILED and job.failure:
        attempts = f" after {job.attempts} attempts" if job.attempts and job.attempts > 1 else ""
        return f"{job_name} {tail}{attempts}: {job.failure}"
    if job.status != at.SUCCEEDED or (job.rows_synced is None and job.bytes_synced is None):
        return f"{job_name} {tail}"
    return f"{job_name} {tail}: {job.rows_synced or 0} rows, {job.bytes_synced or 0} bytes synced"


def _unmet_expectation(spec: WatchSpec, job_name: str, job: at.Job) -> tuple[str, str] | None:
    """spec.expect against a success: the (reason, message) of the bound it misses, or None.

    A bound of 0 asks nothing. A count known to fall short wins over a count Airbyte did not
    report, and rows come before bytes: TooFewRows, then TooFewBytes, then RowsUnknown."""
    asked = [
        (reason, what, key, minimum, count)
        for reason, what, key, minimum, count in (
            (n.TOO_FEW_ROWS, "rows", "minRowsSynced", spec.min_rows_synced, job.rows_synced),
            (n.TOO_FEW_BYTES, "bytes", "minBytesSynced", spec.min_bytes_synced, job.bytes_synced),
        )
        if minimum
    ]
    for reason, what, key, minimum, count in asked:
        if count is not None and count < minimum:
            return reason, f"{job_name} succeeded with {count} {what} synced; spec.expect.{key} is {minimum}"
    unknown = [(what, key, minimum) for _, what, key, minimum, count in asked if count is None]
    if not unknown:
        return None
    whats = " or ".join(what for what, _, _ in unknown)
    bounds = ", ".join(f"spec.expect.{key} is {minimum}" for _, key, minimum in unknown)
    return n.ROWS_UNKNOWN, f"{job_name} succeeded, but Airbyte did not report the {whats} synced; {bounds}"


def _timed_out(
    finish: Callable[[str, str, str], Decision], job_name: str, spec: WatchSpec, last: str
) -> Decision:
    return finish(
        FAILED,
        n.TIMED_OUT,
        f"{job_name} did not finish within {format_duration(spec.timeout)} ({last})",
    )


def _until(delay: float, now: datetime.datetime, deadline: datetime.datetime) -> float:
    """Never sleep past the deadline: the poll at the deadline decides TimedOut."""
    return max(0.0, min(delay, (deadline - now).total_seconds()))


def _reconciling_reason(status: Mapping[str, Any]) -> str | None:
    found = c.find(status.get("conditions") or [], n.RECONCILING)
    return found.get("reason") if found else None


def _stalled_reason(status: Mapping[str, Any]) -> str | None:
    found = c.find(status.get("conditions") or [], n.STALLED)
    return found.get("reason") if found else None
