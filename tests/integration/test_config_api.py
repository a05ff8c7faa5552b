"""The legacy config API (`api: config`): POST /jobs/get and /jobs/cancel, attempts and failures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from airbyte_watch.airbyte import model as at
from airbyte_watch.airbyte.client import AirbyteClient
from airbyte_watch.airbyte.server_config import ServerConfig, parse_server_config

from tests.support.fake_airbyte import FakeAirbyte, RunningFake, Step

FAILURE = {"failureOrigin": "source", "failureType": "config_error",
           "externalMessage": "Invalid credentials for Postgres source"}  # fmt: skip


@pytest.fixture
def fake() -> Iterator[RunningFake]:
    with RunningFake(FakeAirbyte("/api/public/v1", username="airbyte", password="password")) as running:
        yield running


def config_client(running: RunningFake) -> AirbyteClient:
    cfg = parse_server_config({"url": f"{running.base}/api/v1", "api": "config",
                               "username": "airbyte", "password": "password"})  # fmt: skip
    return AirbyteClient(cfg)


async def test_reads_a_job_with_attempts_and_the_last_failure(fake: RunningFake) -> None:
    fake.fake.add_job(7, [("failed", None)], rows=10, attempts=3, failure=FAILURE)
    fake.fake.add_job(8, [("running", None)], rows=5)
    async with config_client(fake) as client:
        failed, running = await client.get_job(7), await client.get_job(8)
    assert isinstance(failed, at.Job) and failed.status == "failed" and failed.attempts == 3
    assert failed.failure == "source config_error: Invalid credentials for Postgres source"
    assert failed.rows_synced == 10 and failed.connection_id and failed.job_type == "sync"
    assert isinstance(running, at.Job) and running.status == "running" and running.failure is None
    # JobRead.updatedAt, epoch seconds: when the job last changed (the detection-delay metric's start)
    assert failed.updated == int(fake.fake.jobs[7].updated)
    posts = [r for r in fake.fake.requests if r.path == "/api/v1/jobs/get"]
    assert len(posts) == 2 and all(r.method == "POST" and r.authorization.startswith("Basic ") for r in posts)


async def test_unknown_job_and_cancels(fake: RunningFake) -> None:
    fake.fake.add_job(9, [("running", None)])
    fake.fake.add_job(10, [("succeeded", None)])
    async with config_client(fake) as client:
        missing = await client.get_job(404)
        cancelled = await client.cancel_job(9)
        finished = await client.cancel_job(10)
    assert isinstance(missing, at.Problem) and missing.kind == at.NOT_FOUND
    assert "Could not find job with id: 404" in missing.detail
    assert (cancelled, finished) == ("cancelled", "finished")


def test_secret_api_key() -> None:
    assert parse_server_config({"url": "http://h/api/v1", "api": "config"}).api == "config"
    assert ServerConfig(url="http://h/v1").api == "public"


async def test_trigger_and_adopt_a_reset_through_the_config_api(fake: RunningFake) -> None:
    connection = "9924bcd0-99be-453d-ba47-c2c9766f7da5"
    fake.fake.connection_scripts[connection] = [Step("running", None)]
    async with config_client(fake) as client:
        started = await client.trigger_job(connection, "reset")
        busy = await client.trigger_job(connection, "reset")
        listed = await client.list_jobs(connection, since="2000-01-01T00:00:00Z")
    assert isinstance(started, at.Job) and started.job_type == "reset"
    assert isinstance(busy, at.Problem) and busy.kind == at.CONFLICT
    assert isinstance(listed, list) and [j.job_id for j in listed] == [started.job_id]
    assert listed[0].job_type == "reset", "adoption after a restart matches the job type asked for"
    assert [r.path for r in fake.fake.requests if "connections" in r.path] == [
        "/api/v1/connections/reset"
    ] * 2
