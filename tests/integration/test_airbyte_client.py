"""The Airbyte client against the fake Airbyte: auth flows and every typed problem."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from airbyte_watch.airbyte import model as at
from airbyte_watch.airbyte.client import AirbyteClient, retry_after_seconds
from airbyte_watch.airbyte.server_config import ServerConfig

from tests.support.controlplane import write_certs
from tests.support.fake_airbyte import FakeAirbyte, Fault, RunningFake

SECRET = "cs-0123-distinctive"


@pytest.fixture
def fake() -> Iterator[RunningFake]:
    with RunningFake(FakeAirbyte("/v1", client_id="cid", client_secret=SECRET)) as running:
        running.fake.add_job(5, [("running", None)], rows=3)
        yield running


def creds(running: RunningFake, **kw: str) -> ServerConfig:
    return ServerConfig(url=running.url, client_id="cid", client_secret=SECRET, **kw)


def token_posts(running: RunningFake) -> int:
    return sum(1 for r in running.fake.requests if r.path.endswith("/applications/token"))


async def test_reads_a_job(fake: RunningFake) -> None:
    async with AirbyteClient(creds(fake)) as client:
        answer = await client.get_job(5)
    assert answer == at.Job(5, "running", "sync", "9924bcd0-99be-453d-ba47-c2c9766f7da5", 3, 0)


async def test_one_token_for_many_concurrent_polls(fake: RunningFake) -> None:
    async with AirbyteClient(creds(fake)) as client:
        answers = await asyncio.gather(*(client.get_job(5) for _ in range(25)))
    assert all(isinstance(a, at.Job) for a in answers)
    assert token_posts(fake) == 1


async def test_token_refused_by_server_is_fetched_again_once(fake: RunningFake) -> None:
    async with AirbyteClient(creds(fake)) as client:
        assert isinstance(await client.get_job(5), at.Job)
        fake.fake.expire_tokens()  # the server forgets every token, as after its expiry
        answers = await asyncio.gather(*(client.get_job(5) for _ in range(10)))
    assert all(isinstance(a, at.Job) for a in answers)
    assert token_posts(fake) == 2


async def test_token_refreshed_a_third_of_its_life_before_expires_in(fake: RunningFake) -> None:
    fake.fake.token_lifetime = 3  # refreshed 1 s early
    async with AirbyteClient(creds(fake)) as client:
        await client.get_job(5)
        await asyncio.sleep(1.5)
        await client.get_job(5)
        assert token_posts(fake) == 1
        await asyncio.sleep(0.7)
        await client.get_job(5)
    assert token_posts(fake) == 2
    gets = [r for r in fake.fake.requests if r.method == "GET"]
    assert all(r.authorization and r.authorization.startswith("Bearer ") for r in gets)


async def test_a_token_that_lives_10_seconds_serves_many_requests(fake: RunningFake) -> None:
    """A fixed 60 s refresh margin would fetch a token for every request of a 10 s token."""
    fake.fake.token_lifetime = 10
    async with AirbyteClient(creds(fake)) as client:
        for _ in range(12):
            assert isinstance(await client.get_job(5), at.Job)
            await asyncio.sleep(0.25)
    assert token_posts(fake) * 3 <= len(fake.fake.requests), (token_posts(fake), len(fake.fake.requests))


async def test_a_token_answer_without_expires_in_lives_the_documented_default(fake: RunningFake) -> None:
    from airbyte_watch.airbyte.transport import DEFAULT_TOKEN_LIFETIME, refresh_margin

    fake.fake.token_lifetime = None  # the answer carries no expires_in
    async with AirbyteClient(creds(fake)) as client:
        assert isinstance(await client.get_job(5), at.Job)
        # Move the clock to a second before the refresh point, then past it.
        client._token_refresh_at -= DEFAULT_TOKEN_LIFETIME - refresh_margin(DEFAULT_TOKEN_LIFETIME) - 1
        assert isinstance(await client.get_job(5), at.Job)
        assert token_posts(fake) == 1
        client._token_refresh_at -= 2
        assert isinstance(await client.get_job(5), at.Job)
    assert token_posts(fake) == 2


async def test_second_401_is_authentication_failed(fake: RunningFake) -> None:
    body = (
        '{"status":401,"title":"invalid-api-key",'
        '"detail":"The API key in the Authorization header is invalid."}'
    )
    fake.fake.inject(Fault(401, body, count=2, path_contains="/jobs/"))
    async with AirbyteClient(creds(fake)) as client:
        answer = await client.get_job(5)
    assert isinstance(answer, at.Problem) and answer.kind == at.AUTH_FAILED
    assert "invalid-api-key" in answer.detail
    assert token_posts(fake) == 2


async def test_wrong_client_secret_is_authentication_failed(fake: RunningFake) -> None:
    async with AirbyteClient(
        ServerConfig(url=fake.url, client_id="cid", client_secret="wrong-one")
    ) as client:
        answer = await client.get_job(5)
    assert isinstance(answer, at.Problem) and answer.kind == at.AUTH_FAILED
    assert "token endpoint answered 401" in answer.detail
    assert "wrong-one" not in answer.detail


async def test_static_token_and_basic_auth() -> None:
    with RunningFake(FakeAirbyte("/v1", static_token="st-1", username="u", password="p")) as running:
        running.fake.add_job(5, [("pending", None)])
        for cfg, ok in (
            (ServerConfig(url=running.url, token="st-1"), True),
            (ServerConfig(url=running.url, token="st-2"), False),
            (ServerConfig(url=running.url, username="u", password="p"), True),
            (ServerConfig(url=running.url, username="u", password="x"), False),
            (ServerConfig(url=running.url), False),
        ):
            async with AirbyteClient(cfg) as client:
                answer = await client.get_job(5)
            if ok:
                assert isinstance(answer, at.Job), cfg.auth_kind
            else:
                assert isinstance(answer, at.Problem) and answer.kind == at.AUTH_FAILED, cfg.auth_kind


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (
            Fault(
                500,
                '{"status":500,"title":"unexpected-problem","detail":"An unexpected problem has occurred."}',
            ),
            at.SERVER_ERROR,
        ),
        (Fault(503, "<html>Service Unavailable</html>"), at.SERVER_ERROR),
        (Fault(200, "this is not json"), at.MALFORMED),
        (Fault(200, '{"jobId": 5}'), at.MALFORMED),
        (Fault(400, '{"status":400,"title":"bad-request","detail":"nope"}'), at.CLIENT_ERROR),
        (Fault(403, '{"status":403,"title":"forbidden","detail":"The request is forbidden."}'), at.NOT_FOUND),
        (Fault(409, '{"status":409,"title":"state-conflict","detail":"State conflict"}'), at.NOT_FOUND),
        (Fault(200, reset=True), at.UNREACHABLE),
    ],
)
async def test_faults_become_typed_problems(fake: RunningFake, fault: Fault, kind: str) -> None:
    fault.path_contains = "/jobs/"
    fake.fake.inject(fault)
    async with AirbyteClient(creds(fake)) as client:
        answer = await client.get_job(5)
        after = await client.get_job(5)  # the fault was one-off: the next poll is fine
    assert isinstance(answer, at.Problem) and answer.kind == kind, answer
    assert isinstance(after, at.Job)


async def test_unknown_job_is_not_found_with_airbytes_detail(fake: RunningFake) -> None:
    async with AirbyteClient(creds(fake)) as client:
        answer = await client.get_job(404404)
    assert isinstance(answer, at.Problem) and answer.kind == at.NOT_FOUND
    assert "resource-not-found" in answer.detail and answer.status_code == 404


async def test_rate_limit_with_and_without_retry_after(fake: RunningFake) -> None:
    fake.fake.inject(
        Fault(429, '{"message":"You are being rate limited."}', {"Retry-After": "7"}, path_contains="/jobs/")
    )
    fake.fake.inject(Fault(429, '{"message":"You are being rate limited."}', path_contains="/jobs/"))
    async with AirbyteClient(creds(fake)) as client:
        first, second = await client.get_job(5), await client.get_job(5)
    assert isinstance(first, at.Problem) and first.kind == at.RATE_LIMITED and first.retry_after == 7
    assert "You are being rate limited." in first.detail
    assert isinstance(second, at.Problem) and second.retry_after is None


def test_retry_after_http_date() -> None:
    now = time.time()
    date = email.utils.formatdate(now + 120, usegmt=True)
    assert retry_after_seconds(date, now) == pytest.approx(120, abs=1)
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


async def test_read_timeout(fake: RunningFake) -> None:
    fake.fake.inject(Fault(200, delay=2.0, path_contains="/jobs/"))
    async with AirbyteClient(creds(fake), request_timeout=0.5) as client:
        answer = await client.get_job(5)
    assert isinstance(answer, at.Problem) and answer.kind == at.TIMEOUT


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        async with AirbyteClient(ServerConfig(url=f"http://127.0.0.1:{port}/v1")) as client:
            answer = await client.get_job(5)
    assert isinstance(answer, at.Problem) and answer.kind == at.UNREACHABLE
    assert "cannot connect" in answer.detail


async def test_dns_failure() -> None:
    async with AirbyteClient(ServerConfig(url="http://airbyte.does-not-exist.invalid/v1"), 5.0) as client:
        answer = await client.get_job(5)
    assert isinstance(answer, at.Problem) and answer.kind in (at.UNREACHABLE, at.TIMEOUT)


async def test_tls_untrusted_then_trusted_with_ca_bundle(tmp_path: Path) -> None:
    write_certs(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "apiserver.crt", tmp_path / "apiserver.key")
    with RunningFake(FakeAirbyte("/v1"), ssl_context=context) as running:
        running.fake.add_job(5, [("running", None)])
        untrusted = AirbyteClient(ServerConfig(url=running.url))
        trusted = AirbyteClient(ServerConfig(url=running.url, ca_bundle=(tmp_path / "ca.crt").read_text()))
        skipped = AirbyteClient(ServerConfig(url=running.url, insecure_skip_tls_verify=True))
        try:
            bad = await untrusted.get_job(5)
            good = await trusted.get_job(5)
            also = await skipped.get_job(5)
        finally:
            for client in (untrusted, trusted, skipped):
                await client.close()
    assert isinstance(bad, at.Problem) and bad.kind == at.UNREACHABLE and "TLS" in bad.detail
    assert isinstance(good, at.Job) and isinstance(also, at.Job)


@pytest.mark.parametrize(
    ("fault", "kind", "said"),
    [
        (Fault(503, '{"message":"down"}', path_contains="/applications/token", count=100), at.SERVER_ERROR,
         "token endpoint answered 503"),
        (Fault(200, "{}", path_contains="/applications/token", count=100, delay=2.0), at.TIMEOUT,
         "the token endpoint did not answer in time"),
        (None, at.AUTH_FAILED, "token endpoint answered 401"),
    ],
    ids=["5xx", "timeout", "401"],
)  # fmt: skip
async def test_a_failing_token_endpoint_is_named_and_asked_once_per_backoff_step(
    fake: RunningFake, fault: Fault | None, kind: str, said: str
) -> None:
    """Forty polls waiting on one login that fails: each is told what failed (the token
    endpoint, not the job read), and the endpoint hears one request, not forty; the next
    request waits for the backoff."""
    if fault is not None:
        fake.fake.inject(fault)
    else:
        fake.fake.rotate_client("another-client", "another-secret")
    async with AirbyteClient(creds(fake), request_timeout=0.5) as client:
        answers = await asyncio.gather(*(client.get_job(5) for _ in range(40)))
        assert all(isinstance(a, at.Problem) and a.kind == kind and said in a.detail for a in answers), (
            answers[0]
        )
        assert token_posts(fake) == 1
        assert (
            isinstance(await client.get_job(5), at.Problem) and token_posts(fake) == 1
        )  # within the backoff
        await asyncio.sleep(1.1)  # the first backoff step (1 s) has passed
        await asyncio.gather(*(client.get_job(5) for _ in range(10)))
        assert token_posts(fake) == 2
    assert SECRET not in repr(answers)
