"""The decision core, row by row of the condition table in the end-to-end issue."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from airbyte_watch.airbyte import model as at
from airbyte_watch.core import conditions as c
from airbyte_watch.core.decision import (
    FINAL_REASONS,
    Decision,
    as_announced,
    backoff_delay,
    decide,
    restamp,
    wants_cancel,
)
from airbyte_watch.core.spec import InvalidSpec, WatchSpec
from airbyte_watch.core.text import MESSAGE_LIMIT

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
SPEC = WatchSpec(
    job_id=7,
    server_secret="airbyte",
    poll_interval=30.0,
    timeout=3600.0,
    backoff_exponential=True,
    backoff_max_delay=300.0,
    on_unknown_status="Fail",
)
FRESH = {"observedGeneration": -1}  # what the schema default gives a new watch


def at_(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def job(status: str, **kw: object) -> at.Job:
    return at.Job(job_id=7, status=status, **kw)  # type: ignore[arg-type]


def cond(decision: Decision, type_: str) -> dict | None:
    found = c.find(decision.status["conditions"], type_)
    return dict(found) if found else None


def types(decision: Decision) -> set[str]:
    return {x["type"] for x in decision.status["conditions"]}


def reasons(decision: Decision) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in decision.events]


# --- waiting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "phase", "reason"),
    [
        ("pending", "Pending", "JobPending"),
        ("queued", "Pending", "JobQueued"),
        ("running", "Running", "JobRunning"),
        ("incomplete", "Running", "JobIncomplete"),
    ],
)
def test_waiting_statuses_keep_waiting(word: str, phase: str, reason: str) -> None:
    d = decide(SPEC, FRESH, 0, job(word), T0, 1)
    assert d.status["phase"] == phase
    assert d.status["jobStatus"] == word
    assert cond(d, "Ready")["status"] == "Unknown"
    assert cond(d, "Reconciling") == {
        "type": "Reconciling",
        "status": "True",
        "reason": reason,
        "message": d.status["message"],
        "observedGeneration": 1,
        "lastTransitionTime": "2026-01-01T12:00:00Z",
    }
    assert "Stalled" not in types(d)
    assert d.next_poll_in == 30.0
    assert d.failures == 0
    assert "completedAt" not in d.status


def test_first_reconcile_writes_start_deadline_and_generation() -> None:
    d = decide(SPEC, FRESH, 0, job("pending"), T0, 3)
    assert d.status["startedAt"] == "2026-01-01T12:00:00Z"
    assert d.status["deadline"] == "2026-01-01T13:00:00Z"
    assert d.status["observedGeneration"] == 3
    assert d.status["jobId"] == 7
    assert all(x["observedGeneration"] == 3 for x in d.status["conditions"])


def test_deadline_counts_from_stored_start_not_from_now() -> None:
    first = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    later = decide(SPEC, first.status, 0, job("running"), at_(1800), 1)
    assert later.status["startedAt"] == first.status["startedAt"]
    assert later.status["deadline"] == "2026-01-01T13:00:00Z"


def test_same_answer_again_changes_nothing_so_nothing_is_patched() -> None:
    first = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    again = decide(SPEC, first.status, 0, job("running"), at_(30), 1)
    assert again.status == first.status
    assert again.events == ()


def test_job_running_event_once_on_entering_running() -> None:
    pending = decide(SPEC, FRESH, 0, job("pending"), T0, 1)
    assert pending.events == ()
    running = decide(SPEC, pending.status, 0, job("running"), at_(30), 1)
    assert reasons(running) == [("Normal", "JobRunning")]
    incomplete = decide(SPEC, running.status, 0, job("incomplete"), at_(60), 1)
    assert incomplete.events == ()
    again = decide(SPEC, incomplete.status, 0, job("running"), at_(90), 1)
    assert again.events == ()


def test_last_transition_time_moves_only_when_status_changes() -> None:
    pending = decide(SPEC, FRESH, 0, job("pending"), T0, 1)
    running = decide(SPEC, pending.status, 0, job("running"), at_(30), 1)
    # Ready stays Unknown: reason and message change, the transition time does not.
    assert cond(running, "Ready")["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert cond(running, "Ready")["reason"] == "JobRunning"
    done = decide(SPEC, running.status, 0, job("succeeded"), at_(60), 1)
    assert cond(done, "Ready")["lastTransitionTime"] == "2026-01-01T12:01:00Z"


# --- final outcomes ------------------------------------------------------------------------


def test_succeeded_is_ready_and_final() -> None:
    running = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    d = decide(
        SPEC,
        running.status,
        0,
        job("succeeded", rows_synced=45, bytes_synced=1234, job_type="sync", connection_id="c"),
        at_(30),
        1,
    )
    assert d.status["phase"] == "Succeeded"
    assert types(d) == {"Ready"}
    assert cond(d, "Ready")["status"] == "True"
    assert cond(d, "Ready")["reason"] == "JobSucceeded"
    assert d.status["rowsSynced"] == 45 and d.status["bytesSynced"] == 1234
    assert d.status["jobType"] == "sync" and d.status["connectionId"] == "c"
    assert d.status["completedAt"] == "2026-01-01T12:00:30Z"
    assert d.next_poll_in is None
    assert reasons(d) == [("Normal", "JobSucceeded")]
    assert "45 rows" in d.events[0].message and "Airbyte job 7" in d.events[0].message


@pytest.mark.parametrize(
    ("word", "phase", "reason"),
    [("failed", "Failed", "JobFailed"), ("cancelled", "Cancelled", "JobCancelled")],
)
def test_failed_and_cancelled_are_stalled_and_final(word: str, phase: str, reason: str) -> None:
    running = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    d = decide(SPEC, running.status, 0, job(word), at_(30), 1)
    assert d.status["phase"] == phase
    assert cond(d, "Ready")["status"] == "False" and cond(d, "Ready")["reason"] == reason
    assert cond(d, "Stalled")["status"] == "True" and cond(d, "Stalled")["reason"] == reason
    assert "Reconciling" not in types(d)
    assert d.next_poll_in is None
    assert reasons(d) == [("Warning", reason)]


def test_unknown_status_fails_by_default() -> None:
    d = decide(SPEC, FRESH, 0, job("exploded"), T0, 1)
    assert d.status["phase"] == "Failed"
    assert cond(d, "Stalled")["reason"] == "UnknownJobStatus"
    assert "'exploded'" in cond(d, "Ready")["message"]
    assert reasons(d) == [("Warning", "UnknownJobStatus")]
    assert d.next_poll_in is None


def test_unknown_status_waits_when_asked() -> None:
    spec = dataclasses.replace(SPEC, on_unknown_status="Wait")
    d = decide(spec, FRESH, 0, job("exploded"), T0, 1)
    assert cond(d, "Reconciling")["reason"] == "UnknownJobStatusWaiting"
    assert cond(d, "Ready")["status"] == "Unknown"
    assert d.next_poll_in == 30.0
    assert d.events == ()


def test_upper_case_status_is_unknown_not_guessed() -> None:
    # Airbyte sends lower-case words; anything else is not silently mapped.
    d = decide(SPEC, FRESH, 0, job("SUCCEEDED"), T0, 1)
    assert cond(d, "Stalled")["reason"] == "UnknownJobStatus"


def test_job_not_found_is_final() -> None:
    d = decide(SPEC, FRESH, 0, at.Problem(at.NOT_FOUND, "404 resource-not-found"), T0, 1)
    assert d.status["phase"] == "Failed"
    assert cond(d, "Stalled")["reason"] == "JobNotFound"
    assert "404 resource-not-found" in cond(d, "Ready")["message"]
    assert reasons(d) == [("Warning", "JobNotFound")]
    assert d.next_poll_in is None


# --- the deadline --------------------------------------------------------------------------


def test_poll_before_deadline_waits_and_sleeps_no_later_than_it() -> None:
    first = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    d = decide(SPEC, first.status, 0, job("running"), at_(3590), 1)
    assert cond(d, "Reconciling") is not None
    assert d.next_poll_in == pytest.approx(10.0)


def test_poll_at_deadline_times_out() -> None:
    first = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    d = decide(SPEC, first.status, 0, job("running"), at_(3600), 1)
    assert d.status["phase"] == "Failed"
    assert cond(d, "Stalled")["reason"] == "TimedOut"
    assert "within 1h" in cond(d, "Ready")["message"]
    assert "last status: running" in cond(d, "Ready")["message"]
    assert reasons(d) == [("Warning", "TimedOut")]
    assert d.next_poll_in is None


def test_success_seen_at_the_deadline_wins() -> None:
    first = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    d = decide(SPEC, first.status, 0, job("succeeded"), at_(3600), 1)
    assert d.status["phase"] == "Succeeded"


def test_outage_at_the_deadline_times_out_naming_the_error() -> None:
    first = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    d = decide(SPEC, first.status, 0, at.Problem(at.UNREACHABLE, "refused"), at_(3601), 1)
    assert cond(d, "Stalled")["reason"] == "TimedOut"
    assert "refused" in cond(d, "Ready")["message"]


# --- transient API trouble -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", [at.UNREACHABLE, at.TIMEOUT, at.SERVER_ERROR, at.MALFORMED, at.RATE_LIMITED, at.CLIENT_ERROR]
)
def test_transient_problems_keep_waiting_with_retry(kind: str) -> None:
    running = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    d = decide(SPEC, running.status, 0, at.Problem(kind, "boom"), at_(30), 1)
    assert cond(d, "Ready")["status"] == "Unknown"
    assert cond(d, "Reconciling")["reason"] == "ProgressingWithRetry"
    assert kind in cond(d, "Reconciling")["message"] and "next try in 30s" in d.status["message"]
    assert "Stalled" not in types(d)
    assert d.status["phase"] == "Running"  # the job's last known phase is kept
    assert d.failures == 1
    assert reasons(d) == [("Warning", "AirbyteUnreachable")]


def test_one_unreachable_event_per_outage_and_one_reachable_after() -> None:
    s = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    posted = []
    failures = 0
    for i in range(1, 5):
        s = decide(SPEC, s.status, failures, at.Problem(at.SERVER_ERROR, "503"), at_(30 * i), 1)
        failures = s.failures
        posted += reasons(s)
    assert posted == [("Warning", "AirbyteUnreachable")]
    back = decide(SPEC, s.status, failures, job("running"), at_(300), 1)
    assert reasons(back) == [("Normal", "AirbyteReachable")]
    assert back.failures == 0
    assert cond(back, "Reconciling")["reason"] == "JobRunning"


def test_exponential_backoff_doubles_to_the_cap_and_resets() -> None:
    delays = []
    s = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    failures = 0
    for i in range(1, 8):
        s = decide(SPEC, s.status, failures, at.Problem(at.TIMEOUT, "slow"), at_(i), 1)
        failures = s.failures
        delays.append(s.next_poll_in)
    assert delays == [30, 60, 120, 240, 300, 300, 300]
    ok = decide(SPEC, s.status, failures, job("running"), at_(10), 1)
    assert ok.next_poll_in == 30 and ok.failures == 0


def test_backoff_without_exponential_keeps_the_interval() -> None:
    spec = dataclasses.replace(SPEC, backoff_exponential=False)
    assert [backoff_delay(spec, n) for n in range(1, 6)] == [30.0] * 5


def test_backoff_formula_matches_the_spec() -> None:
    spec = dataclasses.replace(SPEC, poll_interval=5.0, backoff_max_delay=3600.0)
    assert [backoff_delay(spec, n) for n in range(1, 6)] == [5, 10, 20, 40, 80]
    assert backoff_delay(spec, 10_000) == 3600.0  # no overflow for very long outages


def test_rate_limit_honours_retry_after_but_not_faster_than_the_interval() -> None:
    s = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    later = decide(SPEC, s.status, 0, at.Problem(at.RATE_LIMITED, "429", 429, 90.0), at_(1), 1)
    assert later.next_poll_in == 90.0
    sooner = decide(SPEC, s.status, 0, at.Problem(at.RATE_LIMITED, "429", 429, 2.0), at_(1), 1)
    assert sooner.next_poll_in == 30.0
    absent = decide(SPEC, s.status, 3, at.Problem(at.RATE_LIMITED, "429", 429, None), at_(1), 1)
    assert absent.next_poll_in == 240.0  # backs off like any other fault


# --- stalled until fixed: Secret and credentials -------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (at.SECRET_NOT_FOUND, "SecretNotFound"),
        (at.INVALID_SECRET, "InvalidSecret"),
        (at.AUTH_FAILED, "AuthenticationFailed"),
    ],
)
def test_secret_and_credential_problems_stall_but_recheck(kind: str, reason: str) -> None:
    d = decide(SPEC, FRESH, 0, at.Problem(kind, "the detail"), T0, 1)
    assert cond(d, "Ready")["status"] == "False"
    assert cond(d, "Stalled")["reason"] == reason
    assert "Reconciling" not in types(d)
    assert d.status["phase"] == "Pending"  # not final
    assert d.next_poll_in == 30.0 and d.failures == 1
    assert reasons(d) == [("Warning", reason)]
    again = decide(SPEC, d.status, d.failures, at.Problem(kind, "the detail"), at_(30), 1)
    assert again.events == () and again.next_poll_in == 60.0
    assert again.status == d.status
    fixed = decide(SPEC, again.status, again.failures, job("running"), at_(90), 1)
    assert "Stalled" not in types(fixed)
    assert cond(fixed, "Reconciling")["reason"] == "JobRunning"
    assert cond(fixed, "Ready")["status"] == "Unknown"


def test_stalled_reason_change_posts_the_new_reason() -> None:
    d = decide(SPEC, FRESH, 0, at.Problem(at.SECRET_NOT_FOUND, "missing"), T0, 1)
    d2 = decide(SPEC, d.status, d.failures, at.Problem(at.INVALID_SECRET, "no url"), at_(30), 1)
    assert reasons(d2) == [("Warning", "InvalidSecret")]


# --- spec trouble and edits ----------------------------------------------------------------


def test_invalid_spec_stalls_without_polling_and_reports_once() -> None:
    error = InvalidSpec("pollInterval", "'fast' is not a duration")
    d = decide(error, FRESH, 0, None, T0, 2)
    assert cond(d, "Stalled")["reason"] == "InvalidSpec"
    assert "spec.pollInterval" in cond(d, "Ready")["message"]
    assert d.next_poll_in is None
    assert reasons(d) == [("Warning", "InvalidSpec")]
    assert decide(error, d.status, 0, None, at_(5), 2).events == ()


def test_a_final_watch_is_only_restamped_whatever_the_answer() -> None:
    done = decide(SPEC, FRESH, 0, job("succeeded"), T0, 1)
    again = decide(SPEC, done.status, 0, None, at_(60), 2)
    assert again == Decision(restamp(done.status, 2), (), None, 0)


def test_restamp_acknowledges_an_edit_of_a_final_watch() -> None:
    done = decide(SPEC, FRESH, 0, job("succeeded"), T0, 1)
    again = restamp(done.status, 2)
    assert again["observedGeneration"] == 2
    assert all(x["observedGeneration"] == 2 for x in again["conditions"])
    assert again["conditions"][0]["lastTransitionTime"] == done.status["conditions"][0]["lastTransitionTime"]


def test_restart_with_stored_running_status_posts_no_second_job_running() -> None:
    # What the operator finds in the cluster after a restart is all it knows.
    before = decide(SPEC, decide(SPEC, FRESH, 0, job("pending"), T0, 1).status, 0, job("running"), T0, 1)
    after_restart = decide(SPEC, before.status, 0, job("running"), at_(100), 1)
    assert after_restart.events == ()
    finished_while_down = decide(SPEC, before.status, 0, job("succeeded"), at_(200), 1)
    assert reasons(finished_while_down) == [("Normal", "JobSucceeded")]


# --- job id from a ConfigMap, cancel on timeout ----------------------------------------------

FROM_CONFIG_MAP = dataclasses.replace(SPEC, job_id=None)


def test_waiting_for_the_job_id_keeps_waiting_without_backoff_or_events() -> None:
    d = decide(
        FROM_CONFIG_MAP, FRESH, 0, at.Problem(at.WAITING_FOR_JOB_ID, "ConfigMap 'ids' not found"), T0, 1
    )
    assert cond(d, "Reconciling")["reason"] == "WaitingForJobId"
    assert cond(d, "Ready")["status"] == "Unknown" and "Stalled" not in types(d)
    assert "ConfigMap 'ids' not found" in d.status["message"]
    assert "jobId" not in d.status
    assert (d.next_poll_in, d.failures, d.events) == (30.0, 0, ())


def test_a_job_id_that_never_appears_times_out() -> None:
    first = decide(FROM_CONFIG_MAP, FRESH, 0, at.Problem(at.WAITING_FOR_JOB_ID, "no key"), T0, 1)
    d = decide(FROM_CONFIG_MAP, first.status, 0, at.Problem(at.WAITING_FOR_JOB_ID, "no key"), at_(3600), 1)
    assert cond(d, "Stalled")["reason"] == "TimedOut"


def test_a_job_id_config_map_with_a_bad_value_stalls_and_is_read_again_until_the_deadline() -> None:
    bad = at.Problem(at.INVALID_JOB_ID, "ConfigMap 'ids' key 'jobId' holds 'abc', not a job id")
    d = decide(FROM_CONFIG_MAP, FRESH, 0, bad, T0, 1)
    assert cond(d, "Stalled")["reason"] == "InvalidJobId" and cond(d, "Ready")["status"] == "False"
    assert (d.next_poll_in, d.failures) == (30.0, 0)
    assert reasons(d) == [("Warning", "InvalidJobId")]
    again = decide(FROM_CONFIG_MAP, d.status, 0, bad, at_(30), 1)
    assert again.events == () and again.next_poll_in == 30.0
    fixed = decide(dataclasses.replace(SPEC, job_id=8), again.status, 0, job("running"), at_(60), 1)
    assert cond(fixed, "Reconciling")["reason"] == "JobRunning" and "Stalled" not in types(fixed)
    late = decide(FROM_CONFIG_MAP, again.status, 0, bad, at_(3600), 1)
    assert cond(late, "Stalled")["reason"] == "TimedOut" and late.next_poll_in is None


def test_every_message_is_bounded_whatever_airbyte_says() -> None:
    huge = "x" * 100_000
    for answer in (job("failed", failure=huge), at.Problem(at.SERVER_ERROR, huge),
                   at.Problem(at.AUTH_FAILED, huge), at.Problem(at.INVALID_JOB_ID, huge)):  # fmt: skip
        d = decide(SPEC, FRESH, 0, answer, T0, 1)
        texts = [d.status["message"], *(x["message"] for x in d.status["conditions"])]
        texts += [e.message for e in d.events]
        assert texts and all(len(t) <= MESSAGE_LIMIT for t in texts)
        assert "more characters" in d.status["message"]


def test_cancel_only_when_asked_and_the_job_was_seen_running() -> None:
    running = decide(SPEC, FRESH, 0, job("running"), T0, 1)
    assert not wants_cancel(SPEC, running.status, job("running"), at_(3600))
    cancelling = dataclasses.replace(SPEC, cancel_on_timeout=True)
    assert wants_cancel(cancelling, running.status, job("running"), at_(3600))
    assert not wants_cancel(cancelling, running.status, job("running"), at_(3599))
    assert not wants_cancel(cancelling, running.status, job("succeeded"), at_(3600))
    outage = at.Problem(at.UNREACHABLE, "refused")  # the job's state is unknown: nothing to cancel
    assert not wants_cancel(cancelling, running.status, outage, at_(3600))


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        ("cancelled", "cancelled Airbyte job 7"),
        ("finished", "had already finished"),
        ("503 unexpected-problem", "cancelling Airbyte job 7 failed: 503"),
    ],
)
def test_cancel_outcome_is_in_status_and_the_timed_out_event(outcome: str, words: str) -> None:
    cancelling = dataclasses.replace(SPEC, cancel_on_timeout=True)
    running = decide(cancelling, FRESH, 0, job("running"), T0, 1)
    d = decide(cancelling, running.status, 0, job("running"), at_(3600), 1, cancelled=outcome)
    assert d.status["cancelRequested"] is True
    assert words in d.status["message"] and words in cond(d, "Ready")["message"]
    assert reasons(d) == [("Warning", "TimedOut")] and words in d.events[0].message


def test_a_failure_reason_from_airbyte_is_in_the_message_and_event() -> None:
    failed = job("failed", attempts=3, failure="source config_error: bad password")
    d = decide(SPEC, FRESH, 0, failed, T0, 1)
    assert d.status["attempts"] == 3
    assert d.status["message"] == "Airbyte job 7 failed after 3 attempts: source config_error: bad password"
    assert d.events[0].message == d.status["message"]


# --- spec.expect -------------------------------------------------------------------------------


def expecting(rows: int | None = None, bytes_: int | None = None) -> WatchSpec:
    return dataclasses.replace(SPEC, min_rows_synced=rows, min_bytes_synced=bytes_)


def ends_failed(d: Decision, reason: str) -> None:
    """Final, Failed, Stalled with `reason`, one Warning Event carrying the status message."""
    assert d.status["phase"] == "Failed" and d.status["jobStatus"] == "succeeded"
    assert cond(d, "Ready")["status"] == "False" and cond(d, "Ready")["reason"] == reason
    assert cond(d, "Stalled")["status"] == "True" and cond(d, "Stalled")["reason"] == reason
    assert "Reconciling" not in types(d)
    assert d.next_poll_in is None and "completedAt" in d.status
    assert reasons(d) == [("Warning", reason)]
    assert d.events[0].message == d.status["message"] == cond(d, "Ready")["message"]


@pytest.mark.parametrize(
    ("minimum", "rows", "reason"),
    [(1, 0, "TooFewRows"), (100, 99, "TooFewRows"), (100, 100, "JobSucceeded"), (100, 101, "JobSucceeded")],
)
def test_min_rows_synced_below_fails_equal_or_above_succeeds(minimum: int, rows: int, reason: str) -> None:
    running = decide(expecting(rows=minimum), FRESH, 0, job("running"), T0, 1)
    d = decide(expecting(rows=minimum), running.status, 0, job("succeeded", rows_synced=rows, bytes_synced=5),
               at_(30), 1)  # fmt: skip
    assert cond(d, "Ready")["reason"] == reason
    assert d.status["rowsSynced"] == rows
    if reason == "JobSucceeded":
        assert d.status["phase"] == "Succeeded" and reasons(d) == [("Normal", "JobSucceeded")]
    else:
        ends_failed(d, reason)
        assert d.status["message"] == (
            f"Airbyte job 7 succeeded with {rows} rows synced; spec.expect.minRowsSynced is {minimum}"
        )


@pytest.mark.parametrize(
    ("minimum", "count", "reason"),
    [(1024, 1023, "TooFewBytes"), (1024, 1024, "JobSucceeded"), (1024, 4096, "JobSucceeded")],
)
def test_min_bytes_synced_below_fails_equal_or_above_succeeds(minimum: int, count: int, reason: str) -> None:
    succeeded = job("succeeded", rows_synced=3, bytes_synced=count)
    d = decide(expecting(bytes_=minimum), FRESH, 0, succeeded, T0, 1)
    assert cond(d, "Ready")["reason"] == reason
    if reason == "JobSucceeded":
        assert d.status["phase"] == "Succeeded"
    else:
        ends_failed(d, reason)
        assert d.status["message"] == (
            f"Airbyte job 7 succeeded with {count} bytes synced; spec.expect.minBytesSynced is {minimum}"
        )


BOTH_UNKNOWN = "rows or bytes synced; spec.expect.minRowsSynced is 1, spec.expect.minBytesSynced is 10"


@pytest.mark.parametrize(
    ("spec", "rows", "bytes_", "what"),
    [
        (expecting(rows=1), None, 500, "rows synced; spec.expect.minRowsSynced is 1"),
        (expecting(bytes_=10), 5, None, "bytes synced; spec.expect.minBytesSynced is 10"),
        (expecting(1, 10), None, None, BOTH_UNKNOWN),
    ],
)
def test_a_count_airbyte_does_not_report_fails_rows_unknown(
    spec: WatchSpec, rows: int | None, bytes_: int | None, what: str
) -> None:
    d = decide(spec, FRESH, 0, job("succeeded", rows_synced=rows, bytes_synced=bytes_), T0, 1)
    ends_failed(d, "RowsUnknown")
    assert d.status["message"] == f"Airbyte job 7 succeeded, but Airbyte did not report the {what}"


def test_a_count_not_asked_for_may_be_unknown() -> None:
    d = decide(expecting(rows=1), FRESH, 0, job("succeeded", rows_synced=1), T0, 1)
    assert d.status["phase"] == "Succeeded" and reasons(d) == [("Normal", "JobSucceeded")]


@pytest.mark.parametrize(
    ("rows", "bytes_", "reason"),
    [
        (0, 0, "TooFewRows"),  # both short: rows first
        (5, 0, "TooFewBytes"),
        (None, 0, "TooFewBytes"),  # a count known short wins over one not reported
        (0, None, "TooFewRows"),
        (None, 50, "RowsUnknown"),
        (5, 50, "JobSucceeded"),
    ],
)
def test_both_bounds_precedence(rows: int | None, bytes_: int | None, reason: str) -> None:
    d = decide(expecting(1, 10), FRESH, 0, job("succeeded", rows_synced=rows, bytes_synced=bytes_), T0, 1)
    assert cond(d, "Ready")["reason"] == reason
    assert [e.reason for e in d.events] == [reason]


def test_a_bound_of_zero_asks_nothing() -> None:
    for rows in (None, 0):
        d = decide(expecting(0, 0), FRESH, 0, job("succeeded", rows_synced=rows), T0, 1)
        assert d.status["phase"] == "Succeeded" and reasons(d) == [("Normal", "JobSucceeded")]


@pytest.mark.parametrize(("word", "reason"), [("failed", "JobFailed"), ("cancelled", "JobCancelled")])
def test_a_job_that_did_not_succeed_keeps_its_reason_under_a_bound(word: str, reason: str) -> None:
    d = decide(expecting(1, 10), FRESH, 0, job(word, rows_synced=0, bytes_synced=0), T0, 1)
    assert cond(d, "Stalled")["reason"] == reason
    assert reasons(d) == [("Warning", reason)]


def test_without_expect_an_empty_success_is_a_success() -> None:
    for rows in (None, 0):
        d = decide(SPEC, FRESH, 0, job("succeeded", rows_synced=rows, bytes_synced=rows), T0, 1)
        assert d.status["phase"] == "Succeeded" and reasons(d) == [("Normal", "JobSucceeded")]


def test_waiting_jobs_are_not_judged_by_their_counts_yet() -> None:
    d = decide(expecting(1, 10), FRESH, 0, job("running", rows_synced=0, bytes_synced=0), T0, 1)
    assert d.status["phase"] == "Running" and d.next_poll_in == 30.0


def test_a_final_watch_is_not_judged_again_after_an_expect_edit() -> None:
    done = decide(SPEC, FRESH, 0, job("succeeded", rows_synced=0), T0, 1)
    again = decide(expecting(rows=1), done.status, 0, None, at_(30), 2)
    assert again.status["phase"] == "Succeeded" and again.events == ()


@pytest.mark.parametrize("reason", ["TooFewRows", "TooFewBytes", "RowsUnknown"])
def test_expect_outcomes_are_final_reasons_announced_as_failed(reason: str) -> None:
    assert reason in FINAL_REASONS
    running = decide(SPEC, FRESH, 0, job("running"), T0, 1).status
    kept = as_announced(running, reason, "Airbyte job 7 succeeded with 0 rows synced", 1, at_(30))
    assert kept["phase"] == "Failed"
    assert c.find(kept["conditions"], "Stalled")["reason"] == reason
