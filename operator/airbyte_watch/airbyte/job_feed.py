"""List-mode polling: one walk of `GET /jobs` per server and credentials per cadence tells every
watch of that server whether its job moved, instead of one `GET /jobs/{id}` per watch.

Airbyte's public API lists jobs by `updatedAt` (`updatedAtStart`, `orderBy=updatedAt|ASC`,
`limit` 100), and a job's `updatedAt` moves with every status change (airbyte-platform's
JobsController.listJobs and the job persistence behind it; tests/support/AIRBYTE.md). So:

- The **watermark** is Airbyte's own clock, never ours: the `Date` of its answer to a walk's
  first page (the newest `updatedAt` read, if it sent none). A `Date` before the watermark
  means that clock went back: the next walk reads again from the last walk's start by it.
  Each walk starts `OVERLAP` seconds before the watermark, since timestamps are whole seconds
  and a row may commit a little after the time it carries.
- A walk pages by **keyset**: the next page starts at the last row's `updatedAt` (rows read
  twice are harmless), so a job that changes while the walk runs moves ahead of the cursor and
  is read in the same walk; offset paging would shift unread rows past it instead.
- A whole page of one second cannot advance by keyset: the walk goes on within that second
  by offset, in the server's order of full (microsecond) timestamps. Rows equal in their stored
  `updatedAt` (a batch ending in one transaction) come in no promised order, so offsets over
  them may skip one row and repeat another; since the pages add up to the rows there are, a
  repeated id shows it, and then that second is read on its own, ordered by creation time
  (`updatedAtStart`/`updatedAtEnd` one second apart, `orderBy=createdAt|ASC`, keyset on the
  creation second). Rows equal in both times are read one status at a time (the `status`
  filter: seven pages, each whole unless a page's worth shares one status too); only what that
  leaves unread costs a GET each, of the watched jobs created in that second that may still
  move. Without ties this costs what offset paging cost; with them, about one request more
  per 100 tied rows.
- A watch's own `GET /jobs/{id}` is left for what a list cannot serve: a job seen for the first
  time; a job the walks have not vouched for within its interval (a walk failed, or the cadence
  is slower); a safety re-read of each job every 100 to 200 of its intervals, spread at
  random (at most 1% of watches per interval); and servers whose credentials may not list
  (403 after a fresh login: that server falls back to per-job reads, said once in a log line
  and a metric).
- A failed walk is the walk's problem: it is retried after 1 s, 2 s, 4 s, ... (at most 16
  cadences), and its watches keep their place, served the last walk's news while it is within
  their interval (and reading their job themselves after that). Only a server that fails
  `DOWN_AFTER` walks in a row, or refuses the login, is told to every watch at once; they are
  then served that problem without a request each, until a walk succeeds.
- A GET that finds a change the walks did not report means Airbyte's clock went back (or a row
  committed later than `OVERLAP`): the watermark moves back to before that change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from . import model as at

log = logging.getLogger(__name__)

# Seconds each walk reaches back before the watermark: Airbyte's times are whole seconds, and a
# row may commit a little after the time it carries (set by whichever Airbyte pod wrote it).
# Every walk reads again the rows of this window, so it is kept small: at 80 job changes a
# second, 10 s of overlap would cost 8 more pages a walk. A later commit is caught by the
# safety re-reads, and a GET that finds such a change moves the watermark back.
OVERLAP = 3.0
# A job gets its own GET once per 100 to 200 of its intervals, at random: spread over a window of
# 100 intervals, at most 1% of watches created together re-read in any one interval.
SAFETY_INTERVALS = (100, 200)
MIN_CADENCE = 1.0  # seconds between two walks of one server, at least
# After a walk that told at least NEWS_JOBS watched jobs they moved, the next walk starts
# NEWS_CADENCE after it began (at once if it took longer), not a list interval later: jobs end
# in bursts (a schedule's syncs, thousands of watches at scale), and a whole interval's wait,
# then its writes queued at once, made the slowest detections. Bounded three ways:
# - a page of news: each quick walk (a request at least) follows 100 changes, which list mode
#   pays one request per 100 for anyway; a few jobs ending now and then (or none) keep one walk
#   per list interval, and so the requests of a small server while its jobs end.
# - a gap, not a count of quick walks: Airbyte's times are whole seconds, so a sooner walk reads
#   the same seconds again; a count would put the interval's wait back into a burst that lasts.
# - the budget: walks take at most WALK_BUDGET_SHARE of it after news too.
NEWS_JOBS = 100
NEWS_CADENCE = MIN_CADENCE
LIST_INTERVAL = 5.0  # seconds between two walks of one server, unless a watch asks for less
# The walks of one server take at most this share of its request budget (--max-requests-per-
# second): the rest is left to the per-job reads, starts and cancels.
WALK_BUDGET_SHARE = 0.5
MAX_PAGES = 1000  # per walk: a runaway walk stops and the next one goes on from its watermark
SLACK = 2.0  # seconds a walk's news may be older than a watch's interval and still serve it
LIST_PAGE = 100  # the page size the walks ask for (the server's largest)
DOWN_AFTER = 3  # walks failed in a row before the server counts as failing for its watches
RETRY_BASE = 1.0  # seconds before a failed walk is tried again; doubles with each failure
MAX_BACKOFF_CADENCES = 16  # a failing server is walked at least once per 16 cadences
# A page that fails (5xx, no answer) is asked again after these pauses before its walk fails:
# a flaky server costs a request more, not a walk started over (which may fail again).
PAGE_RETRIES = (0.5, 1.0)
PAGE_ATTEMPTS = len(PAGE_RETRIES) + 1


class JobLister(Protocol):
    async def get_job(self, job_id: int, server_time: list[float] | None = None) -> at.Job | at.Problem: ...

    async def jobs_updated_since(self, start: float, offset: int = 0) -> at.Page | at.Problem: ...

    async def jobs_updated_in_second(self, second: float, created_since: float, offset: int = 0
                                     ) -> at.Page | at.Problem: ...  # fmt: skip

    async def jobs_of_status_in_seconds(self, status: str, updated: float, created: float, offset: int = 0
                                        ) -> at.Page | at.Problem: ...  # fmt: skip


@dataclass
class Known:
    job: at.Job  # its `updated`: when Airbyte last changed it, by Airbyte's clock
    read_at: float  # monotonic time of its own last GET
    reread_at: float  # monotonic time of its next safety re-read, spread at random
    interval: float  # the shortest pollInterval among its watches
    watchers: set[Hashable] = field(default_factory=set)
    nudged_at: float = float("-inf")  # monotonic time its watches were last woken by `overdue`


PageHook = Callable[[str, str, float], None]  # (host, "ok" or a problem kind, seconds): one page read


class Feed:
    """One server + credentials: what its watched jobs last looked like, kept fresh by walks."""

    def __init__(self, client: JobLister, host: str, monotonic: Callable[[], float],
                 notify: Callable[[Iterable[Hashable]], None],
                 on_fallback: Callable[[str], None] = lambda host: None,
                 on_page: PageHook = lambda host, outcome, seconds: None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 list_interval: float = LIST_INTERVAL, budget: float | None = None) -> None:  # fmt: skip
        self.client = client
        self.sleep = sleep
        self.list_interval = list_interval
        self.budget = budget  # requests per second this server may get, if bounded
        self._last_pages = 1  # requests the last walk took
        self._news = False  # the last walk told NEWS_JOBS watched jobs they moved: next one soon
        self._moved = 0  # watched jobs that moved, so far in the walk under way
        self.on_page = on_page
        self.host = host
        self.monotonic = monotonic
        self.notify = notify
        self.on_fallback = on_fallback
        self.jobs: dict[int, Known] = {}
        self._intervals: Counter[float] = Counter()  # Known.interval -> how many jobs have it
        self.watermark: float | None = None  # Airbyte's clock
        self._watermark_at = 0.0  # monotonic time the watermark was last read off Airbyte's clock
        self.walked_at: float | None = None  # monotonic start of the last complete walk
        self.walking_since: float | None = None  # monotonic start of the walk under way
        self.problem: at.Problem | None = None  # why the server counts as failing (told to watches)
        self.failed_at: float | None = None  # monotonic time of the last failed walk
        self.fallback: str | None = None  # why this server is read per job
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._failures = 0

    # --- what a watch's step asks ---------------------------------------------------------------

    async def read(self, job_id: int, watcher: Hashable, interval: float) -> tuple[at.Job | at.Problem, bool]:
        """The job for one watch's step, and whether it was served from the walks (no request)."""
        now = self.monotonic()
        known = self.jobs.get(job_id)
        if known is not None:
            known.watchers.add(watcher)
            self._set_interval(known, interval)
        if self.fallback is None and known is not None and now < known.reread_at:
            if self.problem is not None:
                return self.problem, True  # the server is down for every watch: no herd of GETs
            if self._fresh(known, now):
                return known.job, True
        times: list[float] = []
        answer = await self.client.get_job(job_id, server_time=times)
        if isinstance(answer, at.Job):
            self._remember(job_id, answer, watcher, interval, now, times[0] if times else None)
        return answer, False

    def _fresh(self, known: Known, now: float) -> bool:
        """The walks (or its own read) vouched for this job within its interval. A walk under
        way brings its news if it moved; until it has read every page, the last walk's word
        still stands, for one interval more at most: a walk that hangs (a frozen server) must
        not keep its watches waiting on it."""
        fresh = max(known.read_at, self.walked_at or float("-inf"))
        underway = 0.0 if self.walking_since is None else min(now - self.walking_since, known.interval)
        return now - fresh <= known.interval + SLACK + underway

    def overdue(self) -> list[Hashable]:
        """The watches whose job the walks have not vouched for within its interval (walks
        failing or hanging, not yet a failing server), to be woken once per interval: a watch
        served by the walks does not step on its own while its job runs."""
        if self.problem is not None or self.fallback is not None or self.walked_at is None:
            return []
        now = self.monotonic()
        if now - self.walked_at <= min(self._intervals, default=float("inf")) + SLACK:
            return []  # the last walk is recent enough for every job: no scan
        late: list[Hashable] = []
        for known in self.jobs.values():
            if not self._fresh(known, now) and now - known.nudged_at >= known.interval:
                known.nudged_at = now
                late.extend(known.watchers)
        return late

    def unwatch(self, job_id: int, watcher: Hashable) -> None:
        known = self.jobs.get(job_id)
        if known is not None:
            known.watchers.discard(watcher)
            if not known.watchers:
                del self.jobs[job_id]
                self._drop_interval(known.interval)

    @property
    def idle(self) -> bool:
        return not self.jobs

    def _remember(self, job_id: int, job: at.Job, watcher: Hashable, interval: float, now: float,
                  server_time: float | None) -> None:  # fmt: skip
        known = self.jobs.get(job_id)
        updated = job.updated
        if known is None:
            # Plan the walks again only when they can begin or must come sooner: 10,000 jobs
            # found at start would otherwise wake the walker 10,000 times.
            if self.watermark is None or interval < self.cadence():
                self._wake.set()
            self.jobs[job_id] = Known(job, now, self._reread(now, interval), interval, {watcher})
            self._intervals[interval] += 1
            # Known as of this read: its later changes carry later times, which the walks from
            # the current watermark see. The first read sets the watermark: Airbyte's clock when
            # it answered (not the job's updatedAt, which may be hours old: a first walk from
            # there would read every job changed since).
            if self.watermark is None:
                self.watermark = server_time if server_time is not None else updated
                self._watermark_at = now
            return
        if job != known.job and self.walked_at is not None and known.read_at <= self.walked_at:
            # The walks vouched for this job and missed its change: Airbyte's clock went back,
            # or a row committed late. Read again from before that change.
            log.warning(
                "Airbyte %s: job %d changed without a list showing it; reading back", self.host, job_id
            )
            if updated is not None and self.watermark is not None:
                self.watermark = min(self.watermark, updated - OVERLAP)
        known.job = job
        known.read_at, known.reread_at = now, self._reread(now, interval)
        known.watchers.add(watcher)
        self._set_interval(known, interval)

    def _set_interval(self, known: Known, interval: float) -> None:
        if interval < known.interval:
            if interval < self.cadence():
                self._wake.set()
            self._drop_interval(known.interval)
            known.interval = interval
            self._intervals[interval] += 1

    def _drop_interval(self, interval: float) -> None:
        self._intervals[interval] -= 1
        if self._intervals[interval] <= 0:
            del self._intervals[interval]

    @staticmethod
    def _reread(now: float, interval: float) -> float:
        """Spread at random, so that watches created together do not re-read together."""
        return now + interval * random.uniform(*SAFETY_INTERVALS)

    def next_reread(self, job_id: int) -> float | None:
        known = self.jobs.get(job_id)
        return known.reread_at if known is not None else None

    # --- the walks ------------------------------------------------------------------------------------

    def cadence(self) -> float:
        """Seconds from the last walk's start to the next: `list_interval`, or the shortest
        pollInterval if that is shorter; NEWS_CADENCE after a walk that brought a page of news;
        never so often that the walks take more than their share of the budget. pollInterval
        stays what it was: the longest a watch may go without news of its job."""
        budgeted = self._last_pages / (self.budget * WALK_BUDGET_SHARE) if self.budget else 0.0
        return max(NEWS_CADENCE, budgeted) if self._news else max(self._steady(), budgeted)

    def _steady(self) -> float:
        """The cadence while nothing moves, before the budget."""
        # A count per distinct interval, not a scan of the jobs: this runs on every wake, and
        # 10,000 jobs found at start would make that quadratic.
        wanted = min(self.list_interval, min(self._intervals, default=self.list_interval))
        return max(MIN_CADENCE, wanted)

    def retry_delay(self) -> float:
        """After `_failures` failed walks in a row: 1 s, 2 s, 4 s, ... up to 16 cadences."""
        backoff = RETRY_BASE * 2 ** min(self._failures - 1, 16)
        return min(backoff, self._steady() * MAX_BACKOFF_CADENCES)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        """Walk once per cadence (sooner after news, backing off after failures); a job with a
        shorter interval wakes it to plan again."""
        last = self.monotonic()
        while self.fallback is None:
            due = last + (self.cadence() if not self._failures else self.retry_delay())
            delay = due - self.monotonic()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                continue
            last = self.monotonic()
            if self.jobs and self.watermark is not None:
                try:
                    await self.walk()
                except Exception:  # a bug, not an Airbyte fault: watches fall back to their GETs
                    log.exception("Airbyte %s: the job list walk failed unexpectedly", self.host)
                    self._failures += 1

    async def walk(self) -> None:
        """Read every job changed since the watermark and tell the watches whose job moved.

        Each page's news goes out as soon as it is read, oldest change first: when many jobs
        end between two walks, the ones that waited longest are written first, so a burst of
        writes does not push the oldest news past its interval."""
        assert self.watermark is not None
        started = self.walking_since = self.monotonic()
        self._moved = 0
        try:
            await self._pages(started)
        finally:
            self.walking_since = None

    async def _pages(self, started: float) -> None:
        assert self.watermark is not None
        start, offset, newest = self.watermark - OVERLAP, 0, self.watermark
        server_time: float | None = None
        pages = 0
        tied: set[int] | None = None  # ids read so far at offsets within the second `start`
        while pages < MAX_PAGES:
            pages += 1
            answer = await self._page(functools.partial(self.client.jobs_updated_since, start, offset))
            if answer is None:
                return
            if server_time is None:
                server_time = answer.server_time
            newest = max(newest, self._take(answer.jobs))
            rows = answer.jobs
            if offset and tied is not None:
                # On by offset within one second, in the server's order of full timestamps.
                # Rows equal in their stored `updatedAt` (a batch ending in one transaction)
                # come in no promised order, so offsets over them may skip a row and repeat
                # another: a repeated id shows it (the pages add up to the rows there are), and
                # then that second is read by creation time instead.
                here = [job.job_id for job in rows if job.updated == start]
                if _repeats(tied, here):
                    read = await self._second(start, MAX_PAGES - pages)
                    if read is None:
                        return
                    pages += read
                    start, offset, tied = start + 1, 0, None
                    continue
                tied.update(here)
            if len(rows) < LIST_PAGE:
                break
            first, last = rows[0].updated, rows[-1].updated
            if last is not None and first == last:
                # A whole page of one second cannot go on by keyset.
                if start != last:
                    start, offset, tied = last, 0, None  # from that second's first row
                else:
                    offset += LIST_PAGE
                    tied = (tied or set()) | {job.job_id for job in rows}
            elif last is not None and last > start:
                start, offset, tied = last, 0, None  # keyset: on from the last row's time
            else:
                offset += LIST_PAGE  # rows that do not say when they changed: on by offset
        self._last_pages, self._news = pages, self._moved >= NEWS_JOBS
        recovered = self.problem is not None
        self.problem, self._failures = None, 0
        # Airbyte's clock when it answered the first page: every later change carries a later
        # time, so the next walk needs nothing older. Without it, a watermark made of updatedAt
        # alone stands still while jobs run, and each walk would read every running job again.
        if server_time is not None and server_time < self.watermark - OVERLAP:
            # Airbyte's clock answered before the watermark: it went back, and what changed since
            # the watermark was read carries times this walk did not reach. Read again from
            # then, by Airbyte's clock now.
            since = self.monotonic() - self._watermark_at
            log.warning("Airbyte %s: its clock went back %.0f s; reading the jobs again from before",
                        self.host, self.watermark - server_time)  # fmt: skip
            self.watermark = server_time - since  # Airbyte's time at _watermark_at, by its clock now
            self._wake.set()
        else:
            # Not the newest updatedAt read when Airbyte tells its clock: rows stamped before its
            # clock went back (or by a pod whose clock runs ahead) would hold the watermark in
            # the future, and the changes after it would be missed.
            self.watermark = server_time if server_time is not None else newest
            self._watermark_at = started
        self.walked_at = started
        if recovered:
            self.notify([w for k in self.jobs.values() for w in k.watchers])

    async def _page(self, ask: Callable[[], Awaitable[at.Page | at.Problem]]) -> at.Page | None:
        """One page of a walk, each request counted, a transient failure asked again after a
        pause; None when it failed still (the walk's problem)."""
        for pause in (*PAGE_RETRIES, None):
            asked = self.monotonic()
            answer = await ask()
            outcome = answer.kind if isinstance(answer, at.Problem) else "ok"
            self.on_page(self.host, outcome, self.monotonic() - asked)
            if not isinstance(answer, at.Problem):
                return answer
            if pause is None or not answer.transient or answer.status_code == 403:
                break  # out of tries, or a refusal that asking again will not change
            await self.sleep(pause)
        self._failed(answer)
        return None

    def _take(self, page: list[at.Job]) -> float:
        """Tell the watches whose job moved, oldest change first; the newest `updated` read."""
        newest = float("-inf")
        moved: dict[Hashable, None] = {}  # ordered: as listed
        jobs = 0
        for job in page:
            if job.updated is not None:
                newest = max(newest, job.updated)
            known = self.jobs.get(job.job_id)
            if known is not None and job != known.job:
                known.job = job
                moved.update(dict.fromkeys(known.watchers))
                jobs += 1
        if moved:
            self._moved += jobs
            self.notify(moved)
        return newest

    async def _second(self, second: float, budget: int) -> int | None:
        """Every row updated within `second`, paged by creation time: keyset on the creation
        second, offsets only among rows created within one second too, which their full
        creation times order. The pages it took, or None when one failed.

        Rows equal in both stored times have no order at all; offsets over them repeat a row
        on one page and skip another. A repeated id shows it (the pages always add up to the
        rows there are), and then that creation second is read one status at a time.
        """
        created, offset, pages = 0.0, 0, 0
        seen: set[int] = set()  # ids read at offsets within the current creation second
        while pages < budget:
            pages += 1
            ask = functools.partial(self.client.jobs_updated_in_second, second, created, offset)
            answer = await self._page(ask)
            if answer is None:
                return None
            rows = answer.jobs
            self._take(rows)
            last = rows[-1].created if rows else None
            here = [r.job_id for r in rows if r.created is not None and int(r.created) == int(created)]
            if offset and _repeats(seen, here):
                split = await self._by_status(second, created, budget - pages)
                if split is None:
                    return None
                pages += split
                created, offset, seen = created + 1, 0, set()
                continue
            if len(rows) < LIST_PAGE:
                break
            if last is not None and last > created:
                created, offset, seen = last, 0, {r.job_id for r in rows if r.created == last}
            else:
                offset += LIST_PAGE
                seen.update(here)
        return pages

    async def _by_status(self, second: float, created: float, budget: int) -> int | None:
        """The rows updated within `second` and created within `created`, equal in both stored
        times: one status at a time, by offset (a repeated id shows a status too crowded for
        that). The requests it took, or None when one failed. A job that ended with others in
        one transaction, created with them in another (a batch, or the benchmark), costs seven
        pages here, not a GET for every watched job created in that second."""
        pages, read, crowded = 0, set(), False
        for status in at.STATUSES:
            offset, ids = 0, set()
            while True:
                if pages >= budget:
                    crowded = True  # out of pages: what is unread is read job by job
                    break
                pages += 1
                of_status = self.client.jobs_of_status_in_seconds
                answer = await self._page(functools.partial(of_status, status, second, created, offset))
                if answer is None:
                    return None
                self._take(answer.jobs)
                here = [r.job_id for r in answer.jobs]
                if offset and _repeats(ids, here):
                    crowded = True
                    break
                ids.update(here)
                if len(here) < LIST_PAGE:
                    break
                offset += LIST_PAGE
            read |= ids
        if crowded:
            each = await self._read_each(created, read)
            if each is None:
                return None
            pages += each
        return pages

    async def _read_each(self, created: float | None, read: set[int]) -> int | None:
        """Each watched job created within that second (or not known to) that may still move
        and that this walk has not read, by its own GET; how many, or None when one failed
        (then the walk failed: it does not vouch for them)."""
        ids = [job_id for job_id, k in self.jobs.items()
               if (k.job.created is None or created is None or int(k.job.created) == int(created))
               and k.job.status not in at.ENDED and job_id not in read]  # fmt: skip
        log.info("Airbyte %s: more than %d jobs share their update and creation times and status; "
                 "reading %d watched ones each", self.host, LIST_PAGE, len(ids))  # fmt: skip
        for job_id in ids:  # all of them, past the page budget too: none may be missed
            answer = await self.client.get_job(job_id)
            if isinstance(answer, at.Problem) and answer.kind != at.NOT_FOUND:
                self._failed(answer)
                return None
            known = self.jobs.get(job_id)
            if isinstance(answer, at.Job) and known is not None:
                known.read_at = self.monotonic()
                if answer != known.job:
                    known.job = answer
                    self._moved += 1
                    self.notify(list(known.watchers))
        return len(ids)

    def _failed(self, problem: at.Problem) -> None:
        if problem.status_code == 403:
            self.fallback = f"these credentials may not list jobs ({problem.detail})"
            log.warning("Airbyte %s: %s; reading each job on its own instead", self.host, self.fallback)
            self.on_fallback(self.host)
            self.notify([w for k in self.jobs.values() for w in k.watchers])
            return
        self._news = False  # a failed walk is retried after its backoff
        self._failures, self.failed_at = self._failures + 1, self.monotonic()
        if problem.kind != at.AUTH_FAILED and self._failures < DOWN_AFTER:
            return  # retried soon; the watches keep their place
        told = self.problem is not None and self.problem.kind == problem.kind
        self.problem = problem
        if not told:  # every watch of this server learns of it once, at its next step
            self.notify([w for k in self.jobs.values() for w in k.watchers])


def _repeats(seen: set[int], ids: list[int]) -> bool:
    """An id read again at a later offset (or twice on one page): the rows have no stable order."""
    return bool(seen.intersection(ids)) or len(set(ids)) < len(ids)


class Feeds:
    """The feeds of every server + credentials, made on first use, stopped when idle."""

    def __init__(self, monotonic: Callable[[], float], notify: Callable[[Iterable[Hashable]], None],
                 on_fallback: Callable[[str], None] = lambda host: None,
                 on_page: PageHook = lambda host, outcome, seconds: None,
                 autostart: bool = True,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 list_interval: float = LIST_INTERVAL, budget: float | None = None) -> None:  # fmt: skip
        self.monotonic = monotonic
        self.sleep = sleep
        self.list_interval, self.budget = list_interval, budget
        self.notify = notify
        self.on_fallback = on_fallback
        self.on_page = on_page
        self.autostart = autostart  # False: someone else calls each feed's walk (tests, on a fake clock)
        self._feeds: dict[str, Feed] = {}
        self._watching: dict[Hashable, tuple[str, int]] = {}  # watcher -> (feed key, job id)

    def __len__(self) -> int:
        return len(self._feeds)

    def feed(self, key: str, client: JobLister, host: str) -> Feed:
        feed = self._feeds.get(key)
        if feed is None:
            feed = Feed(client, host, self.monotonic, self.notify, self.on_fallback, self.on_page, self.sleep,
                        self.list_interval, self.budget)  # fmt: skip
            self._feeds[key] = feed
        if self.autostart:
            feed.start()
        return feed

    async def read(self, key: str, client: JobLister, host: str, job_id: int, watcher: Hashable,
                   interval: float) -> tuple[at.Job | at.Problem, bool]:  # fmt: skip
        before = self._watching.get(watcher)
        if before is not None and before != (key, job_id):
            self.unwatch(watcher)
        self._watching[watcher] = (key, job_id)
        return await self.feed(key, client, host).read(job_id, watcher, interval)

    def overdue(self) -> list[Hashable]:
        return [w for feed in self._feeds.values() for w in feed.overdue()]

    def failed_at(self, key: str) -> float | None:
        """When the walks of these credentials last failed (monotonic), if they did."""
        feed = self._feeds.get(key)
        return feed.failed_at if feed is not None else None

    def next_reread(self, watcher: Hashable) -> float | None:
        where = self._watching.get(watcher)
        feed = self._feeds.get(where[0]) if where else None
        return feed.next_reread(where[1]) if feed is not None and where is not None else None

    def unwatch(self, watcher: Hashable) -> None:
        where = self._watching.pop(watcher, None)
        feed = self._feeds.get(where[0]) if where else None
        if feed is not None and where is not None:
            feed.unwatch(where[1], watcher)

    async def prune(self) -> None:
        for key in [k for k, f in self._feeds.items() if f.idle]:
            await self._feeds.pop(key).stop()

    async def close(self) -> None:
        for feed in self._feeds.values():
            await feed.stop()
        self._feeds.clear()
