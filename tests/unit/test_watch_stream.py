"""The watch stream's recovery, on scripted API server answers and a fake clock: it goes on from
the last resourceVersion it saw (an event's or a bookmark's), lists again after 410 Gone and
forgets what that list no longer shows, backs off on failures in a row (a second 410 too), and
serves only the namespaces its patterns name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from airbyte_watch.kube.client import Gone, KubeError, WatchEvent
from airbyte_watch.runtime.watch_stream import BACKOFF, WatchStream

from tests.support.memory import NAMESPACE, Harness

NS = NAMESPACE


class Stop(Exception):
    """Ends the stream under test (not a KubeError, so nothing retries it)."""


def body(namespace: str, name: str, rv: str, uid: str = "") -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": uid or f"uid-{namespace}-{name}",
                     "resourceVersion": rv, "generation": 1},
        "spec": {"jobId": 1},
    }  # fmt: skip


class Script:
    """The API server's answer to each watch call in turn: a list of events and then an end,
    or an exception. Records the resourceVersion each call asked for."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = list(answers)
        self.since: list[str] = []

    async def watch_watches(self, namespace: str | None, since: str) -> AsyncIterator[WatchEvent]:
        self.since.append(since)
        answer = self.answers.pop(0) if self.answers else Stop()
        if isinstance(answer, BaseException):
            raise answer
        for event in answer:
            yield event


def stream_on(h: Harness, script: Script) -> tuple[WatchStream, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        h.clock.advance(seconds)

    h.kube.watch_watches = script.watch_watches  # type: ignore[attr-defined]
    return WatchStream(h.watches, sleep=sleep), slept


async def test_it_goes_on_from_the_last_version_and_relists_after_gone() -> None:
    h = Harness()
    h.airbyte.add_job(1, "running")
    h.kube.create(NS, "a", {"jobId": 1})
    h.kube.create(NS, "b", {"jobId": 1})
    h.start()
    assert set(h.watches.known) == {(NS, "a"), (NS, "b")}
    script = Script(
        [
            [WatchEvent("ADDED", body(NS, "c", "100")), WatchEvent("BOOKMARK", body("", "", "120"))],
            Gone("too old"),
        ]
    )
    h.kube.delete(NS, "b")
    h.kube.pending.clear()  # its DELETED is lost with the stream
    stream, slept = stream_on(h, script)
    with pytest.raises(Stop):
        await stream.follow(NS, "90")
    assert script.since[:2] == ["90", "120"]  # a bookmark's version counts as seen
    # After 410 the list tells what exists: b is forgotten, c (never created in Kubernetes) too;
    # the watch goes on from that list's version, at once.
    assert set(h.watches.known) == {(NS, "a")}
    assert script.since[2] not in ("", "90", "120")
    assert slept == []


async def test_failures_in_a_row_back_off_and_a_second_gone_waits() -> None:
    h = Harness()
    script = Script([KubeError("refused"), KubeError("refused"), Gone("old"), Gone("old")])
    stream, slept = stream_on(h, script)
    with pytest.raises(Stop):
        await stream.follow(NS, "5")
    assert slept == list(BACKOFF[:4])
    assert script.since[:2] == ["5", "5"]  # a broken watch goes on from where it was


async def test_an_event_resets_the_backoff() -> None:
    h = Harness()
    event = WatchEvent("MODIFIED", body(NS, "a", "7"))
    script = Script([KubeError("reset"), [event], KubeError("reset")])
    stream, slept = stream_on(h, script)
    with pytest.raises(Stop):
        await stream.follow(NS, "5")
    assert slept == [BACKOFF[0], BACKOFF[0]]
    assert script.since == ["5", "5", "7", "7"]


async def test_a_watch_that_ends_at_once_with_nothing_said_is_not_a_retry_storm() -> None:
    h = Harness()
    script = Script([[], [], []])
    stream, slept = stream_on(h, script)
    with pytest.raises(Stop):
        await stream.follow(NS, "5")
    assert slept == list(BACKOFF[:3])


async def test_a_glob_serves_only_the_namespaces_it_names() -> None:
    h = Harness(namespaces=["team-*,!team-x"])
    h.airbyte.add_job(1, "running")
    events = [WatchEvent("ADDED", body(ns, "w", "10")) for ns in ("team-a", "team-x", "other")]
    stream, _ = stream_on(h, Script([events]))
    assert h.watches.scopes() == [None]
    with pytest.raises(Stop):
        await stream.follow(None, "5")
    assert set(h.watches.known) == {("team-a", "w")}


async def test_an_object_the_table_cannot_take_is_logged_and_skipped_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception in `observe` would end the stream task and the process, and the object would
    come back on every start: a crash loop. It is logged and skipped; the stream goes on."""
    h = Harness()
    h.airbyte.add_job(1, "running")
    odd = body(NS, "odd", "10")
    odd["metadata"]["generation"] = "not-a-number"
    script = Script([[WatchEvent("ADDED", body(NS, "odd", "9")), WatchEvent("MODIFIED", odd),
                      WatchEvent("ADDED", body(NS, "next", "11"))]])  # fmt: skip
    stream, _ = stream_on(h, script)
    with pytest.raises(Stop):
        await stream.follow(NS, "5")
    assert {(NS, "odd"), (NS, "next")} <= set(h.watches.known)
    assert "could not take in its MODIFIED" in caplog.text
