"""ClientPool: the right API per Secret, the write fence, and jobs read back as the server does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from airbyte_watch.airbyte import model as at
from airbyte_watch.airbyte.client import ClientPool
from airbyte_watch.airbyte.server_config import ServerConfig

from tests.support.fake_airbyte import FakeAirbyte, RunningFake, Step

CONNECTION = "9924bcd0-99be-453d-ba47-c2c9766f7da5"


class Fenced(Exception):
    pass


@pytest.fixture
def fake() -> Iterator[RunningFake]:
    with RunningFake(FakeAirbyte("/v1", client_id="cid", client_secret="cs-123456")) as running:
        running.fake.connection_scripts[CONNECTION] = [Step("running")]
        running.fake.add_job(5, [Step("succeeded")], connection_id=CONNECTION, created=1_700_000_000)
        yield running


def public(fake: RunningFake) -> ServerConfig:
    return ServerConfig(url=fake.url, client_id="cid", client_secret="cs-123456")


def config_api(fake: RunningFake) -> ServerConfig:
    fake.fake.username, fake.fake.password = "airbyte", "password"
    return ServerConfig(url=f"{fake.base}/api/v1", api="config", username="airbyte", password="password")


@pytest.mark.parametrize("api", ["public", "config"])
async def test_before_write_runs_right_before_each_request_that_changes_something(
    fake: RunningFake, api: str
) -> None:
    sent: list[str] = []

    def fence() -> None:
        sent.append(f"fence after {len(fake.fake.requests)} requests")

    pool = ClientPool(before_write=fence)
    client = pool.get(public(fake) if api == "public" else config_api(fake))
    try:
        assert isinstance(await client.get_job(5), at.Job)
        assert isinstance(await client.list_jobs(CONNECTION), list)
        assert sent == [], "reads are not fenced"
        started = await client.trigger_job(CONNECTION, "sync")
        assert isinstance(started, at.Job)
        assert len(sent) == 1
        assert await client.cancel_job(started.job_id) == "cancelled"
        assert len(sent) == 2
        assert isinstance(await client.trigger_job(CONNECTION, "reset"), at.Job)
        assert len(sent) == 3
    finally:
        await pool.close()


async def test_a_fence_that_raises_stops_the_write_before_it_is_sent(fake: RunningFake) -> None:
    def fence() -> None:
        raise Fenced("lost leadership")

    pool = ClientPool(before_write=fence)
    client = pool.get(public(fake))
    try:
        with pytest.raises(Fenced):
            await client.trigger_job(CONNECTION, "sync")
        with pytest.raises(Fenced):
            await client.cancel_job(5)
    finally:
        await pool.close()
    assert not [r for r in fake.fake.requests if r.method in ("POST", "DELETE") and "/jobs" in r.path]
    assert not [j for j in fake.fake.jobs.values() if j.job_id != 5]


@pytest.mark.parametrize("api", ["public", "config"])
async def test_a_clear_is_listed_and_read_back_as_a_reset(fake: RunningFake, api: str) -> None:
    pool = ClientPool()
    client = pool.get(public(fake) if api == "public" else config_api(fake))
    try:
        started = await client.trigger_job(CONNECTION, "clear")
        assert isinstance(started, at.Job) and started.job_type == "reset"
        listed = await client.list_jobs(CONNECTION, since="2025-01-01T00:00:00Z")
        read = await client.get_job(started.job_id)
    finally:
        await pool.close()
    assert isinstance(listed, list) and [(j.job_id, j.job_type) for j in listed] == [
        (started.job_id, "reset")
    ]
    assert isinstance(read, at.Job) and read.job_type == "reset"
    posted = [r.path for r in fake.fake.requests if r.method == "POST" and "token" not in r.path]
    assert posted[0].endswith("/v1/jobs" if api == "public" else "/connections/reset")


async def test_one_client_per_server_and_credentials(fake: RunningFake) -> None:
    pool = ClientPool()
    try:
        assert pool.get(public(fake)) is pool.get(public(fake))
        assert pool.get(public(fake)) is not pool.get(config_api(fake))
    finally:
        await pool.close()
