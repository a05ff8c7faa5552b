"""Credentials change under running watches (issue 19): a Secret edited, a client revoked, the
token endpoint failing. Each case in both poll modes, on the in-memory Kubernetes and Airbyte
with a fake clock, so the order of walk, refusal and Secret read is the same every run."""

from __future__ import annotations

import asyncio

import pytest
from airbyte_watch.airbyte import model as at

from tests.support.memory import NAMESPACE, SECRET_VALUE, Harness

NS = NAMESPACE
INTERVAL = 5.0
URL = "https://airbyte.test/v1"
NEW_SECRET = "cs-MEMORY-SENTINEL-rotated-88a2"
MODES = pytest.mark.parametrize("mode", ["list", "get"])


def login(**values: str) -> dict[str, str]:
    return {"url": URL, "clientId": "id", "clientSecret": SECRET_VALUE, **values}


async def running_watch(mode: str, **options: object) -> Harness:
    h = Harness(poll_mode=mode, **options)
    h.airbyte.add_job(7, "running")
    h.kube.create(NS, "w", {"jobId": 7, "pollInterval": f"{INTERVAL:g}s", "timeout": "1h"})
    await h.run_for(2 * INTERVAL)
    assert h.obj("w")["status"]["phase"] == "Running"
    return h


def used_since(h: Harness, since: int) -> list[object]:
    """The configs Airbyte clients were made for since `since` (MemoryPool.configs)."""
    return h.pool.configs[since:]


@MODES
async def test_a_revoked_client_whose_secret_holds_the_new_one_goes_on_with_it_in_that_step(
    mode: str,
) -> None:
    h = await running_watch(mode)
    # The admin replaces the application, and the Secret follows, between two reads of it.
    h.pool.login.accepted = {NEW_SECRET}
    h.kube.put_data("secrets", NS, "airbyte-default", login(clientSecret=NEW_SECRET))
    h.airbyte.move(h.airbyte.jobs[7], "succeeded")
    edited = h.clock.monotonic()
    await h.run_for(INTERVAL + 1)
    st = h.obj("w")["status"]
    assert st["phase"] == "Succeeded", st
    assert "AuthenticationFailed" not in h.reasons("w")
    assert h.watches.known[(NS, "w")].failures == 0
    assert h.clock.monotonic() - edited <= INTERVAL + 1


@MODES
async def test_a_revoked_client_with_an_unchanged_secret_stalls_with_one_warning_then_heals(
    mode: str,
) -> None:
    h = await running_watch(mode)
    h.pool.login.accepted = set()  # revoked; nobody has updated the Secret
    await h.run_for(20 * INTERVAL)
    st = h.obj("w")["status"]
    stalled = next(c for c in st["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "AuthenticationFailed", st
    assert h.reasons("w").count("AuthenticationFailed") == 1
    await h.run_for(20 * INTERVAL)
    assert h.reasons("w").count("AuthenticationFailed") == 1
    # The Secret is fixed: the watch hears of it within one interval, whatever its backoff.
    h.pool.login.accepted = {NEW_SECRET}
    h.kube.put_data("secrets", NS, "airbyte-default", login(clientSecret=NEW_SECRET))
    h.airbyte.move(h.airbyte.jobs[7], "succeeded")
    await h.run_for(INTERVAL + 1)
    assert h.obj("w")["status"]["phase"] == "Succeeded"


CHANGES = {
    "client secret": login(clientSecret=NEW_SECRET),
    "client id": login(clientId="id-2"),
    "static token": {"url": URL, "token": NEW_SECRET},
    "url": login(url="https://airbyte-new.test/v1"),
    "config api": login(url="https://airbyte.test/api/v1", api="config"),
}


@MODES
@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_secret_edit_reaches_a_quiet_running_watch_within_one_interval(
    mode: str, change: str
) -> None:
    """Nothing fails (the old credentials still work): the edit alone must reach the watch, and
    the old credentials are used no more."""
    h = await running_watch(mode)
    h.kube.put_data("secrets", NS, "airbyte-default", CHANGES[change])
    await h.run_for(INTERVAL + 1)
    new = h.pool.configs[-1]
    assert (new.url, new.api, new.client_id, new.client_secret, new.token) == (
        CHANGES[change]["url"], CHANGES[change].get("api", "public"), CHANGES[change].get("clientId"),
        CHANGES[change].get("clientSecret"), CHANGES[change].get("token"),
    )  # fmt: skip
    since = len(h.pool.configs)
    h.airbyte.move(h.airbyte.jobs[7], "succeeded")
    await h.run_for(2 * INTERVAL)
    assert h.obj("w")["status"]["phase"] == "Succeeded"
    assert all(c.key == new.key for c in used_since(h, since)), "old credentials used after the edit"


@MODES
async def test_a_new_url_the_admin_does_not_allow_stalls_the_watch_naming_the_key(mode: str) -> None:
    h = await running_watch(mode, allowed_urls=("https://airbyte.test",))
    h.kube.put_data("secrets", NS, "airbyte-default", login(url="https://elsewhere.test/v1"))
    await h.run_for(INTERVAL + 1)
    st = h.obj("w")["status"]
    assert "key 'url' names a URL this operator may not call" in st["message"], st
    assert h.reasons("w").count("InvalidSecret") == 1
    assert all(c.url != "https://elsewhere.test/v1" for c in h.pool.configs)


@MODES
async def test_a_secret_deleted_then_created_again_reaches_the_watch_each_time(mode: str) -> None:
    h = await running_watch(mode)
    del h.kube.data[("secrets", NS, "airbyte-default")]
    await h.run_for(INTERVAL + 1)
    assert "SecretNotFound" in h.reasons("w"), h.obj("w")["status"]
    h.kube.put_data("secrets", NS, "airbyte-default", login(clientSecret=NEW_SECRET))
    h.airbyte.move(h.airbyte.jobs[7], "succeeded")
    await h.run_for(INTERVAL + 1)
    assert h.obj("w")["status"]["phase"] == "Succeeded", h.obj("w")["status"]
    assert h.pool.configs[-1].client_secret == NEW_SECRET


TOKEN_FAULTS = {
    "5xx": at.Problem(at.SERVER_ERROR, "token endpoint answered 503: unavailable", 503),
    "timeout": at.Problem(at.TIMEOUT, "the token endpoint did not answer in time"),
}


@MODES
@pytest.mark.parametrize("fault", list(TOKEN_FAULTS))
async def test_a_failing_token_endpoint_is_reported_as_such_and_heals(mode: str, fault: str) -> None:
    h = await running_watch(mode)
    h.pool.login.token_faults = [TOKEN_FAULTS[fault]] * 40  # an outage, not a blip the walk rides out
    await h.run_for(6 * INTERVAL)
    st = h.obj("w")["status"]
    assert "token endpoint" in st["message"], st
    assert h.reasons("w").count("AirbyteUnreachable") == 1
    h.pool.login.token_faults.clear()
    h.airbyte.move(h.airbyte.jobs[7], "succeeded")
    await h.run_for(12 * INTERVAL)
    assert h.obj("w")["status"]["phase"] == "Succeeded", h.obj("w")["status"]


@MODES
async def test_a_rotated_out_credential_stays_redacted_from_what_airbyte_says(mode: str) -> None:
    """An answer to a request made with the old credentials may still come after the rotation:
    the old value is still cut out of it."""
    h = await running_watch(mode)
    h.kube.put_data("secrets", NS, "airbyte-default", login(clientSecret=NEW_SECRET))
    await h.run_for(INTERVAL + 1)
    assert h.pool.configs[-1].client_secret == NEW_SECRET
    echo = at.Problem(at.SERVER_ERROR, f"500 proxy echo: client_secret={SECRET_VALUE}&{NEW_SECRET}", 500)
    h.airbyte.faults.extend([echo] * 40)
    h.airbyte.list_faults.extend([echo] * 40)
    await h.run_for(6 * INTERVAL)
    st = h.obj("w")["status"]
    assert "proxy echo" in st["message"], st
    written = repr(h.kube.objects) + repr(h.kube.events)
    assert SECRET_VALUE not in written and NEW_SECRET not in written


async def test_a_watch_the_walks_do_not_vouch_for_within_its_interval_reads_its_job_itself() -> None:
    """The list request hangs (a frozen server): a watch whose news is older than its interval
    does not wait on the walk; it reads its own job."""
    h = await running_watch("list")
    gets = h.airbyte.job_reads
    h.airbyte.list_gate = asyncio.Event()
    h.airbyte.move(h.airbyte.jobs[7], "succeeded")
    await h.run_for(3 * INTERVAL + 3)
    assert h.airbyte.job_reads == gets + 1, "no read of its own, or more than one"
    assert h.obj("w")["status"]["phase"] == "Succeeded"
    h.airbyte.list_gate.set()
