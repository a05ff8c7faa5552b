"""Never stuck, never twice: one test per way a watch could break its promise (issue 10).

Each drives the operator on in-memory Kubernetes and Airbyte with a fake clock, so the
interleaving that breaks it happens every time, not now and then.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from airbyte_watch.airbyte import model as at
from airbyte_watch.core.text import MESSAGE_LIMIT

from tests.support.memory import NAMESPACE, SECRET_VALUE, Harness

NS = NAMESPACE


def status(h: Harness, name: str = "w") -> dict:
    return h.obj(name)["status"]


def cond(h: Harness, type_: str, name: str = "w") -> dict | None:
    return next((c for c in status(h, name).get("conditions", []) if c["type"] == type_), None)


async def test_a_second_edit_while_a_finished_watch_is_acknowledged_is_acknowledged_too() -> None:
    h = Harness()
    h.airbyte.add_job(7, "succeeded")
    h.kube.create(NS, "w", {"jobId": 7})
    await h.run_for(1)
    assert status(h)["phase"] == "Succeeded" and status(h)["observedGeneration"] == 1

    async def edit_again_while_writing(verb: str, name: str) -> None:
        if verb == "replace_status" and h.obj("w")["metadata"]["generation"] == 2:
            h.kube.edit_spec(NS, "w", pollInterval="20s")  # generation 3, as the write is in flight
            h.deliver()

    h.kube.before_write = edit_again_while_writing
    h.kube.edit_spec(NS, "w", pollInterval="10s")
    await h.run_for(1)
    assert h.obj("w")["metadata"]["generation"] == 3
    assert status(h)["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in status(h)["conditions"])


async def test_a_failure_reason_longer_than_the_crd_allows_still_reaches_failed() -> None:
    h = Harness()
    h.airbyte.add_job(7, "failed", failure="destination: " + "x" * 40_000)
    h.kube.create(NS, "w", {"jobId": 7})
    await h.run_for(60)
    assert status(h)["phase"] == "Failed"
    assert len(status(h)["message"]) <= MESSAGE_LIMIT
    assert all(len(c["message"]) <= MESSAGE_LIMIT for c in status(h)["conditions"])
    assert h.reasons("w") == ["JobFailed"]


async def test_a_delete_finishes_when_cancelling_raises_unexpectedly() -> None:
    h = Harness()
    h.airbyte.add_job(7, "running")
    h.kube.create(NS, "w", {"jobId": 7, "cancelOnDelete": True})
    await h.run_for(1)
    assert h.obj("w")["metadata"]["finalizers"] == ["airbyte.watch/cancel-on-delete"]
    # e.g. a 200 answer whose jobId is null, which a parser turned into a TypeError
    h.airbyte.faults = [TypeError("int() argument must be a string, not 'NoneType'")] * 5
    h.kube.delete(NS, "w")
    await h.run_for(60)
    assert (NS, "w") not in h.kube.objects
    assert h.reasons("w") == ["JobRunning", "CancelUnconfirmed"]
    assert not h.watches.known and not h.watches.scheduler.next_due()


async def test_a_corrected_job_id_config_map_is_read_again() -> None:
    h = Harness()
    h.airbyte.add_job(7, "running")
    h.kube.put_data("configmaps", NS, "ids", {"jobId": "abc"})
    h.kube.create(NS, "w", {"jobIdFrom": {"configMapKeyRef": {"name": "ids", "key": "jobId"}}})
    await h.run_for(1)
    assert cond(h, "Stalled")["reason"] == "InvalidJobId" and "'abc'" in status(h)["message"]
    h.kube.put_data("configmaps", NS, "ids", {"jobId": "7"})
    await h.run_for(31)
    assert status(h)["jobId"] == 7 and status(h)["phase"] == "Running"
    assert cond(h, "Stalled") is None
    assert h.reasons("w") == ["InvalidJobId", "JobRunning"]


async def test_a_job_id_config_map_left_bad_times_out_at_the_deadline() -> None:
    h = Harness()
    h.kube.put_data("configmaps", NS, "ids", {"jobId": "-1"})
    spec = {"jobIdFrom": {"configMapKeyRef": {"name": "ids", "key": "jobId"}}, "timeout": "2m"}
    h.kube.create(NS, "w", spec)
    await h.run_for(121)
    assert status(h)["phase"] == "Failed" and cond(h, "Stalled")["reason"] == "TimedOut"
    assert h.reasons("w") == ["InvalidJobId", "TimedOut"]


async def test_a_label_edit_and_a_crash_between_event_and_status_do_not_announce_twice() -> None:
    h = Harness()
    h.airbyte.add_job(7, "succeeded")
    h.kube.fail_patches = 1  # the Event goes out, the status patch after it does not
    h.kube.create(NS, "w", {"jobId": 7})
    await h.settle()
    assert h.reasons("w") == ["JobSucceeded"] and "phase" not in status(h)
    h.kube.edit_labels(NS, "w", team="data")  # moves the resourceVersion, not the transition
    h.crash()
    await h.run_for(30)
    assert status(h)["phase"] == "Succeeded"
    assert h.reasons("w") == ["JobSucceeded"]


async def test_an_event_the_api_server_could_not_take_is_posted_before_the_status_moves_on() -> None:
    h = Harness()
    h.airbyte.add_job(7, "succeeded")
    h.kube.fail_events = 1
    h.kube.create(NS, "w", {"jobId": 7})
    await h.settle()
    assert "phase" not in status(h)  # held back with its Event
    await h.run_for(30)
    assert status(h)["phase"] == "Succeeded"
    assert h.reasons("w") == ["JobSucceeded"]


async def test_a_watch_recreated_under_its_name_during_a_poll_gets_none_of_the_old_status() -> None:
    h = Harness()
    h.airbyte.add_job(1, "running")
    h.airbyte.add_job(2, "pending")
    h.kube.create(NS, "w", {"jobId": 1, "pollInterval": "30s"})
    await h.run_for(1)
    old_uid = h.obj("w")["metadata"]["uid"]
    h.airbyte.gate = asyncio.Event()
    await h.run_for(30)  # the next poll of job 1 waits on Airbyte
    h.hold = True  # the watch stream has not yet told what happens next
    h.kube.delete(NS, "w")
    h.kube.create(NS, "w", {"jobId": 2})
    h.airbyte.move(h.airbyte.jobs[1], "succeeded")
    h.airbyte.gate.set()
    await h.settle()
    assert h.obj("w")["metadata"]["uid"] != old_uid
    assert status(h) == {"observedGeneration": -1}  # nothing of job 1 landed on the new watch
    new_uid = h.obj("w")["metadata"]["uid"]
    assert [e for e in h.kube.events_of(NS, "w") if e["involvedObject"]["uid"] == new_uid] == []
    h.hold = False
    await h.run_for(5)
    assert status(h)["jobId"] == 2 and status(h)["phase"] == "Pending"


async def test_watches_deleted_while_the_stream_was_down_are_forgotten_after_a_relist() -> None:
    h = Harness()
    h.airbyte.add_job(1, "running")
    h.kube.create(NS, "a", {"jobId": 1})
    h.kube.create(NS, "b", {"jobId": 1})
    await h.run_for(1)
    assert h.watches.metrics.watches.labels("Running")._value.get() == 2
    h.kube.delete(NS, "b")
    h.kube.pending.clear()  # the stream broke (410 Gone): its DELETED never arrives
    await h.relist()
    await h.run_for(10)
    assert set(h.watches.known) == {(NS, "a")}
    assert h.watches.metrics.watches.labels("Running")._value.get() == 1
    assert h.watches.scheduler.next_due() is not None and len(h.watches.scheduler) == 1


async def test_a_watch_created_while_the_operator_runs_gets_its_first_status_at_once() -> None:
    """The startup spread is for the watches found at start, not for each one created later:
    `kubectl apply` then `kubectl wait` should not wait up to 5 s for a first status."""
    h = Harness(startup_spread=5.0)
    for i in range(1, 6):
        h.airbyte.add_job(i, "running")
        h.kube.create(NS, f"w{i}", {"jobId": i})
    await h.run_for(0.1)
    assert [status(h, f"w{i}").get("phase") for i in range(1, 6)] == ["Running"] * 5


async def test_credential_values_never_reach_status_events_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h = Harness()
    h.airbyte.add_job(7, "running")
    echo = f"500 upstream said: POST /applications/token client_secret={SECRET_VALUE}&grant_type=x"
    h.airbyte.faults = [at.Problem(at.SERVER_ERROR, echo, 500)]
    h.kube.create(NS, "w", {"jobId": 7})
    await h.run_for(1)
    assert cond(h, "Reconciling")["reason"] == "ProgressingWithRetry"
    assert "[redacted]" in status(h)["message"]
    written = repr(h.kube.objects) + repr(h.kube.events) + caplog.text
    assert SECRET_VALUE not in written


async def test_adoption_after_a_lost_answer_does_not_trust_the_operators_clock() -> None:
    h = Harness()
    h.airbyte.skew = -3600.0  # Airbyte's clock is an hour behind ours
    h.airbyte.add_job(40, "succeeded", connection_id="c-1")  # an older job on the connection
    h.airbyte.lose_next_post_answer = True
    h.kube.create(NS, "w", {"connectionId": "c-1"})
    await h.run_for(120)
    assert h.airbyte.posts == 1
    assert status(h)["jobId"] == 100 and status(h)["phase"] == "Running"


async def test_a_clear_whose_answer_was_lost_is_adopted_not_posted_again() -> None:
    h = Harness()
    h.airbyte.lose_next_post_answer = True
    h.kube.create(NS, "w", {"connectionId": "c-1", "jobType": "clear"})
    await h.run_for(120)
    assert h.airbyte.posts == 1
    assert h.airbyte.jobs[100].job_type == "reset"  # how Airbyte reads a clear back
    assert status(h)["jobId"] == 100


async def test_a_secret_naming_a_url_the_admin_did_not_allow_stalls_the_watch() -> None:
    h = Harness(allowed_urls=("https://*.airbyte.internal",))
    h.kube.put_data("secrets", NS, "meta", {"url": "http://169.254.169.254/latest/meta-data"})
    h.airbyte.add_job(7, "running")
    h.kube.create(NS, "w", {"jobId": 7, "serverRef": {"name": "meta"}})
    await h.run_for(1)
    assert cond(h, "Stalled")["reason"] == "InvalidSecret"
    assert "may not call" in status(h)["message"] and "https://*.airbyte.internal" in status(h)["message"]
    assert h.airbyte.requests == 0
    assert h.reasons("w") == ["InvalidSecret"]


async def test_an_outcome_announced_before_a_crash_stands_when_the_retry_decides_another() -> None:
    h = Harness()
    h.airbyte.add_job(7, "running")
    h.airbyte.faults = [at.Problem(at.NOT_FOUND, "404 no such job", 404)]  # a lying proxy, once
    h.kube.fail_patches = 1  # the JobNotFound Event goes out, the status after it does not
    h.kube.create(NS, "w", {"jobId": 7, "timeout": "1m"})
    await h.settle()
    assert h.reasons("w") == ["JobNotFound"] and "phase" not in status(h)
    h.crash()
    await h.run_for(120)  # the retry reads the job running, then the deadline passes
    assert h.reasons("w") == ["JobNotFound", "JobRunning"]  # no TimedOut: one outcome
    assert status(h)["phase"] == "Failed" and cond(h, "Stalled")["reason"] == "JobNotFound"


async def test_in_list_mode_a_watch_learns_its_outcome_from_a_walk_not_its_own_reads() -> None:
    h = Harness(poll_mode="list")
    job = h.airbyte.add_job(7, "running")
    h.kube.create(NS, "w", {"jobId": 7, "pollInterval": "30s"})
    await h.run_for(1)
    assert status(h)["phase"] == "Running" and h.airbyte.requests == 1  # the first read: a GET
    await h.run_for(300)  # ten intervals: a walk every list interval (5 s), no GET
    assert h.airbyte.requests == 61
    h.airbyte.move(job, "succeeded")
    await h.run_for(5)  # the next walk, not the next pollInterval, brings the news
    assert status(h)["phase"] == "Succeeded" and h.airbyte.requests == 62
    assert h.reasons("w") == ["JobRunning", "JobSucceeded"]


@pytest.mark.parametrize(("list_interval", "walks"), [(5.0, 60), (30.0, 10), (60.0, 10)])
async def test_walks_come_every_list_interval_or_sooner_for_a_shorter_poll_interval(
    list_interval: float, walks: int
) -> None:
    """`--list-interval` sets the walks' cadence; a watch's shorter pollInterval brings them
    sooner (a 30 s watch under a 60 s list interval is still walked every 30 s)."""
    h = Harness(poll_mode="list", list_interval=list_interval)
    h.airbyte.add_job(7, "running")
    h.kube.create(NS, "w", {"jobId": 7, "pollInterval": "30s"})
    await h.run_for(1)
    before = h.airbyte.lists
    await h.run_for(300)
    assert h.airbyte.lists - before == walks


async def test_in_list_mode_a_server_on_the_config_api_is_read_per_job_beside_a_listed_one() -> None:
    """The legacy config API has no jobs list by update time: its watches read their own job
    each interval, while the public server's watches are served by its walks."""
    h = Harness(poll_mode="list")
    login = {"url": "https://legacy.test/api", "username": "u", "password": SECRET_VALUE, "api": "config"}
    h.kube.put_data("secrets", NS, "legacy", login)
    job = h.airbyte.add_job(7, "running")
    h.airbyte.add_job(8, "running")
    h.kube.create(NS, "old", {"jobId": 7, "pollInterval": "30s", "serverRef": {"name": "legacy"}})
    h.kube.create(NS, "new", {"jobId": 8, "pollInterval": "30s"})
    await h.run_for(1)
    assert h.airbyte.requests == 2  # each watch's first read
    await h.run_for(300)
    # Ten intervals: the legacy watch's own ten GETs, and a walk every list interval (5 s) for
    # the public one's server.
    assert h.airbyte.requests == 2 + 10 + 60 and h.airbyte.lists == 60 and len(h.watches.feeds) == 1
    h.airbyte.move(job, "failed", failure="boom")
    await h.run_for(31)
    assert status(h, "old")["phase"] == "Failed" and h.reasons("old") == ["JobRunning", "JobFailed"]
    assert status(h, "new")["phase"] == "Running"


async def test_in_list_mode_a_cancel_at_the_deadline_reads_the_job_first() -> None:
    """The walk's news may be an interval old, and Airbyte cancels whatever the connection runs
    now: cancelling on that news could stop the connection's next job."""
    h = Harness(poll_mode="list")
    first = h.airbyte.add_job(7, "running", connection_id="c-1")
    h.kube.create(NS, "w", {"jobId": 7, "pollInterval": "30s", "timeout": "60s", "cancelOnTimeout": True})
    await h.run_for(45)
    h.airbyte.move(first, "succeeded")
    second = h.airbyte.add_job(8, "running", connection_id="c-1")  # someone else's sync
    await h.run_for(20)  # the deadline's step comes before the next walk
    assert second.status == "running" and h.airbyte.cancels == []
    assert status(h)["phase"] == "Succeeded"


async def test_in_list_mode_a_job_ending_after_airbytes_clock_went_back_is_seen_by_the_next_walks() -> None:
    """Airbyte's clock steps back an hour; a job ends right after. Its row carries a time before
    the watermark: the walk that hears Airbyte's earlier `Date` reads again from before, and the
    watch learns it within a few list intervals, not at its safety re-read 100 intervals on."""
    h = Harness(poll_mode="list")
    job = h.airbyte.add_job(7, "running")
    h.kube.create(NS, "w", {"jobId": 7, "pollInterval": "30s", "timeout": "2h"})
    await h.run_for(12)
    h.airbyte.skew -= 3600
    h.airbyte.move(job, "succeeded")
    await h.run_for(12)
    assert status(h)["phase"] == "Succeeded"
