"""handlers.refuse_what_cannot_work, kopf's validating handler: it refuses with the rules'
message (kopf.AdmissionError) and passes their warnings on, but an update that leaves the spec
as it was is admitted whatever the Secret says now: a label, or the operator's own finalizer
released on a deleted watch, must never be held on a Secret that went bad since."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from airbyte_watch import handlers

from tests.support.memory import FakeClock, MemoryKube

NS = "team-a"
SPEC = {"jobId": 42, "serverRef": {"name": "airbyte"}}


def memo_over(kube: MemoryKube) -> kopf.Memo:
    watches = SimpleNamespace(
        options=SimpleNamespace(default_server_secret="airbyte-default"),
        connections=SimpleNamespace(allowed_urls=("https://airbyte.internal",)),
    )
    return kopf.Memo(service=SimpleNamespace(kube=kube, watches=watches))


def body(spec: dict[str, Any], **meta: Any) -> kopf.Body:
    return kopf.Body({"metadata": {"namespace": NS, "name": "w", **meta}, "spec": spec})


@pytest.fixture
def kube() -> MemoryKube:
    k = MemoryKube(FakeClock())
    # A Secret that went bad: it names a URL --allowed-url does not allow.
    bad = {"url": "https://evil.example/v1", "clientId": "i", "clientSecret": "s"}
    k.put_data("secrets", NS, "airbyte", bad)
    return k


async def validate(kube: MemoryKube, warnings: list[str], **kwargs: Any) -> None:
    await handlers.refuse_what_cannot_work(
        spec=kopf.Spec(kwargs["new"]) if "new" in kwargs else kopf.Spec(SPEC),  # type: ignore[arg-type]
        namespace=NS, warnings=warnings, memo=memo_over(kube), **kwargs,
    )  # fmt: skip


async def test_a_create_against_a_bad_secret_is_refused_naming_the_field(kube: MemoryKube) -> None:
    with pytest.raises(kopf.AdmissionError, match=r"spec\.serverRef"):
        await validate(kube, [], new=body(SPEC))


async def test_a_spec_edit_is_reviewed_again(kube: MemoryKube) -> None:
    with pytest.raises(kopf.AdmissionError):
        await validate(kube, [], old=body({**SPEC, "jobId": 41}), new=body(SPEC))


async def test_an_update_that_leaves_the_spec_is_admitted(kube: MemoryKube) -> None:
    labelled = body(SPEC, labels={"team": "a"})
    released = body(SPEC, deletionTimestamp="2026-12-02T00:00:00Z", finalizers=[])
    await validate(kube, [], old=body(SPEC), new=labelled)
    await validate(kube, [], old=body(SPEC, finalizers=["airbyte.watch/cancel-on-delete"]), new=released)


async def test_warnings_are_passed_on(kube: MemoryKube) -> None:
    warnings: list[str] = []
    await validate(kube, warnings, new=body({"jobId": 42, "serverRef": {"name": "not-yet"}}))
    assert warnings and "not-yet" in warnings[0]
