"""Condition helpers keep the invariants Flux's helpers keep."""

from __future__ import annotations

from airbyte_watch.core import conditions as c

T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def test_waiting_then_stalled_then_ready_never_mix_reconciling_and_stalled() -> None:
    waiting = c.mark_waiting([], "JobRunning", "running", 1, T1)
    assert [x["type"] for x in waiting] == ["Ready", "Reconciling"]
    stalled = c.mark_stalled(waiting, "JobFailed", "failed", 1, T2)
    assert [x["type"] for x in stalled] == ["Ready", "Stalled"]
    ready = c.mark_ready(stalled, "JobSucceeded", "ok", 1, T2)
    assert [x["type"] for x in ready] == ["Ready"]


def test_transition_time_kept_while_status_is_unchanged() -> None:
    first = c.upsert([], "Ready", "Unknown", "JobPending", "pending", 1, T1)
    second = c.upsert(first, "Ready", "Unknown", "JobRunning", "running", 2, T2)
    assert second[0]["lastTransitionTime"] == T1
    assert second[0]["reason"] == "JobRunning" and second[0]["observedGeneration"] == 2
    third = c.upsert(second, "Ready", "True", "JobSucceeded", "ok", 2, T2)
    assert third[0]["lastTransitionTime"] == T2
