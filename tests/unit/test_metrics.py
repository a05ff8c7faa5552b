"""What the metrics tell an SRE, in both poll modes, on a fake clock: the alert on an
unreachable server (errors over polls, by server) and the detection delay."""

from __future__ import annotations

import pytest
from airbyte_watch.airbyte import model as at

from tests.support.memory import NAMESPACE, Harness

NS = NAMESPACE
SERVER = "airbyte.test"


def sample(h: Harness, name: str, **labels: str) -> float:
    return h.watches.metrics.registry.get_sample_value(name, labels) or 0.0


def totals(h: Harness) -> tuple[float, float]:
    """(errors, polls) of one server: the two sums the PrometheusRule's unreachable-server
    alert divides, by server."""
    found = {"airbyte_watch_airbyte_api_errors": 0.0, "airbyte_watch_polls": 0.0}
    for metric in h.watches.metrics.registry.collect():
        if metric.name in found:
            ours = [s for s in metric.samples if s.name.endswith("_total") and s.labels["server"] == SERVER]
            found[metric.name] += sum(s.value for s in ours)
    return found["airbyte_watch_airbyte_api_errors"], found["airbyte_watch_polls"]


@pytest.mark.parametrize("mode", ["list", "get"])
async def test_a_server_that_stays_down_shows_as_errors_over_polls_in_both_modes(mode: str) -> None:
    """In list mode the steps are served the walk's problem without a request of their own, so
    the failed pages must count as polls and errors, or the alert's ratio is 0/0 and never fires."""
    h = Harness(poll_mode=mode)
    for job_id in (7, 8, 9):
        h.airbyte.add_job(job_id, "running")
        h.kube.create(NS, f"w{job_id}", {"jobId": job_id, "pollInterval": "30s"})
    await h.run_for(60)
    errors, polls = totals(h)
    assert errors == 0 and polls > 0
    h.airbyte.faults = [at.Problem(at.UNREACHABLE, "connection refused")] * 10_000
    await h.run_for(900)
    errors_down, polls_down = totals(h)
    assert errors_down - errors >= 10  # retried with backoff: no storm, but seen
    assert errors_down - errors == polls_down - polls  # the outage's ratio is 1: the alert fires
    failed = sample(h, "airbyte_watch_polls_total", server=SERVER, outcome=at.UNREACHABLE)
    if mode == "list":
        pages = sample(h, "airbyte_watch_job_list_pages_total", server=SERVER, outcome=at.UNREACHABLE)
        assert pages == failed == errors_down


async def test_list_pages_are_polls_and_their_time_is_poll_time() -> None:
    h = Harness(poll_mode="list")
    h.airbyte.add_job(7, "running")
    h.kube.create(NS, "w", {"jobId": 7, "pollInterval": "30s"})
    await h.run_for(300)
    listed = sample(h, "airbyte_watch_polls_total", server=SERVER, outcome="listed")
    gets = sample(h, "airbyte_watch_polls_total", server=SERVER, outcome="running")
    assert listed == sample(h, "airbyte_watch_job_list_pages_total", server=SERVER, outcome="ok") >= 9
    assert gets == 1  # the first read
    assert sample(h, "airbyte_watch_poll_duration_seconds_count", server=SERVER) == listed + gets


@pytest.mark.parametrize("mode", ["list", "get"])
async def test_the_detection_delay_runs_from_the_jobs_end_by_airbytes_clock_to_its_status(mode: str) -> None:
    h = Harness(poll_mode=mode)
    job = h.airbyte.add_job(7, "running")
    h.kube.create(NS, "w", {"jobId": 7, "pollInterval": "30s"})
    await h.run_for(45)
    h.airbyte.move(job, "failed", failure="boom")
    ended = h.clock.now().timestamp()
    patched: list[float] = []

    async def note(verb: str, name: str) -> None:
        if verb == "replace_status":
            patched.append(h.clock.now().timestamp())

    h.kube.before_write = note
    await h.run_for(40)
    assert h.obj("w")["status"]["phase"] == "Failed" and len(patched) == 1
    assert sample(h, "airbyte_watch_detection_delay_seconds_count", server=SERVER) == 1
    delay = sample(h, "airbyte_watch_detection_delay_seconds_sum", server=SERVER)
    written = patched[0]
    # Airbyte renders whole seconds: the delay may read up to 1 s long.
    assert written - ended <= delay <= written - ended + 1.0 and delay <= 31.0


async def test_a_watch_that_times_out_observes_no_detection_delay() -> None:
    h = Harness()
    h.airbyte.add_job(7, "running")
    h.kube.create(NS, "w", {"jobId": 7, "pollInterval": "30s", "timeout": "60s"})
    await h.run_for(120)
    assert h.obj("w")["status"]["phase"] == "Failed"  # TimedOut: the job still runs
    assert sample(h, "airbyte_watch_detection_delay_seconds_count", server=SERVER) == 0


async def test_an_airbyte_clock_ahead_of_ours_never_observes_a_negative_delay() -> None:
    h = Harness()
    h.airbyte.skew = 120.0
    job = h.airbyte.add_job(7, "running")
    h.kube.create(NS, "w", {"jobId": 7, "pollInterval": "30s"})
    await h.run_for(10)
    h.airbyte.move(job, "succeeded")
    await h.run_for(40)
    assert sample(h, "airbyte_watch_detection_delay_seconds_count", server=SERVER) == 1
    assert sample(h, "airbyte_watch_detection_delay_seconds_sum", server=SERVER) == 0.0


async def test_a_job_that_ended_before_its_watch_first_read_it_observes_no_delay() -> None:
    """Its "delay" would be how late the watch was created, hours perhaps, not how late we saw."""
    h = Harness()
    h.airbyte.add_job(7, "succeeded")
    h.clock.advance(3600)
    h.kube.create(NS, "w", {"jobId": 7, "pollInterval": "30s"})
    await h.run_for(10)
    assert h.obj("w")["status"]["phase"] == "Succeeded"
    assert sample(h, "airbyte_watch_detection_delay_seconds_count", server=SERVER) == 0
