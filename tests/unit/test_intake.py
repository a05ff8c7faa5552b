"""kopf's intake (handlers.take_in) hands every AirbyteJobWatch event to the table: kopf's
own listing (type None), ADDED, MODIFIED and DELETED; only the namespaces the patterns name are
served; and an object the table cannot take is logged and skipped, never a crash loop."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from airbyte_watch import handlers

from tests.support.memory import NAMESPACE, Harness

NS = NAMESPACE


def body(namespace: str, name: str, rv: str, uid: str = "") -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": uid or f"uid-{namespace}-{name}",
                     "resourceVersion": rv, "generation": 1},
        "spec": {"jobId": 1},
    }  # fmt: skip


class Served:
    """What handlers.py reads from kopf's memo: the service and its watches."""

    def __init__(self, h: Harness) -> None:
        self.watches = h.watches


async def take_in(h: Harness, type_: str | None, obj: dict[str, Any]) -> None:
    memo = kopf.Memo(service=Served(h))
    await handlers.take_in(event={"type": type_, "object": obj}, memo=memo)


async def test_listed_added_modified_and_deleted_objects_reach_the_table() -> None:
    h = Harness()
    h.airbyte.add_job(1, "running")
    await take_in(h, None, body(NS, "listed", "1"))
    await take_in(h, "ADDED", body(NS, "added", "2"))
    assert set(h.watches.known) == {(NS, "listed"), (NS, "added")}
    edited = body(NS, "added", "3")
    edited["metadata"]["generation"] = 2
    await take_in(h, "MODIFIED", edited)
    assert h.watches.known[(NS, "added")].generation == 2
    await take_in(h, "DELETED", body(NS, "listed", "4"))
    assert set(h.watches.known) == {(NS, "added")}


async def test_a_glob_serves_only_the_namespaces_it_names() -> None:
    h = Harness(namespaces=["team-*,!team-x"])
    h.airbyte.add_job(1, "running")
    assert h.watches.scopes() == [None]  # kopf watches all namespaces; the patterns filter
    for ns in ("team-a", "team-x", "other"):
        await take_in(h, "ADDED", body(ns, "w", "10"))
    assert set(h.watches.known) == {("team-a", "w")}


async def test_an_object_the_table_cannot_take_is_logged_and_skipped_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception out of the handler would have kopf retry the event forever, and the object
    would come back on every start. It is logged and skipped; the next events go on."""
    h = Harness()
    h.airbyte.add_job(1, "running")
    await take_in(h, "ADDED", body(NS, "odd", "9"))
    odd = body(NS, "odd", "10")
    odd["metadata"]["generation"] = "not-a-number"
    await take_in(h, "MODIFIED", odd)
    await take_in(h, "ADDED", body(NS, "next", "11"))
    assert {(NS, "odd"), (NS, "next")} <= set(h.watches.known)
    assert "could not take in its MODIFIED" in caplog.text


async def test_once_kopf_has_listed_every_watch_known_at_start_the_hook_runs_once() -> None:
    """After our first list, kopf lists again and makes its memory of each watch; the service
    settles the GC once that is in (a freeze before it leaves kopf's memories in the scans)."""
    h = Harness()
    h.airbyte.add_job(1, "running")
    for name in ("a", "b"):
        await take_in(h, None, body(NS, name, "1"))  # our own first list
    ran: list[int] = []
    h.watches.on_listing_taken_in = lambda: ran.append(1)
    h.watches.expect_listing()
    await take_in(h, None, body(NS, "new", "1"))  # created since our list: not one it counts
    await take_in(h, None, body(NS, "a", "1"))
    assert ran == []
    await take_in(h, "MODIFIED", body(NS, "a", "2"))  # an event is not the listing
    assert ran == []
    await take_in(h, None, body(NS, "b", "1"))
    assert ran == [1]
    await take_in(h, None, body(NS, "a", "3"))  # a later list: once only
    assert ran == [1]
