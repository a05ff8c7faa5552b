"""What of Airbyte's answers may leave the client (issue 10, items 9, 11 and 12): credential
values are cut out of any error text, every detail is bounded, only parsed problem fields are
repeated, and a 200 without a usable job id is a typed MALFORMED problem, never job 0 or 1."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from airbyte_watch.airbyte import model as at
from airbyte_watch.airbyte.client import AirbyteClient
from airbyte_watch.airbyte.server_config import ServerConfig

from tests.support.fake_airbyte import FakeAirbyte, Fault, RunningFake, Step

CONNECTION = "9924bcd0-99be-453d-ba47-c2c9766f7da5"
CLIENT_SECRET = "cs-9f8e7d-distinctive"
STATIC_TOKEN = "st-4b5c6d-distinctive"
PASSWORD = "pw-1a2b3c-distinctive"


@pytest.fixture
def fake() -> Iterator[RunningFake]:
    server = FakeAirbyte("/v1", client_id="cid", client_secret=CLIENT_SECRET, static_token=STATIC_TOKEN,
                         username="airbyte", password=PASSWORD)  # fmt: skip
    with RunningFake(server) as running:
        running.fake.add_job(5, [Step("running")], connection_id=CONNECTION)
        running.fake.connection_scripts[CONNECTION] = [Step("running")]
        yield running


def configs(fake: RunningFake) -> list[tuple[ServerConfig, str]]:
    return [
        (ServerConfig(url=fake.url, client_id="cid", client_secret=CLIENT_SECRET), CLIENT_SECRET),
        (ServerConfig(url=fake.url, token=STATIC_TOKEN), STATIC_TOKEN),
        (ServerConfig(url=fake.url, username="airbyte", password=PASSWORD), PASSWORD),
    ]


@pytest.mark.parametrize("path", ["/jobs/", "/applications/token"])
async def test_credential_values_echoed_in_airbyte_error_text_are_redacted(
    fake: RunningFake, path: str
) -> None:
    for config, secret in configs(fake):
        if path == "/applications/token" and not config.client_id:
            continue
        # A proxy that echoes the request, credentials included, in its error body.
        echo = {"status": 400, "title": "bad-request", "detail": f"bad header Authorization: Bearer {secret}",
                "data": {"message": f"client_secret={secret}&password={secret}"}}  # fmt: skip
        fake.fake.inject(Fault(400, json.dumps(echo), path_contains=path))
        async with AirbyteClient(config) as client:
            answer = await client.get_job(5)
        assert isinstance(answer, at.Problem), (config.auth_kind, answer)
        assert secret not in answer.detail, (config.auth_kind, answer.detail)
        assert "bad-request" in answer.detail, "Airbyte's own words stay"


async def test_the_bearer_token_in_use_is_redacted_from_airbyte_error_text(fake: RunningFake) -> None:
    config = ServerConfig(url=fake.url, client_id="cid", client_secret=CLIENT_SECRET)
    async with AirbyteClient(config) as client:
        assert isinstance(await client.get_job(5), at.Job)
        token = next(iter(fake.fake.tokens))
        body = {"status": 500, "title": "unexpected-problem", "detail": f"upstream refused token {token}"}
        fake.fake.inject(Fault(500, json.dumps(body), path_contains="/jobs/"))
        answer = await client.get_job(5)
    assert isinstance(answer, at.Problem) and answer.kind == at.SERVER_ERROR
    assert token not in answer.detail and "upstream refused token" in answer.detail


async def test_airbyte_error_detail_is_bounded(fake: RunningFake) -> None:
    body = {
        "status": 500,
        "title": "unexpected-problem",
        "detail": "x" * 20_000,
        "data": {"message": "y" * 20_000},
    }
    fake.fake.inject(Fault(500, json.dumps(body), path_contains="/jobs/"))
    async with AirbyteClient(configs(fake)[0][0]) as client:
        answer = await client.get_job(5)
    assert isinstance(answer, at.Problem) and answer.kind == at.SERVER_ERROR
    assert len(answer.detail) <= 320, len(answer.detail)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "described"),
    [
        (502, "<html><body>instance-id: i-0abc123 internal</body></html>", "text/html",
         "non-JSON body (text/html, {n} bytes)"),
        (403, "ami-id: ami-0abc123\ninstance-id: i-0abc123\n", "text/plain",
         "non-JSON body (text/plain, {n} bytes)"),
        (404, '["ami-0abc123", "i-0abc123"]', "application/json", "JSON body (application/json, {n} bytes)"),
        (400, '{"instance": "i-0abc123", "echo": "ami-0abc123"}', "application/json",
         "JSON body without problem fields ({n} bytes)"),
    ],
)  # fmt: skip
async def test_an_error_body_is_reflected_only_by_its_problem_fields_never_raw(
    fake: RunningFake, status: int, body: str, content_type: str, described: str
) -> None:
    fake.fake.inject(Fault(status, body, path_contains="/jobs/", content_type=content_type))
    async with AirbyteClient(configs(fake)[0][0]) as client:
        answer = await client.get_job(5)
    assert isinstance(answer, at.Problem)
    assert "i-0abc123" not in answer.detail and "ami-0abc123" not in answer.detail, answer.detail
    assert described.format(n=len(body.encode())) in answer.detail


@pytest.mark.parametrize("job_id", ["missing", None, True, "7", 0])
@pytest.mark.parametrize("call", ["trigger", "list", "config trigger"])
async def test_a_200_without_a_usable_integer_job_id_is_malformed(
    fake: RunningFake, job_id: object, call: str
) -> None:
    job: dict[str, object] = {"status": "pending", "jobType": "sync", "startTime": "2026-11-25T10:00:00Z",
                              "connectionId": CONNECTION}  # fmt: skip
    config_job: dict[str, object] = {"configType": "sync", "configId": CONNECTION, "createdAt": 1,
                                     "updatedAt": 1, "status": "pending"}  # fmt: skip
    if job_id != "missing":
        job["jobId"] = config_job["id"] = job_id
    if call == "trigger":
        fake.fake.inject(Fault(200, json.dumps(job), path_contains="/v1/jobs", method="POST"))
        config = configs(fake)[0][0]
    elif call == "list":
        fake.fake.inject(Fault(200, json.dumps({"data": [job]}), path_contains="/v1/jobs", method="GET"))
        config = configs(fake)[0][0]
    else:
        fake.fake.inject(
            Fault(200, json.dumps({"job": config_job, "attempts": []}), path_contains="/connections/")
        )
        config = ServerConfig(url=f"{fake.base}/api/v1", api="config", username="airbyte", password=PASSWORD)
    async with AirbyteClient(config) as client:
        if call == "list":
            answer: object = await client.list_jobs(CONNECTION)
        else:
            answer = await client.trigger_job(CONNECTION, "sync")
    assert isinstance(answer, at.Problem) and answer.kind == at.MALFORMED, answer


async def test_a_failure_reason_from_the_config_api_is_redacted_and_bounded(fake: RunningFake) -> None:
    reason = f"destination rejected password={PASSWORD} " + "z" * 5_000
    fake.fake.add_job(6, [Step("failed")], connection_id=CONNECTION, attempts=2,
                      failure={"failureOrigin": "destination", "failureType": "config_error",
                               "externalMessage": reason})  # fmt: skip
    config = ServerConfig(url=f"{fake.base}/api/v1", api="config", username="airbyte", password=PASSWORD)
    async with AirbyteClient(config) as client:
        job = await client.get_job(6)
    assert isinstance(job, at.Job) and job.failure is not None
    assert PASSWORD not in job.failure and "destination config_error: destination rejected" in job.failure
    assert len(job.failure) <= 300
