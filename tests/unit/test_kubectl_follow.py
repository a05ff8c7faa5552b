"""The `kubectl airbyte wait` loop against a scripted API: resuming watches from the last
resourceVersion (bookmarks included), listing again on 410 Gone, retrying what is transient,
and deciding final only for the current generation. The real API server: tests/e2e/test_kubectl_plugin.py."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from airbyte_watch.kubectl import follow as kubectl_follow
from airbyte_watch.kubectl.follow import Follower
from kubernetes.client.rest import ApiException


def obj(
    rv: int, phase: str | None, reason: str = "", generation: int = 1, observed: int = 1
) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": observed}
    if phase:
        status |= {"phase": phase, "message": f"{phase} message",
                   "conditions": [{"type": "Ready", "reason": reason}]}  # fmt: skip
    meta = {"name": "w", "resourceVersion": str(rv), "generation": generation}
    return {"metadata": meta, "status": status}


class Api:
    """Lists answered from a script; each item an object list, an exception, or None (empty)."""

    def __init__(self, lists: list[Any]) -> None:
        self.lists, self.calls = lists, 0

    def list_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        items = [] if answer is None else [answer]
        rv = answer["metadata"]["resourceVersion"] if answer else "1"
        return {"metadata": {"resourceVersion": rv}, "items": items}


class Watches:
    """Stands in for kubernetes.watch.Watch: each request plays the next script of events."""

    def __init__(self, scripts: list[list[Any]]) -> None:
        self.scripts, self.versions = scripts, []

    def __call__(self) -> Watches.One:
        return Watches.One(self)

    class One:
        def __init__(self, owner: Watches) -> None:
            self.owner, self.resource_version = owner, None

        def stream(
            self, func: Any, *args: Any, resource_version: str, **kwargs: Any
        ) -> Iterator[dict[str, Any]]:
            self.owner.versions.append(resource_version)
            self.resource_version = resource_version
            for event in self.owner.scripts.pop(0):
                if isinstance(event, Exception):
                    raise event
                kind, body = event
                self.resource_version = body["metadata"]["resourceVersion"]
                if kind != "BOOKMARK":
                    yield {"type": kind, "raw_object": body}

        def stop(self) -> None:
            pass


def run(monkeypatch: pytest.MonkeyPatch, lists: list[Any], scripts: list[list[Any]],
        timeout: float | None = None) -> tuple[int, list[str], str, Api, Watches]:  # fmt: skip
    watches = Watches(scripts)
    monkeypatch.setattr(kubectl_follow.k8s_watch, "Watch", watches)
    api = Api(lists)
    out, err = io.StringIO(), io.StringIO()
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    code = Follower(api, "ns", "w", out, err, clock=lambda: now[0], sleep=sleep).run(timeout)  # type: ignore[arg-type]
    return code, out.getvalue().splitlines(), err.getvalue(), api, watches


def test_resumes_from_the_last_version_and_bookmark(monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines, err, api, watches = run(
        monkeypatch,
        [obj(5, "Pending", "JobPending")],
        [[("MODIFIED", obj(6, "Running", "JobRunning")), ("BOOKMARK", obj(9, None))],  # ends, as they do
         [("MODIFIED", obj(10, "Running", "JobRunning")),
          ("MODIFIED", obj(11, "Succeeded", "JobSucceeded"))]],
    )  # fmt: skip
    assert code == 0 and err == ""
    assert watches.versions == ["5", "9"], "the second watch starts from the bookmark, not from a list"
    assert api.calls == 1
    assert [line.split()[1:3] for line in lines] == [
        ["Pending", "JobPending"], ["Running", "JobRunning"], ["Succeeded", "JobSucceeded"]
    ], "one line per change: the second Running is not printed"  # fmt: skip


def test_lists_again_on_410_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines, _, api, watches = run(
        monkeypatch,
        [obj(5, "Running", "JobRunning"), obj(50, "Failed", "JobFailed")],
        [[ApiException(status=410, reason="Gone")]],
    )
    assert code == 1 and api.calls == 2 and watches.versions == ["5"]
    assert [line.split()[1] for line in lines] == ["Running", "Failed"]


def test_retries_what_is_transient_and_says_so_once(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err, api, _ = run(
        monkeypatch,
        [ApiException(status=503, reason="Unavailable"), ConnectionRefusedError("refused"),
         obj(7, "Succeeded", "JobSucceeded")],
        [],
    )  # fmt: skip
    assert code == 0 and api.calls == 3
    assert err == "warning: lost the API server (503 Unavailable); retrying\n"


def test_forbidden_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    forbidden = ApiException(status=403, reason="Forbidden")
    forbidden.body = '{"kind":"Status","message":"airbytejobwatches.airbyte.watch is forbidden: no"}'
    code, _, err, api, _ = run(monkeypatch, [forbidden], [])
    assert code == 2 and api.calls == 1
    assert err == "error: airbytejobwatches.airbyte.watch is forbidden: no\n"


def test_a_stale_final_status_waits_for_the_current_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines, _, _, _ = run(
        monkeypatch,
        [obj(5, "Succeeded", "JobSucceeded", generation=2, observed=1)],
        [[("MODIFIED", obj(6, "Succeeded", "JobSucceeded", generation=2, observed=2))]],
    )
    assert code == 0 and len(lines) == 2
    assert "(status of generation 1; spec is at 2)" in lines[0] and "generation" not in lines[1]


def test_deleted_while_waiting_and_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err, _, _ = run(
        monkeypatch, [obj(5, "Running", "JobRunning")], [[("DELETED", obj(6, "Running"))]]
    )
    assert code == 2 and err == "error: airbytejobwatch.airbyte.watch/w was deleted\n"
    code, _, err, _, _ = run(monkeypatch, [None], [])
    assert code == 2 and "not found" in err


def test_the_wait_s_own_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines, err, _, watches = run(monkeypatch, [obj(5, "Running", "JobRunning")], [], timeout=0)
    assert code == 2 and watches.versions == [] and len(lines) == 1
    assert (
        err
        == "error: timed out waiting for airbytejobwatch.airbyte.watch/w (phase Running, reason JobRunning)\n"
    )
