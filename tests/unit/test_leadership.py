"""Leader election's rules, against an in-memory Lease store with the API server's conflict check."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from airbyte_watch import cli
from airbyte_watch.kube.leadership import Leadership, NotLeader, Timing
from airbyte_watch.monitoring.metrics import Metrics

TIMING = Timing(lease_duration=4, renew_deadline=2.5, retry_period=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class LeaseStore:
    """The part of the API server a Lease needs: GET, POST and PUT guarded by resourceVersion."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.writes: list[str] = []

    async def _request(
        self, method: str, path: str, *, body: Any = None, fenced: bool = True
    ) -> tuple[int, Any]:
        assert not fenced, "the Lease itself is never fenced"
        if method == "GET":
            return (404, None) if self.lease is None else (200, copy.deepcopy(self.lease))
        if method == "POST":
            if self.lease is not None:
                return 409, None
        elif body["metadata"].get("resourceVersion") != str(self.version):
            return 409, None
        self.version += 1
        self.lease = {
            **copy.deepcopy(body),
            "metadata": {**body["metadata"], "resourceVersion": str(self.version)},
        }
        self.writes.append(body["spec"]["holderIdentity"])
        return (201 if method == "POST" else 200), copy.deepcopy(self.lease)


def candidate(store: LeaseStore, clock: Clock, identity: str) -> Leadership:
    return Leadership(store, "ns", "airbyte-watch", identity, TIMING, clock=clock)  # type: ignore[arg-type]


async def test_first_candidate_creates_the_lease_and_may_act_until_the_renew_deadline() -> None:
    store, clock = LeaseStore(), Clock()
    a = candidate(store, clock, "a")
    assert not a.may_act()
    await a.acquire()
    assert a.may_act() and store.lease["spec"]["holderIdentity"] == "a"
    clock.now += 2.4
    a.check()
    clock.now += 0.2  # 2.6 s since the renewal was sent: past the 2.5 s deadline
    with pytest.raises(NotLeader):
        a.check()
    assert a.lost.is_set()
    clock.now -= 1.0  # lost stays lost, whatever happens next
    assert not a.may_act()


async def test_a_standby_waits_a_full_lease_duration_of_no_renewals_on_its_own_clock() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    await a.acquire()
    assert not await b._try_acquire_or_renew()  # first sight of a's record starts b's clock
    clock.now += 3.9
    assert not await b._try_acquire_or_renew()
    clock.now += 0.2  # 4.1 s without a change: the lease expired as b sees it
    assert await b._try_acquire_or_renew()
    assert store.lease["spec"]["holderIdentity"] == "b" and store.lease["spec"]["leaseTransitions"] == 1
    assert not a.may_act(), "a's renew deadline (2.5 s) passed long before b could take over (4 s)"


async def test_renewals_keep_a_standby_out() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    await a.acquire()
    for _ in range(10):
        assert not await b._try_acquire_or_renew()
        clock.now += 1.0
        assert await a._try_acquire_or_renew()
    assert a.may_act() and store.writes == ["a"] * 11


async def test_a_write_conflict_means_someone_else_won() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    await a.acquire()
    clock.now += 5
    await b._try_acquire_or_renew()  # b sees the record...
    clock.now += 5
    stale = copy.deepcopy(store.lease)
    assert await a._try_acquire_or_renew()  # ...a renews in between...
    store_get = store._request

    async def stale_get(method: str, path: str, **kw: Any) -> tuple[int, Any]:
        return (200, copy.deepcopy(stale)) if method == "GET" else await store_get(method, path, **kw)

    store._request = stale_get  # type: ignore[method-assign]
    assert not await b._try_acquire_or_renew(), "b's write of an old resourceVersion is refused"
    assert store.lease["spec"]["holderIdentity"] == "a"


async def test_release_hands_over_at_once() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    await a.acquire()
    assert not await b._try_acquire_or_renew()
    await a.release()
    assert not a.may_act() and not a.lost.is_set()
    assert await b._try_acquire_or_renew(), "an empty holder is free at once"


async def test_keep_gives_up_when_renewals_fail_past_the_deadline() -> None:
    store, clock = LeaseStore(), Clock()
    a = candidate(store, clock, "a")
    a.timing = Timing(lease_duration=2, renew_deadline=0.3, retry_period=0.1)
    await a.acquire()

    async def unreachable(method: str, path: str, **kw: Any) -> tuple[int, Any]:
        clock.now += 0.1
        return 503, None

    store._request = unreachable  # type: ignore[method-assign]
    await a.keep()
    assert a.lost.is_set() and not a.may_act()


def test_timing_must_fence() -> None:
    with pytest.raises(ValueError):
        Timing(lease_duration=4, renew_deadline=4, retry_period=1)
    with pytest.raises(ValueError):
        Timing(lease_duration=4, renew_deadline=1, retry_period=1)


@pytest.mark.parametrize(("pod", "shard", "lease"), [
    ("airbyte-watch-0", 0, "airbyte-watch-shard-0-of-2"),
    ("airbyte-watch-1", 1, "airbyte-watch-shard-1-of-2"),
    ("airbyte-watch-2", 0, "airbyte-watch-shard-0-of-2"),  # the second pod of shard 0
    ("airbyte-watch-3", 1, "airbyte-watch-shard-1-of-2"),
])  # fmt: skip
def test_statefulset_pods_pair_up_on_one_lease_per_shard(
    monkeypatch: pytest.MonkeyPatch, pod: str, shard: int, lease: str
) -> None:
    """deploy/sharded runs 2 x --shard-count pods: each pod's ordinal modulo the count is its shard."""
    monkeypatch.setattr(cli.socket, "gethostname", lambda: pod)
    monkeypatch.setenv("POD_NAME", pod)
    args = cli.parse_args(["run", "--shard-count=2", "--leader-elect", "--leader-election-namespace=ops"])
    leadership = cli.leadership_of(args, None, cli.shard_of(args), Metrics())  # type: ignore[arg-type]
    assert cli.shard_of(args).index == shard
    assert (leadership.namespace, leadership.name) == ("ops", lease)
    assert leadership.identity.startswith(f"{pod}_")
    assert cli.leadership_of(args, None, cli.shard_of(args), Metrics()).identity != leadership.identity  # type: ignore[arg-type]
