"""The validating webhook's rules: refuse what can never run (naming the field), warn about
what does not exist yet, admit with a warning when the API server is our trouble, and never
show a credential value."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from airbyte_watch.kube.client import KubeError
from airbyte_watch.runtime import admission
from airbyte_watch.runtime.admission import Review, review

from tests.support.memory import FakeClock, MemoryKube

NS = "team-a"
GOOD = {"url": "https://airbyte.internal/api/public/v1", "clientId": "id-1", "clientSecret": "cs-VALUE-91x"}
ALLOWED = ("https://airbyte.internal",)


class Kube(MemoryKube):
    """MemoryKube whose reads of some objects fail as a real API server's may."""

    def __init__(self) -> None:
        super().__init__(FakeClock())
        self.answers: dict[tuple[str, str], Any] = {}  # (resource, name) -> status, exception or "hang"
        self.reads: list[tuple[str, str, str]] = []

    async def read_data(
        self, resource: str, namespace: str, name: str
    ) -> tuple[int, Mapping[str, str] | None]:
        self.reads.append((resource, namespace, name))
        answer = self.answers.get((resource, name))
        if isinstance(answer, Exception):
            raise answer
        if answer == "hang":
            await asyncio.sleep(3600)
        if isinstance(answer, int):
            return answer, None
        return await super().read_data(resource, namespace, name)


@pytest.fixture
def kube() -> Kube:
    k = Kube()
    k.put_data("secrets", NS, "airbyte", GOOD)
    return k


async def check(kube: Kube, spec: dict[str, Any], allowed: tuple[str, ...] = ALLOWED) -> Review:
    return await review(kube, NS, spec, default_server_secret="airbyte-default", allowed_urls=allowed)


def watch(**extra: Any) -> dict[str, Any]:
    return {"jobId": 42, "serverRef": {"name": "airbyte"}, **extra}


async def test_a_good_watch_is_admitted_without_a_word(kube: Kube) -> None:
    assert await check(kube, watch()) == Review(None, ())
    assert await check(kube, watch(), allowed=()) == Review(None, ())  # no --allowed-url: any URL


# --- the spec: what the CRD schema cannot express ---------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"serverRef": {"name": "airbyte"}}, "spec.jobId:"),  # none of jobId/jobIdFrom/connectionId
        (watch(connectionId="c-1"), "spec.jobId:"),  # two of them
        (watch(jobId="forty-two"), "spec.jobId:"),
        (watch(pollInterval="fast"), "spec.pollInterval:"),
        (watch(pollInterval="10ms"), "spec.pollInterval:"),
        (watch(timeout="1d"), "spec.timeout:"),
        (watch(backoff={"maxDelay": "0s"}), "spec.maxDelay:"),
        (watch(onUnknownStatus="Panic"), "spec.onUnknownStatus:"),
        (watch(expect={"minRowsSynced": -1}), "spec.expect.minRowsSynced:"),
        ({"jobId": 1, "serverRef": {"name": "other-ns/airbyte"}}, "spec.serverRef.name:"),
        ({"jobIdFrom": {"configMapKeyRef": {"name": "ids"}}}, "spec.jobIdFrom.configMapKeyRef:"),
    ],
)
async def test_a_spec_the_operator_cannot_use_is_refused_naming_the_field(
    kube: Kube, spec: dict[str, Any], field: str
) -> None:
    got = await check(kube, spec)
    assert got.refusal is not None and got.refusal.startswith(field), got
    assert got.warnings == ()


async def test_a_refused_spec_reads_nothing(kube: Kube) -> None:
    await check(kube, watch(pollInterval="fast"))
    assert kube.reads == []


# --- the Secret -----------------------------------------------------------------------------


async def test_a_secret_naming_a_url_outside_allowed_url_is_refused(kube: Kube) -> None:
    kube.put_data("secrets", NS, "airbyte", {**GOOD, "url": "https://evil.example/v1"})
    got = await check(kube, watch())
    assert got.refusal is not None
    assert got.refusal.startswith("spec.serverRef.name: Secret 'airbyte'")
    assert "'url' names https://evil.example/v1 which --allowed-url does not allow" in got.refusal
    assert "https://airbyte.internal" in got.refusal  # says what is allowed


async def test_a_token_url_outside_allowed_url_is_refused(kube: Kube) -> None:
    kube.put_data("secrets", NS, "airbyte", {**GOOD, "tokenUrl": "https://evil.example/token"})
    got = await check(kube, watch())
    assert got.refusal is not None and "'tokenUrl' names https://evil.example/token" in got.refusal


async def test_allowed_url_patterns_are_the_runtimes(kube: Kube) -> None:
    """Globs and path prefixes as `--allowed-url` means them at run time."""
    kube.put_data("secrets", NS, "airbyte", {**GOOD, "url": "https://eu.airbyte.internal/api/v1"})
    assert (await check(kube, watch(), allowed=("https://*.airbyte.internal/api",))).refusal is None
    refused = await check(kube, watch(), allowed=("https://*.airbyte.internal/other",))
    assert refused.refusal is not None


async def test_the_default_secret_is_checked_when_the_spec_names_none(kube: Kube) -> None:
    kube.put_data("secrets", NS, "airbyte-default", {**GOOD, "url": "http://169.254.169.254/latest"})
    got = await check(kube, {"jobId": 42})
    assert got.refusal is not None
    assert got.refusal.startswith("spec.serverRef (not set; the operator's default --server-secret): Secret")
    assert "'airbyte-default'" in got.refusal


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"clientId": "id-1", "clientSecret": "cs-VALUE-91x"}, "key 'url' is missing"),
        ({**GOOD, "token": "tok-VALUE-55"}, "use one way to log in"),
        ({"url": GOOD["url"], "username": "u", "password": "pw-VALUE-7"}, None),  # valid: admitted
        ({"url": GOOD["url"], "clientId": "id-1"}, "'clientId' is set without 'clientSecret'"),
        ({"url": "ftp://airbyte.internal"}, "key 'url' must be an http:// or https:// URL"),
        ({"url": "https://user:pw-VALUE-7@airbyte.internal"}, "must not carry credentials"),
        ({**GOOD, "api": "graphql"}, "key 'api'"),
        ({**GOOD, "caBundle": "not a pem"}, "key 'caBundle'"),
    ],
)
async def test_a_secret_that_breaks_its_rules_is_refused(
    kube: Kube, values: dict[str, str], says: str | None
) -> None:
    kube.put_data("secrets", NS, "airbyte", values)
    got = await check(kube, watch())
    if says is None:
        assert got == Review(None, ())
        return
    assert got.refusal is not None and got.refusal.startswith("spec.serverRef.name: Secret 'airbyte': ")
    assert says in got.refusal
    for value in ("cs-VALUE-91x", "tok-VALUE-55", "pw-VALUE-7"):
        assert value not in got.refusal


async def test_a_secret_that_is_not_base64_is_refused(kube: Kube) -> None:
    kube.data[("secrets", NS, "airbyte")] = {"url": "%%%"}
    got = await check(kube, watch())
    assert got.refusal is not None and "key 'url' is not valid base64" in got.refusal


async def test_a_missing_secret_warns_and_admits(kube: Kube) -> None:
    got = await check(kube, watch(serverRef={"name": "not-yet"}))
    assert got.refusal is None
    assert got.warnings == (
        "spec.serverRef.name: Secret 'not-yet' does not exist in namespace 'team-a' yet; "
        "the watch waits for it",
    )


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (KubeError("GET /api/v1/namespaces/team-a/secrets/airbyte: ClientConnectorError"), "cannot read it"),
        (503, "reading it answered 503"),
        (500, "reading it answered 500"),
        (403, "the operator may not read it"),
        ("hang", "did not answer within"),
    ],
)
async def test_our_own_trouble_admits_with_a_warning(
    kube: Kube, monkeypatch: pytest.MonkeyPatch, answer: Any, says: str
) -> None:
    monkeypatch.setattr(admission, "READ_TIMEOUT", 0.05)
    kube.put_data("secrets", NS, "airbyte", {"url": "https://evil.example"})  # would be refused
    kube.answers[("secrets", "airbyte")] = answer
    got = await asyncio.wait_for(check(kube, watch()), 1.0)
    assert got.refusal is None
    assert len(got.warnings) == 1
    assert got.warnings[0].startswith("spec.serverRef.name: Secret 'airbyte' not checked: ")
    assert says in got.warnings[0]


# --- credentials never shown ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "leak"),
    [
        # The clientSecret pasted into the url: the refusal names the url, redacted.
        ({"url": "https://evil.example/v1?key=cs-LEAK-3141", "clientId": "i", "clientSecret": "cs-LEAK-3141"},
         "cs-LEAK-3141"),
        ({"url": "https://evil.example/tok-LEAK-2718/v1", "token": "tok-LEAK-2718"}, "tok-LEAK-2718"),
        ({"url": "https://airbyte.internal/v1", "tokenUrl": "https://evil.example/pw-LEAK-1618",
          "username": "u", "password": "pw-LEAK-1618"}, "pw-LEAK-1618"),
    ],
)  # fmt: skip
async def test_no_credential_value_in_a_refusal(kube: Kube, values: dict[str, str], leak: str) -> None:
    kube.put_data("secrets", NS, "airbyte", values)
    got = await check(kube, watch())
    assert got.refusal is not None and "--allowed-url does not allow" in got.refusal
    assert leak not in got.refusal
    assert "[redacted]" in got.refusal


async def test_no_credential_value_in_any_message(kube: Kube) -> None:
    """Whatever the Secret holds, no message carries its values."""
    secret = "SENTINEL-0451"
    cases = [
        {
            "url": f"https://airbyte.internal/{secret}",
            "token": secret,
            "clientId": "i",
            "clientSecret": secret,
        },
        {"url": f"https://airbyte.internal/{secret}", "username": "u", "password": secret, "api": secret},
        {"url": f"https://evil/{secret}", "clientId": "i", "clientSecret": secret},
        {"url": f"https://evil/{secret}", "tokenUrl": f"https://evil/{secret}", "token": secret},
    ]
    for values in cases:
        kube.put_data("secrets", NS, "airbyte", values)
        got = await check(kube, watch())
        assert got.refusal is not None
        assert secret not in got.refusal + " ".join(got.warnings), got


# --- the jobIdFrom ConfigMap ----------------------------------------------------------------


def from_config_map() -> dict[str, Any]:
    return {
        "jobIdFrom": {"configMapKeyRef": {"name": "ids", "key": "jobId"}},
        "serverRef": {"name": "airbyte"},
    }


async def test_a_missing_config_map_warns_and_admits(kube: Kube) -> None:
    got = await check(kube, from_config_map())
    assert got.refusal is None
    assert got.warnings == (
        "spec.jobIdFrom.configMapKeyRef: ConfigMap 'ids' does not exist in namespace 'team-a' yet; "
        "the watch waits for it",
    )


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"jobId": "123"}, None),
        ({"other": "1"}, "has no key 'jobId' yet"),
        ({"jobId": "soon"}, "holds 'soon', not a job id"),
    ],
)
async def test_the_config_map_key(kube: Kube, data: dict[str, str], says: str | None) -> None:
    kube.put_data("configmaps", NS, "ids", data)
    got = await check(kube, from_config_map())
    assert got.refusal is None
    if says is None:
        assert got.warnings == ()
    else:
        assert len(got.warnings) == 1 and says in got.warnings[0]
        assert got.warnings[0].startswith("spec.jobIdFrom.configMapKeyRef: ConfigMap 'ids'")


async def test_an_unreadable_config_map_admits_with_a_warning(kube: Kube) -> None:
    kube.answers[("configmaps", "ids")] = KubeError("GET ...: ServerDisconnectedError")
    got = await check(kube, from_config_map())
    assert got.refusal is None and len(got.warnings) == 1 and "not checked" in got.warnings[0]


async def test_both_missing_warn_twice(kube: Kube) -> None:
    got = await check(kube, {**from_config_map(), "serverRef": {"name": "later"}})
    assert got.refusal is None
    assert [w.split(" ")[1] for w in got.warnings] == ["Secret", "ConfigMap"]


async def test_a_refused_secret_is_the_answer_whatever_the_config_map(kube: Kube) -> None:
    kube.put_data("secrets", NS, "airbyte", {"url": "https://evil.example"})
    got = await check(kube, from_config_map())
    assert got.refusal is not None and got.refusal.startswith("spec.serverRef.name:")


async def test_trigger_mode_checks_the_secret_too(kube: Kube) -> None:
    kube.put_data("secrets", NS, "airbyte", {"url": "https://evil.example"})
    got = await check(kube, {"connectionId": "c-1", "serverRef": {"name": "airbyte"}})
    assert got.refusal is not None and "--allowed-url does not allow" in got.refusal
