"""The fake's own fidelity where the contract checks cannot see it: when a job's row says it
changed, and how much a harness may load at once.

The real server stores `updatedAt` when a job's status changes (the job persistence's
`updated_at` column), so jobs that end between two list walks keep the order they ended in.
A fake that stamped the moment someone next looked would give them one timestamp and hide
ordering bugs in the list walks.
"""

from __future__ import annotations

import time

import httpx

from tests.support.fake_airbyte import FakeAirbyte, RunningFake, scripted_end
from tests.support.fake_jobs import FakeJob, JobQuery, Step


def test_a_step_that_ended_by_the_clock_is_stamped_when_it_ended_not_when_next_read() -> None:
    ended = time.time() - 50
    job = FakeJob(1, [Step("running", until=ended), Step("succeeded")], created=ended - 100)
    assert job.peek() == "succeeded"
    assert abs(job.updated - ended) < 1.0


def test_a_step_that_ended_by_its_length_is_stamped_when_it_ended_not_when_next_read() -> None:
    job = FakeJob(1, [Step("running", seconds=40), Step("failed")], created=time.time() - 200)
    job._step_began = time.monotonic() - 100  # began 100 s ago, so it ended 60 s ago
    assert job.current() == "failed"
    assert abs(job.updated - (time.time() - 60)) < 1.0


def test_jobs_that_end_between_two_walks_keep_the_order_they_ended_in() -> None:
    now = time.time()
    jobs = [
        FakeJob(job_id, [Step("running", until=now - ago), Step("succeeded")], created=now - 300)
        for job_id, ago in ((1, 10), (2, 40), (3, 25))
    ]
    for job in reversed(jobs):  # read in another order than they ended
        job.peek()
    found, _ = JobQuery(order_field="updatedAt", updated_start=now - 60).run(jobs)
    assert [job.job_id for job, _ in found] == [2, 3, 1]


def test_a_status_that_stays_the_same_does_not_move_updated_at() -> None:
    start = time.time() - 100
    job = FakeJob(1, [Step("running", until=start + 10), Step("running", until=start + 20), Step("failed")],
                  created=start)  # fmt: skip
    job._advance()
    assert job.peek() == "failed" and abs(job.updated - (start + 20)) < 1.0
    job = FakeJob(2, [Step("running", until=start + 10), Step("running")], created=start)
    assert job.peek() == "running" and job.updated == start


def test_a_harness_can_load_fifty_thousand_jobs_in_one_request() -> None:
    """The benchmark's POST /_fake/jobs at N = 50,000 is several MB: more than aiohttp's 1 MiB
    default, which answered 413 and cut a benchmark run short."""
    entries = [{"id": i, "finishAt": time.time() + 3600, "final": "succeeded"} for i in range(1, 50_001)]
    with RunningFake(FakeAirbyte()) as running:
        answer = httpx.post(f"{running.base}/_fake/jobs", json=entries, timeout=60)
        assert answer.status_code == 200, answer.text[:200]
        assert answer.json() == {"loaded": 50_000} and len(running.fake.jobs) == 50_000
        assert running.fake.jobs[50_000].steps == scripted_end(entries[-1])


def test_a_job_loaded_over_http_runs_since_its_created_at_as_one_from_a_jobs_file() -> None:
    since = time.time() - 600
    entry = {"id": 7, "finishAt": time.time() + 3600, "createdAt": since}
    with RunningFake(FakeAirbyte()) as running:
        assert httpx.post(f"{running.base}/_fake/jobs", json=[entry], timeout=10).status_code == 200
        job = running.fake.jobs[7]
        assert job.created == since and job.updated == since and job.peek() == "running"
