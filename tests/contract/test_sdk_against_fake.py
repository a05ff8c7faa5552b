"""Airbyte's official Python SDK (PyPI `airbyte-api`) as a client of our fake: if the fake
answered anything the SDK's models refuse, these calls would raise. Each behaviour the fake copies
from the server (tests/support/AIRBYTE.md) is exercised here, through the SDK where it can send
the request and through plain HTTP where the SDK's own types forbid it (an unknown enum value)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from airbyte_api import AirbyteAPI, api, errors, models

from tests.support.fake_airbyte import FakeAirbyte, RunningFake, Step

CONNECTION = "9924bcd0-99be-453d-ba47-c2c9766f7da5"
OTHER = "0b0f1b7e-47a4-4c3e-9d0a-8a1f1f5b3c21"
STATUSES = [e.value for e in models.JobStatusEnum]
TYPES = [e.value for e in models.JobTypeEnum]


@pytest.fixture
def fake() -> Iterator[RunningFake]:
    # A client id of its own: the SDK caches tokens per credentials across instances.
    server = FakeAirbyte("/api/public/v1", client_id=f"cid-{secrets.token_hex(4)}", client_secret="cs")
    with RunningFake(server) as running:
        running.fake.connection_scripts[CONNECTION] = [Step("running")]
        yield running


@pytest.fixture
def sdk(fake: RunningFake) -> AirbyteAPI:
    credentials = models.SchemeClientCredentials(
        client_id=fake.fake.client_id or "", client_secret="cs", token_url=f"{fake.url}/applications/token"
    )
    return AirbyteAPI(security=models.Security(client_credentials=credentials), server_url=fake.url)


def http(fake: RunningFake) -> httpx.Client:
    """Plain HTTP with a token, for requests the SDK's types cannot express."""
    token = httpx.post(
        f"{fake.url}/applications/token",
        json={"client_id": fake.fake.client_id, "client_secret": "cs", "grant-type": "client_credentials"},
    ).json()
    return httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {token['access_token']}"})


def test_token_as_the_sdk_asks_for_it_and_as_the_server_reads_it(fake: RunningFake, sdk: AirbyteAPI) -> None:
    sdk.jobs.list_jobs(request=api.ListJobsRequest())  # the SDK's form body with grant_type
    assert http(fake).get("/jobs").status_code == 200  # JSON with grant-type, as the server's test sends
    tokens = [r for r in fake.fake.requests if r.path.endswith("/applications/token")]
    assert len(tokens) == 2
    wrong = AirbyteAPI(
        security=models.Security(
            client_credentials=models.SchemeClientCredentials(
                client_id="nobody", client_secret="x", token_url=f"{fake.url}/applications/token"
            )
        ),
        server_url=fake.url,
    )
    with pytest.raises(Exception, match="Unexpected status code 401 from token endpoint"):
        wrong.jobs.list_jobs(request=api.ListJobsRequest())


@pytest.mark.parametrize("job_type", TYPES)
def test_get_every_status_and_job_type(fake: RunningFake, sdk: AirbyteAPI, job_type: str) -> None:
    for i, status in enumerate(STATUSES):
        fake.fake.add_job(
            10 + i, [Step(status)], job_type=job_type, rows=7, bytes_=9, created=time.time() - 125
        )
    for i, status in enumerate(STATUSES):
        job = sdk.jobs.get_job(request=api.GetJobRequest(job_id=10 + i)).job_response
        assert job is not None and job.job_id == 10 + i and job.status == status
        assert job.job_type == job_type and job.connection_id == CONNECTION
        assert (job.last_updated_at is not None) == (status in ("succeeded", "failed", "cancelled"))
        assert (job.duration is None) == (status == "pending")
    with pytest.raises(errors.SDKError) as missing:
        sdk.jobs.get_job(request=api.GetJobRequest(job_id=404))
    assert (
        missing.value.status_code == 404
        and missing.value.raw_response.headers["content-type"] == "application/json"
    )
    assert (
        missing.value.raw_response.json()["type"]
        == "https://reference.airbyte.com/reference/errors#resource-not-found"
    )


@pytest.mark.parametrize("job_type", ["sync", "reset", "clear"])
def test_create_reads_clear_and_reset_back_as_reset(
    fake: RunningFake, sdk: AirbyteAPI, job_type: str
) -> None:
    created = sdk.jobs.create_job(
        request=models.JobCreateRequest(connection_id=CONNECTION, job_type=job_type)
    )
    job = created.job_response
    assert job is not None and job.status == "pending"
    assert job.job_type == ("sync" if job_type == "sync" else "reset")
    again = sdk.jobs.get_job(request=api.GetJobRequest(job_id=job.job_id)).job_response
    assert again is not None and again.job_type == job.job_type
    with pytest.raises(errors.SDKError) as busy:  # one job at a time per connection
        sdk.jobs.create_job(request=models.JobCreateRequest(connection_id=CONNECTION, job_type="sync"))
    problem = busy.value.raw_response.json()
    assert busy.value.status_code == 409 and problem["title"] == "try-again-later"
    assert problem["data"]["message"] == f"A sync is already running for: {CONNECTION}"


def test_refresh_is_refused_with_422(fake: RunningFake, sdk: AirbyteAPI) -> None:
    with pytest.raises(errors.SDKError) as refused:
        sdk.jobs.create_job(request=models.JobCreateRequest(connection_id=CONNECTION, job_type="refresh"))
    body = refused.value.raw_response.json()
    assert refused.value.status_code == 422 and body["title"] == "unprocessable-entity"
    assert body["data"]["message"] == "Refreshes are not supported in the public API"
    assert not fake.fake.jobs


def test_an_unknown_or_missing_job_type_fails_the_contract_check(fake: RunningFake) -> None:
    client = http(fake)
    unknown = client.post("/jobs", json={"connectionId": CONNECTION, "jobType": "resync"})
    missing = client.post("/jobs", json={"connectionId": CONNECTION})
    assert unknown.status_code == missing.status_code == 422  # what the server's JSON binding answers
    assert set(unknown.json()) == {"errorId"}
    violations = fake.fake.take_violations()
    assert any("POST /api/public/v1/jobs request: not a JobCreateRequest: jobType" in v for v in violations)
    assert len(violations) == 2, violations


def test_a_contract_violation_fails_the_test_that_caused_it() -> None:
    fake = RunningFake(FakeAirbyte("/v1"))
    with pytest.raises(AssertionError, match="Airbyte contract violated"), fake:
        httpx.post(f"{fake.url}/jobs", json={"connectionId": CONNECTION, "jobType": "resync"})


def test_cancel_stops_the_connections_current_job_whatever_id_was_named(
    fake: RunningFake, sdk: AirbyteAPI
) -> None:
    old = fake.fake.add_job(1, [Step("succeeded")], created=time.time() - 60)
    current = fake.fake.add_job(2, [Step("running")])
    answer = sdk.jobs.cancel_job(request=api.CancelJobRequest(job_id=1)).job_response
    assert (
        answer is not None and answer.job_id == 1 and answer.status == "succeeded"
    )  # the job named, re-read
    assert current.cancelled_by_request and current.peek() == "cancelled" and not old.cancelled_by_request
    with pytest.raises(errors.SDKError) as idle:
        sdk.jobs.cancel_job(request=api.CancelJobRequest(job_id=2))
    problem = idle.value.raw_response.json()
    assert idle.value.status_code == 409 and problem["title"] == "state-conflict"
    assert problem["type"] == "https://reference.airbyte.com/reference/errors#409-state-conflict"
    assert problem["data"] == {"message": "Job is not currently running"}


def test_updated_at_moves_with_each_status_change(fake: RunningFake, sdk: AirbyteAPI) -> None:
    fake.fake.add_job(
        3,
        [Step("pending", polls=1), Step("running", seconds=1.1), Step("succeeded")],
        created=time.time() - 30,
    )
    first = sdk.jobs.get_job(request=api.GetJobRequest(job_id=3)).job_response
    running = sdk.jobs.get_job(request=api.GetJobRequest(job_id=3)).job_response
    time.sleep(1.2)
    done = sdk.jobs.get_job(request=api.GetJobRequest(job_id=3)).job_response
    assert first and running and done
    assert (first.status, running.status, done.status) == ("pending", "running", "succeeded")
    assert first.duration is None and running.duration is not None and done.last_updated_at is not None
    assert running.duration != "PT0S" and done.duration != running.duration


def jobs_page(sdk: AirbyteAPI, **query: object) -> models.JobsResponse:
    page = sdk.jobs.list_jobs(request=api.ListJobsRequest(**query)).jobs_response  # type: ignore[arg-type]
    assert page is not None
    return page


def test_list_filters_orders_and_pages_as_the_server(fake: RunningFake, sdk: AirbyteAPI) -> None:
    now = time.time()
    for i in range(5):  # created a minute apart, oldest first
        fake.fake.add_job(
            100 + i,
            [Step("succeeded" if i < 4 else "running")],
            created=now - 300 + 60 * i,
            updated=now - 290 + 60 * i,
            job_type="sync" if i % 2 == 0 else "reset",
        )
    fake.fake.add_job(200, [Step("failed")], connection_id=OTHER, created=now - 10)
    ids = lambda page: [j.job_id for j in page.data]  # noqa: E731
    assert ids(jobs_page(sdk)) == [100, 101, 102, 103, 104, 200], "createdAt ascending by default"
    assert ids(jobs_page(sdk, connection_id=CONNECTION, order_by="createdAt|DESC")) == [
        104,
        103,
        102,
        101,
        100,
    ]
    assert ids(jobs_page(sdk, connection_id=CONNECTION, order_by="updatedAt|DESC", limit=2)) == [104, 103]
    assert ids(jobs_page(sdk, status="running")) == [104]
    assert ids(jobs_page(sdk, job_type="reset")) == [101, 103]
    assert ids(jobs_page(sdk, job_type="clear")) == []
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 150))
    assert ids(jobs_page(sdk, connection_id=CONNECTION, created_at_start=since)) == [103, 104]
    assert ids(jobs_page(sdk, created_at_end=since)) == [100, 101, 102]
    updated_since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 200))
    assert ids(jobs_page(sdk, updated_at_start=updated_since, connection_id=CONNECTION)) == [102, 103, 104]

    first = jobs_page(sdk, connection_id=CONNECTION, job_type="sync", limit=2)
    assert ids(first) == [100, 102] and first.previous == ""
    assert (
        first.next
        == f"{fake.base}/api/public/v1/jobs?jobType=sync&connectionId={CONNECTION}&limit=2&offset=2"
    )
    client = http(fake)
    second = client.get(str(first.next)).json()
    assert [j["jobId"] for j in second["data"]] == [104]
    assert second["previous"].endswith("limit=2&offset=0")
    last = client.get(second["next"]).json()
    assert last["data"] == [] and last["next"] == ""
    # An offset inside a page starts at that page's first row (Pageable.from(offset / limit, limit)).
    assert ids(jobs_page(sdk, connection_id=CONNECTION, limit=2, offset=3)) == [102, 103]


@pytest.mark.parametrize(
    ("query", "status", "title"),
    [
        ("limit=0", 400, None),
        ("limit=101", 400, None),
        ("status=weird", 400, "bad-request"),
        ("jobType=resync", 400, "bad-request"),
        ("orderBy=name|ASC", 400, "bad-request"),
    ],
)
def test_list_refuses_what_the_server_refuses(
    fake: RunningFake, query: str, status: int, title: str | None
) -> None:
    answer = http(fake).get(f"/jobs?{query}")
    assert answer.status_code == status and answer.headers["content-type"] == "application/json"
    assert answer.json().get("title") == title
    # Each but the last is outside the published contract too; `name|ASC` matches its pattern.
    assert bool(fake.fake.take_violations()) == (not query.startswith("orderBy"))


def test_config_api_lists_by_config_type_with_paging(fake: RunningFake) -> None:
    fake.fake.client_id = None  # an OSS server without auth
    base = f"{fake.base}/api/v1"
    now = time.time()
    for i in range(4):
        fake.fake.add_job(
            300 + i, [Step("succeeded")], created=now - 100 + i, job_type=["sync", "reset"][i % 2]
        )
    started = httpx.post(f"{base}/connections/reset", json={"connectionId": CONNECTION}).json()
    assert started["job"]["configType"] == "reset_connection"
    listed = httpx.post(
        f"{base}/jobs/list",
        json={
            "configTypes": ["reset_connection"],
            "configId": CONNECTION,
            "pagination": {"pageSize": 2, "rowOffset": 0},
        },
    ).json()
    assert [j["job"]["id"] for j in listed["jobs"]] == [started["job"]["id"], 303], "newest first by default"
    assert listed["totalJobCount"] == 3
    page2 = httpx.post(
        f"{base}/jobs/list",
        json={
            "configTypes": ["reset_connection"],
            "configId": CONNECTION,
            "pagination": {"pageSize": 2, "rowOffset": 2},
        },
    ).json()
    assert [j["job"]["id"] for j in page2["jobs"]] == [301]
    synced = httpx.post(
        f"{base}/jobs/list",
        json={"configTypes": ["sync"], "orderByField": "createdAt", "orderByMethod": "ASC"},
    ).json()
    assert [j["job"]["id"] for j in synced["jobs"]] == [300, 302]


def test_the_walks_split_a_tied_second_by_every_status_the_public_list_takes() -> None:
    """A status the walks' split left out would be a share of a tied second never read."""
    from airbyte_watch.airbyte import model as at

    assert sorted(at.STATUSES) == sorted(STATUSES)
