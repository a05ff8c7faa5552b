"""List-mode polling against the fake Airbyte (which lists, filters, orders and pages as the real
server does): a status change is never missed, whatever the pages, timestamps and clocks do."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Hashable, Iterable

import pytest
from airbyte_watch.airbyte import model as at
from airbyte_watch.airbyte.client import AirbyteClient
from airbyte_watch.airbyte.job_feed import (
    DOWN_AFTER,
    LIST_PAGE,
    NEWS_CADENCE,
    NEWS_JOBS,
    OVERLAP,
    PAGE_ATTEMPTS,
    WALK_BUDGET_SHARE,
    Feed,
)
from airbyte_watch.airbyte.server_config import parse_server_config
from airbyte_watch.airbyte.transport import AirbyteApi

from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.support.fake_airbyte import Fault, RunningFake
from tests.support.fake_jobs import FakeJob, Step

INTERVAL = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Told:
    def __init__(self) -> None:
        self.watchers: list[Hashable] = []

    def __call__(self, watchers: Iterable[Hashable]) -> None:
        self.watchers.extend(watchers)


@pytest.fixture
async def client(fake_airbyte: RunningFake) -> AsyncIterator[AirbyteApi]:
    config = parse_server_config(
        {"url": fake_airbyte.url, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
    )
    async with AirbyteClient(config) as api:
        yield api


def move(job: FakeJob, status: str, at_: float) -> None:
    """The job changes status at `at_` (epoch seconds by Airbyte's clock)."""
    job.steps, job._index, job._served = [Step(status)], 0, 0
    job.updated = at_


def running(fake: RunningFake, ids: Iterable[int], since: float, updated: float | None = None) -> None:
    """Jobs running since `since` (Airbyte's clock), last changed at `updated` (default: then)."""
    for job_id in ids:
        fake.fake.add_job(
            job_id, [Step("running")], created=since, updated=since if updated is None else updated
        )


def lists(fake: RunningFake) -> int:
    return sum(1 for r in fake.fake.requests if r.method == "GET" and r.path.endswith("/jobs"))


def gets(fake: RunningFake) -> int:
    return sum(1 for r in fake.fake.requests if r.method == "GET" and "/jobs/" in r.path)


async def watched(feed: Feed, fake: RunningFake, ids: Iterable[int]) -> None:
    for job_id in ids:
        answer, served = await feed.read(job_id, f"w{job_id}", INTERVAL)
        assert isinstance(answer, at.Job) and not served  # first seen: its own GET


async def test_a_walk_tells_exactly_the_watches_whose_job_moved_and_serves_the_rest(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    t0 = time.time() - 600
    running(fake_airbyte, (1, 2, 3), t0)
    clock, told = Clock(), Told()
    feed = Feed(client, "fake", clock, told)
    await watched(feed, fake_airbyte, (1, 2, 3))
    move(fake_airbyte.fake.jobs[2], "succeeded", time.time())
    await feed.walk()
    assert told.watchers == ["w2"]
    clock.now += INTERVAL
    before = len(fake_airbyte.fake.requests)
    for job_id, status in ((1, "running"), (2, "succeeded"), (3, "running")):
        answer, served = await feed.read(job_id, f"w{job_id}", INTERVAL)
        assert served and isinstance(answer, at.Job) and answer.status == status
    assert len(fake_airbyte.fake.requests) == before  # served from the walk: no request at all


async def test_changes_spread_over_many_pages_are_all_seen(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    t0 = time.time() - 3600
    ids = range(1, 251)
    running(fake_airbyte, ids, t0)
    told = Told()
    feed = Feed(client, "fake", Clock(), told)
    await watched(feed, fake_airbyte, ids)
    feed.watermark = t0  # e.g. after an outage: these changes come after it
    for i, job_id in enumerate(ids):
        move(fake_airbyte.fake.jobs[job_id], "failed", t0 + 60 + i)  # 250 distinct seconds
    before = lists(fake_airbyte)
    await feed.walk()
    assert sorted(told.watchers) == sorted(f"w{j}" for j in ids)
    assert lists(fake_airbyte) - before == 3  # 1 request per 100 changed jobs


async def test_the_oldest_change_is_told_first_and_each_page_as_soon_as_it_is_read(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    """When many jobs end between two walks, their watches are written in the order the jobs
    ended, starting before the last page is read: the ones that waited longest go first."""
    t0 = time.time() - 3600
    ids = range(1, 251)
    running(fake_airbyte, ids, t0)
    calls: list[tuple[int, list[Hashable]]] = []  # (lists made so far, watchers told)
    feed = Feed(client, "fake", Clock(), lambda ws: calls.append((lists(fake_airbyte), list(ws))))
    await watched(feed, fake_airbyte, ids)
    feed.watermark = t0  # e.g. after an outage: these changes come after it
    for i, job_id in enumerate(reversed(ids)):
        move(fake_airbyte.fake.jobs[job_id], "failed", t0 + 60 + i)  # the highest id ended first
    before = lists(fake_airbyte)
    await feed.walk()
    told = [w for _, ws in calls for w in ws]
    assert told == [f"w{j}" for j in reversed(ids)]
    assert calls[0][0] == before + 1  # told after the first page, not at the end of the walk
    assert len(calls) == 3


async def test_the_cadence_follows_the_shortest_interval_among_the_jobs_still_watched(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    for job_id in (1, 2):
        fake_airbyte.fake.add_job(job_id, [Step("running")])
    feed = Feed(client, "fake", Clock(), Told(), list_interval=60.0)
    await feed.read(1, "w1", 30.0)
    await feed.read(2, "w2", 5.0)
    await feed.read(2, "w2b", 10.0)  # a second watch of job 2, with a longer interval
    assert feed.cadence() == 5.0
    feed.unwatch(2, "w2")
    assert feed.cadence() == 5.0  # job 2 is still watched, and its interval stays the shortest
    feed.unwatch(2, "w2b")
    assert feed.cadence() == 30.0
    feed.unwatch(1, "w1")
    assert feed.idle
    assert feed.cadence() == 60.0  # no watch asks for less than the list interval


def test_the_walks_take_at_most_half_of_the_servers_request_budget() -> None:
    feed = Feed(None, "fake", Clock(), Told(), list_interval=5.0, budget=2.0)  # type: ignore[arg-type]
    assert feed.cadence() == 5.0
    feed._last_pages = 20  # a walk of 20 pages: at 2 requests/s, walks only every 20 s
    assert feed.cadence() == 20.0


async def test_a_walk_that_brought_a_page_of_news_is_followed_by_the_next_within_a_second(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    """Jobs end in bursts: after a walk that told a page's worth of watches their job moved, the
    next walk comes one second after it began (not a list interval later), so a job that ends
    right after is learnt of within about a second. A walk with less news puts the cadence back."""
    t0 = time.time() - 600
    ids = range(1, NEWS_JOBS + 2)
    running(fake_airbyte, ids, t0)
    told = Told()
    feed = Feed(client, "fake", time.monotonic, told, list_interval=30.0)
    await watched(feed, fake_airbyte, ids)
    for i, job_id in enumerate(ids[:NEWS_JOBS]):
        move(fake_airbyte.fake.jobs[job_id], "succeeded", time.time() + i / 1000)
    await feed.walk()
    assert len(told.watchers) == NEWS_JOBS and feed.cadence() == NEWS_CADENCE
    last = ids[-1]
    move(fake_airbyte.fake.jobs[last], "failed", time.time())  # right after that walk
    walks, walk = [], feed.walk

    async def counted() -> None:
        walks.append(time.monotonic())
        await walk()

    feed.walk = counted  # type: ignore[method-assign]
    ended = time.monotonic()
    feed.start()
    try:
        async with asyncio.timeout(10):
            while f"w{last}" not in told.watchers:
                await asyncio.sleep(0.02)
        learnt = time.monotonic() - ended
        assert learnt <= NEWS_CADENCE + 1.5 < feed.list_interval
        async with asyncio.timeout(10):
            while feed.walking_since is not None:
                await asyncio.sleep(0.02)
        # That walk told one watch: the list interval again.
        assert feed.cadence() == 30.0
        await asyncio.sleep(NEWS_CADENCE + 0.5)
        assert len(walks) == 1  # the quick walk, and none after it
        assert len(told.watchers) == NEWS_JOBS + 1
    finally:
        await feed.stop()


async def test_walks_brought_on_by_news_keep_within_half_of_the_request_budget(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    """Jobs that move in their hundreds before every walk: each walk comes as soon as the budget
    allows after the last, sooner than the list interval, and walks never take more than their
    share of it."""
    t0 = time.time() - 600
    ids = range(1, 301)
    running(fake_airbyte, ids, t0)
    clock = Clock()
    budget = 1.5  # the walks may take 0.75 requests/s
    feed = Feed(client, "fake", clock, Told(), list_interval=5.0, budget=budget)
    await watched(feed, fake_airbyte, ids)
    start, before, gaps = clock.now, lists(fake_airbyte), []
    for walk in range(12):
        many = (NEWS_JOBS, 180, 300)[walk % 3]  # walks of one page up to several
        for i, job_id in enumerate(ids[:many]):
            move(fake_airbyte.fake.jobs[job_id], ("succeeded", "running")[walk % 2], time.time() + i / 1000)
        walked = lists(fake_airbyte)
        await feed.walk()
        pages = lists(fake_airbyte) - walked
        gap = feed.cadence()
        assert gap == max(NEWS_CADENCE, pages / (budget * WALK_BUDGET_SHARE))  # news: no list interval
        gaps.append(gap)
        clock.now += gap
    assert min(gaps) < 5.0 < max(gaps)  # sooner than the list interval, unless the budget forbids
    rate = (lists(fake_airbyte) - before) / (clock.now - start)
    assert rate <= budget * WALK_BUDGET_SHARE + 1e-9  # (the clock's sum of gaps rounds)


async def test_walks_with_less_than_a_page_of_news_keep_the_list_interval(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    """A few watched jobs end now and then, other jobs of the server move: one walk per list
    interval, as while nothing moves (a quick walk must be paid for by a page of changes)."""
    t0 = time.time() - 600
    running(fake_airbyte, range(1, 400), t0)
    clock, told = Clock(), Told()
    feed = Feed(client, "fake", clock, told, list_interval=5.0)
    await watched(feed, fake_airbyte, range(1, 11))
    for walk in range(5):
        move(fake_airbyte.fake.jobs[1 + walk], "succeeded", time.time())  # watched
        for i, job_id in enumerate(range(100 + 50 * walk, 150 + 50 * walk)):
            move(fake_airbyte.fake.jobs[job_id], "succeeded", time.time() + i / 1000)  # not watched
        await feed.walk()
        assert feed.cadence() == 5.0
        clock.now += 5.0
    assert told.watchers == [f"w{j}" for j in range(1, 6)]


async def test_more_equal_timestamps_than_a_page_are_all_seen(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    t0 = time.time() - 3600
    ids = range(1, 2 * LIST_PAGE + 31)
    running(fake_airbyte, ids, t0)
    told = Told()
    feed = Feed(client, "fake", Clock(), told)
    await watched(feed, fake_airbyte, ids)
    feed.watermark = t0  # e.g. after an outage: these changes come after it
    for job_id in ids:
        move(fake_airbyte.fake.jobs[job_id], "succeeded", t0 + 100)  # one second for all 230
    await feed.walk()
    assert sorted(told.watchers) == sorted(f"w{j}" for j in ids)


@pytest.mark.parametrize("rows", [150, 2 * LIST_PAGE + 31])
@pytest.mark.parametrize("apart", [1 / 7, 1 / 1000], ids=["created-seconds-apart", "created-in-one-second"])
async def test_a_batch_ending_in_one_second_is_read_whole_whatever_order_ties_come_in(
    fake_airbyte: RunningFake, client: AirbyteApi, rows: int, apart: float
) -> None:
    """A nightly schedule's syncs end together: more rows of one `updatedAt` than a page holds,
    which the fake (as PostgreSQL) returns in a new order on each request. Each is read, with
    about two requests per 100 rows, and no job of its own is read."""
    t0 = int(time.time()) - 3600
    ids = range(1, rows + 1)
    for job_id in ids:  # created one after another, as Airbyte creates them
        fake_airbyte.fake.add_job(job_id, [Step("running")], created=t0 + job_id * apart, updated=t0 + 50)
    told = Told()
    feed = Feed(client, "fake", Clock(), told)
    await watched(feed, fake_airbyte, ids)
    feed.watermark = t0 + 90
    for job_id in ids:
        move(fake_airbyte.fake.jobs[job_id], "succeeded", t0 + 100)  # one stored time for all
    before_lists, before_gets = lists(fake_airbyte), gets(fake_airbyte)
    await feed.walk()
    assert sorted(told.watchers) == sorted(f"w{j}" for j in ids)
    assert gets(fake_airbyte) == before_gets
    # Offsets first (a row repeated shows the tie), then the second by creation time: about two
    # requests per 100 tied rows, and a few more.
    assert lists(fake_airbyte) - before_lists <= 2 * -(-rows // LIST_PAGE) + 4


async def test_a_busy_second_of_distinct_times_is_paged_by_offset_alone(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    """More than a page of rows in one second, each with its own stored time (as Airbyte writes
    them, one status update at a time): the server's order is stable, offsets read them all,
    and nothing more is asked than offset paging asks."""
    t0 = int(time.time()) - 3600
    ids = range(1, 251)
    running(fake_airbyte, ids, t0)
    told = Told()
    feed = Feed(client, "fake", Clock(), told)
    await watched(feed, fake_airbyte, ids)
    feed.watermark = t0 + 90
    for job_id in ids:
        move(fake_airbyte.fake.jobs[job_id], "succeeded", t0 + 100 + job_id / 1000)
    before = lists(fake_airbyte)
    await feed.walk()
    assert sorted(told.watchers) == sorted(f"w{j}" for j in ids)
    assert lists(fake_airbyte) - before == 4  # the second's first page twice (keyset), then 2 more


async def test_rows_equal_in_both_times_are_read_one_by_one(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    """Created and ended in the same instants, with one status: no order or filter can page
    them, so the watched jobs of that second the lists left unread get their own reads (400
    rows: the few pages the walk reads before it gives up on order cannot hold them all); none is missed."""
    t0 = time.time() - 3600
    ids = range(1, 401)
    running(fake_airbyte, ids, t0)
    told = Told()
    feed = Feed(client, "fake", Clock(), told)
    await watched(feed, fake_airbyte, ids)
    feed.watermark = t0
    for job_id in ids:
        move(fake_airbyte.fake.jobs[job_id], "failed", t0 + 100)
    before = gets(fake_airbyte)
    await feed.walk()
    assert sorted(told.watchers) == sorted(f"w{j}" for j in ids)
    assert 0 < gets(fake_airbyte) - before < len(ids)


async def test_rows_equal_in_both_times_but_not_in_status_are_read_by_status_not_one_by_one(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    """Jobs created in one instant (as the benchmark creates them) and ending in another, with
    different outcomes: neither time orders them, but each status holds less than a page. They
    are read one page per status; no watched job is read on its own. Before, every watched job
    created in that second was (41,603 GETs in one walk of the 50,000-watch benchmark)."""
    t0 = int(time.time()) - 3600
    ending = range(1, 151)
    still = range(151, 451)  # watched too, created in the same instant, still running
    running(fake_airbyte, [*ending, *still], t0)
    told = Told()
    feed = Feed(client, "fake", Clock(), told)
    await watched(feed, fake_airbyte, [*ending, *still])
    feed.watermark = t0 + 90
    outcomes = ("succeeded", "failed", "cancelled")
    for job_id in ending:
        move(fake_airbyte.fake.jobs[job_id], outcomes[job_id % 3], t0 + 100)  # one stored time
    before_lists, before_gets = lists(fake_airbyte), gets(fake_airbyte)
    await feed.walk()
    assert sorted(told.watchers) == sorted(f"w{j}" for j in ending)
    assert gets(fake_airbyte) == before_gets
    # By update time (3 pages: the second's first page again by keyset, then an offset), by
    # creation time (3, likewise), one page for each of the seven statuses, and the empty seconds
    # after each (2).
    assert lists(fake_airbyte) - before_lists <= 3 + 3 + 7 + 2


async def test_rows_that_no_filter_tells_apart_cost_a_read_of_only_the_watched_jobs_that_may_move(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    """More rows than a page equal in both times and in status: each watched job created in
    that second gets its own read, but not the ones already finished (a finished job never
    changes again) nor the ones this walk read."""
    t0 = time.time() - 3600
    ending = range(1, 161)
    finished = range(161, 261)
    running(fake_airbyte, ending, t0)
    for job_id in finished:
        fake_airbyte.fake.add_job(job_id, [Step("succeeded")], created=t0, updated=t0 + 10)
    told = Told()
    feed = Feed(client, "fake", Clock(), told)
    await watched(feed, fake_airbyte, [*ending, *finished])
    feed.watermark = t0 + 90
    for job_id in ending:
        move(fake_airbyte.fake.jobs[job_id], "failed", t0 + 100)
    before = gets(fake_airbyte)
    await feed.walk()
    assert sorted(told.watchers) == sorted(f"w{j}" for j in ending)
    assert gets(fake_airbyte) - before <= len(ending)


async def test_a_flaky_list_is_retried_by_the_walk_and_its_watches_keep_their_place(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    """Every 4th `GET /jobs` answers 500: the walk tries again a second later, no watch is told
    of a problem or reads its own job, and a change is seen by the next walk that succeeds."""
    t0 = time.time() - 600
    ids = range(1, 21)
    running(fake_airbyte, ids, t0)
    clock, told = Clock(), Told()
    feed = Feed(client, "fake", clock, told)
    await watched(feed, fake_airbyte, ids)
    fake_airbyte.fake.inject(Fault(500, '{"message":"boom"}', path_ends="/jobs", method="GET", every=4))
    before = gets(fake_airbyte)
    for walk in range(12):
        if walk == 6:
            move(fake_airbyte.fake.jobs[3], "succeeded", time.time())
        clock.now += 2.0
        await feed.walk()
        if feed.problem is None and feed._failures:
            assert feed.retry_delay() == 1.0  # the walk's own backoff, not the watches'
            clock.now += 1.0
            await feed.walk()
        assert feed.problem is None and told.watchers == ([] if walk < 6 else ["w3"])  # the next walk
        for job_id in ids:
            answer, served = await feed.read(job_id, f"w{job_id}", INTERVAL)
            assert served and isinstance(answer, at.Job), answer
    assert told.watchers == ["w3"]
    assert gets(fake_airbyte) == before


async def test_a_job_that_moves_while_the_walk_pages_is_not_missed(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    t0 = time.time() - 3600
    ids = range(1, 181)
    running(fake_airbyte, ids, t0)
    told = Told()
    feed = Feed(client, "fake", Clock(), told)
    await watched(feed, fake_airbyte, ids)
    feed.watermark = t0  # e.g. after an outage: these changes come after it
    for i, job_id in enumerate(ids):
        move(fake_airbyte.fake.jobs[job_id], "running", t0 + 10 + i)  # touched, not changed
    lister = client.jobs_updated_since  # type: ignore[attr-defined]
    calls = []

    async def page_then_move(start: float, offset: int = 0) -> at.Page | at.Problem:
        page = await lister(start, offset)
        calls.append(start)
        if len(calls) == 1:
            # After the first page is read, a job on it finishes: it moves to the end.
            move(fake_airbyte.fake.jobs[5], "succeeded", time.time())
        return page

    client.jobs_updated_since = page_then_move  # type: ignore[attr-defined]
    await feed.walk()
    assert "w5" in told.watchers and feed.jobs[5].job.status == "succeeded"


async def test_running_jobs_that_do_not_change_are_not_read_again_by_each_walk(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    t0 = time.time() - 3600
    ids = range(1, 251)
    running(fake_airbyte, ids, t0, t0 + 5)
    feed = Feed(client, "fake", Clock(), Told())
    await watched(feed, fake_airbyte, ids)
    await feed.walk()
    before = lists(fake_airbyte)
    await feed.walk()  # nothing changed since: one empty page, whatever the jobs' updatedAt
    assert lists(fake_airbyte) - before == 1
    assert feed.watermark is not None and feed.watermark >= time.time() - 5


async def test_a_change_that_lands_behind_the_watermark_within_the_overlap_is_seen(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    t0 = time.time() - 3600
    fake_airbyte.fake.add_job(1, [Step("running")], created=t0, updated=t0)
    fake_airbyte.fake.add_job(2, [Step("running")], created=t0, updated=t0 + 100)
    told = Told()
    feed = Feed(client, "fake", Clock(), told)
    await watched(feed, fake_airbyte, (1, 2))
    move(fake_airbyte.fake.jobs[2], "running", t0 + 200)
    await feed.walk()
    assert feed.watermark == pytest.approx(time.time(), abs=2)  # Airbyte's clock (its Date)
    # A row committed late: it carries a time before the watermark, within the overlap.
    move(fake_airbyte.fake.jobs[1], "failed", feed.watermark - OVERLAP + 2)
    await feed.walk()
    assert told.watchers == ["w1"]


async def test_the_first_walk_starts_from_airbytes_clock_at_the_first_read_not_from_old_rows(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    t0 = time.time() - 3600
    running(fake_airbyte, range(1, 251), t0)
    feed = Feed(client, "fake", Clock(), Told())
    await watched(feed, fake_airbyte, (1,))
    before = lists(fake_airbyte)
    await feed.walk()
    assert lists(fake_airbyte) - before == 1  # not the 250 rows changed an hour ago


async def test_watches_added_after_a_walk_do_not_make_the_next_walk_read_every_job_again(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    """A job first read by its own GET is known as of that read: its later changes carry later
    times, so it needs no walk from further back. (Moving the watermark back a little for each
    new job added up: 2,000 watches found after a walk sent it back hours.)"""
    t0 = time.time() - 300
    ids = range(1, 251)
    running(fake_airbyte, ids, t0)
    feed = Feed(client, "fake", Clock(), Told())
    await watched(feed, fake_airbyte, (1,))
    await feed.walk()  # reads the 250 rows since t0 once
    await watched(feed, fake_airbyte, range(2, 251))
    before = lists(fake_airbyte)
    await feed.walk()
    assert lists(fake_airbyte) - before == 1  # nothing changed: one empty page


def test_safety_rereads_come_every_100_to_200_intervals_at_most_1_percent_per_interval() -> None:
    n, now = 100_000, 1000.0
    due = [(Feed._reread(now, INTERVAL) - now) / INTERVAL for _ in range(n)]
    assert min(due) >= 100 and max(due) <= 200
    per_interval = Counter(int(d) for d in due)
    assert max(per_interval.values()) <= 0.012 * n  # 1%, and room for chance (6 sd)


async def test_a_server_clock_that_jumps_back_is_caught_by_the_safety_reread(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    t0 = time.time() - 3600
    running(fake_airbyte, (1, 2), t0)
    clock, told = Clock(), Told()
    feed = Feed(client, "fake", clock, told)
    await watched(feed, fake_airbyte, (1, 2))
    move(fake_airbyte.fake.jobs[2], "running", t0 + 1800)
    await feed.walk()
    # Airbyte's clock goes back half an hour: both jobs finish "before" the watermark.
    move(fake_airbyte.fake.jobs[1], "succeeded", t0 + 300)
    move(fake_airbyte.fake.jobs[2], "failed", t0 + 301)
    await feed.walk()
    assert told.watchers == []  # the list cannot see them
    clock.now = feed.jobs[1].reread_at  # job 1's safety re-read is due
    answer, served = await feed.read(1, "w1", INTERVAL)
    assert not served and isinstance(answer, at.Job) and answer.status == "succeeded"
    assert feed.watermark is not None and feed.watermark <= t0 + 300 - OVERLAP
    await feed.walk()  # read back from before that change: job 2 is found too
    assert told.watchers == ["w2"]


async def test_credentials_that_may_not_list_fall_back_to_reading_each_job(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    t0 = time.time() - 600
    fake_airbyte.fake.add_job(1, [Step("running")], created=t0, updated=t0)
    clock, told, fallbacks = Clock(), Told(), []
    feed = Feed(client, "fake", clock, told, on_fallback=fallbacks.append)
    await watched(feed, fake_airbyte, (1,))
    forbidden = {"type": "https://reference.airbyte.com/reference/errors#forbidden", "title": "forbidden",
                 "status": 403, "detail": "Caller does not have the required role"}  # fmt: skip
    # A 403 is answered with one fresh login first (a revoked token is refused so too); the
    # role is still missing after it.
    fake_airbyte.fake.inject(Fault(403, json.dumps(forbidden), path_contains="/jobs", method="GET", count=2))
    tokens = sum(1 for r in fake_airbyte.fake.requests if r.path.endswith("/applications/token"))
    await feed.walk()
    assert feed.fallback and fallbacks == ["fake"] and told.watchers == ["w1"]
    assert sum(1 for r in fake_airbyte.fake.requests if r.path.endswith("/applications/token")) == tokens + 1
    before = gets(fake_airbyte)
    clock.now += INTERVAL
    answer, served = await feed.read(1, "w1", INTERVAL)
    assert not served and isinstance(answer, at.Job) and gets(fake_airbyte) == before + 1


async def test_an_outage_reaches_every_watch_once_without_a_herd_of_gets(
    fake_airbyte: RunningFake, client: AirbyteApi
) -> None:
    t0 = time.time() - 600
    running(fake_airbyte, (1, 2, 3), t0)
    clock, told = Clock(), Told()
    feed = Feed(client, "fake", clock, told)
    await watched(feed, fake_airbyte, (1, 2, 3))
    await feed.walk()
    fake_airbyte.fake.inject(
        Fault(503, "{}", path_ends="/jobs", method="GET", count=(DOWN_AFTER + 1) * PAGE_ATTEMPTS)
    )
    for _ in range(DOWN_AFTER - 1):
        await feed.walk()
    assert told.watchers == []  # a failed walk or two is the walk's own problem: retried, not told
    await feed.walk()
    await feed.walk()
    assert sorted(told.watchers) == ["w1", "w2", "w3"]  # told once, not per failed walk
    clock.now += 5 * INTERVAL
    before = gets(fake_airbyte)
    for job_id in (1, 2, 3):
        answer, served = await feed.read(job_id, f"w{job_id}", INTERVAL)
        assert served and isinstance(answer, at.Problem) and answer.kind == at.SERVER_ERROR
    assert gets(fake_airbyte) == before
    told.watchers.clear()
    await feed.walk()  # Airbyte is back: every watch hears it
    assert sorted(told.watchers) == ["w1", "w2", "w3"]
