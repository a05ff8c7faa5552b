"""The whole watch lifecycle as a state machine: Hypothesis interleaves creates, edits, label
edits, deletes, delete-and-recreate, crashes and restarts, Airbyte's answers and faults, long
messages, API server failures, a lagging or broken watch stream, clock steps, Secret edits,
credentials revoked at Airbyte and a failing token endpoint, spec.expect over successes with
rows, without and with no count (and edited while the job ends), and checks the operator's promises
after every step; once idle, every watch of a final job whose Secret works must be final.

Runs on in-memory Kubernetes and Airbyte with a fake clock (tests/support/memory.py): every
interleaving it finds replays exactly. CI runs `LIFECYCLE_EXAMPLES` examples (default 60);
`make fuzz` runs a long search.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
from collections import Counter
from typing import Any

import pytest
from airbyte_watch.airbyte import job_feed
from airbyte_watch.airbyte import model as at
from airbyte_watch.core import names as n
from airbyte_watch.core.decision import FINAL_REASONS
from airbyte_watch.core.spec import InvalidSpec, parse_spec
from airbyte_watch.core.text import MESSAGE_LIMIT
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.support.memory import ECHOED, NAMESPACE, SECRET_VALUE, Harness

NS = NAMESPACE
NAMES = ("a", "b", "c")
JOBS = (1, 2, 3)
SOURCES = ("id", "cm", "trigger")  # spec.jobId, spec.jobIdFrom, spec.connectionId
STATUSES = ("pending", "running", "incomplete", "succeeded", "failed", "cancelled", "exploded")
# A server or proxy that echoes the credential of the request it answers (MemoryClient puts it in).
ECHO = f"500 proxy echo: Authorization: Bearer {ECHOED} " + "y" * 3000
FAULTS: list[Any] = [
    at.Problem(at.SERVER_ERROR, ECHO, 500),
    at.Problem(at.RATE_LIMITED, "429 slow down", 429, 7.0),
    at.Problem(at.TIMEOUT, "no answer in time"),
    at.Problem(at.AUTH_FAILED, f"401 token {ECHOED} rejected", 401),
    at.Problem(at.NOT_FOUND, "404 gone", 404),
    TypeError("int() argument must be a string, not 'NoneType'"),
]
EXAMPLES = int(os.environ.get("LIFECYCLE_EXAMPLES", "60"))
ROTATED = "cs-MEMORY-SENTINEL-rotated-2b7e"  # the client secret after a rotation: never written either
SECRETS = (SECRET_VALUE, ROTATED)
URLS = ("https://airbyte.test/v1", "https://airbyte-moved.test/v1")
TOKEN_FAULTS = [
    at.Problem(at.SERVER_ERROR, "token endpoint answered 503: down", 503),
    at.Problem(at.TIMEOUT, "the token endpoint did not answer in time"),
    at.Problem(at.AUTH_FAILED, "Airbyte rejected the credentials: token endpoint answered 401"),
]
FINAL_JOB = ("succeeded", "failed", "cancelled")
# rowsSynced of each job, once it runs: some successes are empty, some do not say (as the
# jobs a watch triggers); under spec.expect.minRowsSynced 1 they end TooFewRows, RowsUnknown.
ROWS = {1: 5, 2: 0, 3: None}


class Logs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(self.format(record))


async def _cancel_all() -> None:
    """End every step still in flight, so nothing of this example outlives it."""
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Lifecycle(RuleBasedStateMachine):
    poll_mode = "get"  # one GET per watch and interval; LifecycleListMode: the list walks

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.h = Harness(delete_cancel_timeout=20.0, poll_mode=self.poll_mode)
        for job in JOBS:
            self.h.airbyte.add_job(job, "running", connection_id=f"c-{job}", rows=ROWS[job])
        self.h.kube.put_data("configmaps", NS, "ids", {"jobId": "2"})
        self.logs = Logs()
        logger = logging.getLogger("airbyte_watch")
        logger.addHandler(self.logs)
        # Ours alone: pytest's capture would keep every record of every example in memory.
        logger.propagate = False
        self.final_seen: dict[str, str] = {}  # uid -> the final phase it reached

    def teardown(self) -> None:
        try:
            self.quiesce()
        finally:
            logging.getLogger("airbyte_watch").removeHandler(self.logs)
            logging.getLogger("airbyte_watch").propagate = True
            self.loop.run_until_complete(_cancel_all())
            self.loop.close()

    def run(self, coro: Any) -> None:
        self.loop.run_until_complete(coro)

    # --- what users do ---------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES), job=st.sampled_from(JOBS), source=st.sampled_from(SOURCES),
          interval=st.sampled_from(["1s", "30s"]), timeout=st.sampled_from(["45s", "10m"]),
          cancel_on_delete=st.booleans(), cancel_on_timeout=st.booleans(),
          min_rows=st.sampled_from([None, 0, 1]))  # fmt: skip
    def create(self, name: str, job: int, source: str, interval: str, timeout: str,
               cancel_on_delete: bool, cancel_on_timeout: bool, min_rows: int | None) -> None:  # fmt: skip
        if (NS, name) in self.h.kube.objects:
            return
        spec: dict[str, Any] = {"pollInterval": interval, "timeout": timeout}
        spec.update(cancelOnDelete=cancel_on_delete, cancelOnTimeout=cancel_on_timeout)
        if min_rows is not None:
            spec["expect"] = {"minRowsSynced": min_rows}
        if source == "id":
            spec["jobId"] = job
        elif source == "cm":
            spec["jobIdFrom"] = {"configMapKeyRef": {"name": "ids", "key": "jobId"}}
        else:
            spec.update(connectionId=f"c-{job}", jobType="clear" if job == 3 else "sync")
        self.h.kube.create(NS, name, spec)
        self.run(self.h.settle())

    @rule(name=st.sampled_from(NAMES), interval=st.sampled_from(["2s", "20s", "fast"]))
    def edit(self, name: str, interval: str) -> None:
        if (NS, name) in self.h.kube.objects:
            self.h.kube.edit_spec(NS, name, pollInterval=interval)
            self.run(self.h.settle())

    @rule(name=st.sampled_from(NAMES), min_rows=st.sampled_from([0, 1]))
    def edit_expect(self, name: str, min_rows: int) -> None:
        """spec.expect edited while the job may be ending: one outcome still, announced once."""
        if (NS, name) in self.h.kube.objects:
            self.h.kube.edit_spec(NS, name, expect={"minRowsSynced": min_rows})
            self.run(self.h.settle())

    @rule(name=st.sampled_from(NAMES), value=st.sampled_from(["x", "y"]))
    def label(self, name: str, value: str) -> None:
        if (NS, name) in self.h.kube.objects:
            self.h.kube.edit_labels(NS, name, team=value)
            self.run(self.h.settle())

    @rule(name=st.sampled_from(NAMES), recreate=st.booleans())
    def delete(self, name: str, recreate: bool) -> None:
        if (NS, name) not in self.h.kube.objects:
            return
        spec = dict(self.h.obj(name)["spec"])
        self.h.kube.delete(NS, name)
        if recreate and (NS, name) not in self.h.kube.objects:
            self.h.kube.create(NS, name, spec)
        self.run(self.h.settle())

    @rule(value=st.sampled_from(["2", "abc", "3"]))
    def config_map(self, value: str) -> None:
        self.h.kube.put_data("configmaps", NS, "ids", {"jobId": value})

    # --- what the operator's world does -------------------------------------------------------

    @rule()
    def crash(self) -> None:
        self.h.crash()
        self.run(self.h.settle())

    @rule(fault=st.sampled_from(FAULTS))
    def crash_between_event_and_status(self, fault: Any) -> None:
        """The step after this one meets `fault` (or Airbyte's news), posts its Events, fails to
        write its status, and the process dies before the retry."""
        self.h.airbyte.faults.append(fault)
        self.h.kube.fail_patches = 1
        self.run(self.h.run_for(31))
        self.h.crash()
        self.run(self.h.settle())

    @rule(job=st.sampled_from([*JOBS, 100, 101, 102]), status=st.sampled_from(STATUSES), long=st.booleans())
    def airbyte_moves(self, job: int, status: str, long: bool) -> None:
        found = self.h.airbyte.jobs.get(job)
        if found is not None and found.status not in ("succeeded", "failed", "cancelled"):
            failure = ("z" * 50_000 + ECHOED) if long and status == "failed" else None
            self.h.airbyte.move(found, status, failure)

    @rule(job=st.sampled_from(JOBS))
    def job_succeeds(self, job: int) -> None:
        """A watched job succeeds with its ROWS, and a poll interval passes: what spec.expect
        judges (airbyte_moves alone rarely ends a watched job before its watch times out)."""
        found = self.h.airbyte.jobs[job]
        if found.status not in FINAL_JOB:
            self.h.airbyte.move(found, "succeeded")
        self.run(self.h.run_for(31))

    @rule(fault=st.sampled_from(FAULTS), count=st.integers(1, 3))
    def airbyte_fault(self, fault: Any, count: int) -> None:
        self.h.airbyte.faults.extend([fault] * count)

    @rule()
    def lose_post_answer(self) -> None:
        self.h.airbyte.lose_next_post_answer = True

    @rule(patches=st.integers(0, 2), events=st.integers(0, 2))
    def kube_fails(self, patches: int, events: int) -> None:
        self.h.kube.fail_patches, self.h.kube.fail_events = patches, events

    @precondition(lambda self: self.h.airbyte.gate is None)
    @rule()
    def airbyte_hangs(self) -> None:
        self.h.airbyte.gate = asyncio.Event()

    @precondition(lambda self: self.h.airbyte.gate is not None)
    @rule()
    def airbyte_answers(self) -> None:
        assert self.h.airbyte.gate is not None
        self.h.airbyte.gate.set()
        self.h.airbyte.gate = None
        self.run(self.h.settle())

    @rule(hold=st.booleans())
    def stream_lags(self, hold: bool) -> None:
        self.h.hold = hold
        self.run(self.h.settle())

    @rule()
    def stream_relists(self) -> None:
        self.h.hold = False
        self.run(self.h.relist())
        self.run(self.h.settle())

    @rule(seconds=st.sampled_from([60.0, 3600.0]))
    def airbyte_clock_jumps_back(self, seconds: float) -> None:
        self.h.airbyte.skew -= seconds

    # --- credentials ----------------------------------------------------------------------------

    @rule(secret=st.sampled_from(SECRETS), url=st.sampled_from(URLS), revoke_old=st.booleans())
    def secret_edited(self, secret: str, url: str, revoke_old: bool) -> None:
        """The Secret gets new values (External Secrets re-syncs it); Airbyte accepts the new
        client, and the old one too unless the rotation revoked it."""
        login, old = self.h.pool.login, self.secret()
        self.h.kube.put_data("secrets", NS, "airbyte-default",
                             {"url": url, "clientId": "id", "clientSecret": secret})  # fmt: skip
        accepted = set(SECRETS) if login.accepted is None else set(login.accepted)
        urls = set(URLS) if login.urls is None else set(login.urls)
        if revoke_old and old is not None:
            urls.discard(old[0])
            accepted.discard(old[1])
        login.accepted, login.urls = accepted | {secret}, urls | {url}

    @rule()
    def credentials_revoked(self) -> None:
        """The Airbyte admin deletes the application the Secret names; nobody edits the Secret."""
        current = self.secret()
        if current is not None and self.h.pool.login.accepted is not None:
            self.h.pool.login.accepted.discard(current[1])
        elif current is not None:
            self.h.pool.login.accepted = set(SECRETS) - {current[1]}

    @rule(recreate=st.booleans())
    def secret_deleted(self, recreate: bool) -> None:
        current = self.h.kube.data.pop(("secrets", NS, "airbyte-default"), None)
        if recreate and current is not None:
            self.h.kube.data[("secrets", NS, "airbyte-default")] = current

    @rule(fault=st.sampled_from(TOKEN_FAULTS), count=st.integers(1, 4))
    def token_endpoint_fails(self, fault: at.Problem, count: int) -> None:
        self.h.pool.login.token_faults.extend([fault] * count)

    def secret(self) -> tuple[str, str] | None:
        """The Secret's (url, clientSecret), if it exists."""
        data = self.h.kube.data.get(("secrets", NS, "airbyte-default"))
        if data is None:
            return None
        return base64.b64decode(data["url"]).decode(), base64.b64decode(data["clientSecret"]).decode()

    def secret_works(self) -> bool:
        current, login = self.secret(), self.h.pool.login
        if current is None:
            return False
        url, secret = current
        return (login.urls is None or url in login.urls) and (
            login.accepted is None or secret in login.accepted
        )

    @rule(seconds=st.sampled_from([0.5, 1, 5, 30, 120]))
    def time_passes(self, seconds: float) -> None:
        self.run(self.h.run_for(seconds))

    # --- promises -------------------------------------------------------------------------------

    @invariant()
    def one_outcome_announced_once(self) -> None:
        finals: Counter[str] = Counter()
        for event in self.h.kube.events.values():
            if event["reason"] in FINAL_REASONS:
                finals[event["involvedObject"]["uid"]] += 1
        assert all(count == 1 for count in finals.values()), finals
        for obj in self.h.kube.objects.values():
            uid, phase = obj["metadata"]["uid"], obj["status"].get("phase")
            if phase in n.FINAL_PHASES:
                assert finals[uid] == 1, (uid, phase)
                assert self.final_seen.setdefault(uid, phase) == phase  # never a second outcome

    @invariant()
    def writes_only_reach_their_own_object(self) -> None:
        assert all(w.sent_uid == w.uid for w in self.h.kube.writes)

    @invariant()
    def messages_are_bounded_and_secrets_never_written(self) -> None:
        for obj in self.h.kube.objects.values():
            status = obj["status"]
            assert len(status.get("message", "")) <= MESSAGE_LIMIT
            assert all(len(c["message"]) <= MESSAGE_LIMIT for c in status.get("conditions", []))
        written = repr(self.h.kube.objects) + repr(self.h.kube.events) + "\n".join(self.logs.text)
        assert all(secret not in written for secret in SECRETS)

    def quiesce(self) -> None:
        """Faults end, the stream catches up, time passes: everything must settle where it should."""
        h = self.h
        h.hold = False
        h.kube.fail_patches = h.kube.fail_events = 0
        h.airbyte.faults.clear()
        h.pool.login.token_faults.clear()
        if h.airbyte.gate is not None:
            h.airbyte.gate.set()
            h.airbyte.gate = None
        # Past the resync that a re-list asks for, the delete bound, and the longest backoff
        # (spec.backoff.maxDelay, 5 minutes by default; a failing walk's 16 cadences of 30 s).
        self.run(h.run_for(8 * 60))
        for (ns, name), obj in h.kube.objects.items():
            assert not obj["metadata"].get("deletionTimestamp"), f"{name}: a delete hangs"
            watch = h.watches.known.get((ns, name))
            assert watch is not None and watch.uid == obj["metadata"]["uid"], f"{name} is not known"
            assert obj["status"].get("observedGeneration") == obj["metadata"]["generation"], (
                name,
                obj["status"],
            )
        known = {(k, w.uid) for k, w in h.watches.known.items()}
        assert known == {(k, o["metadata"]["uid"]) for k, o in h.kube.objects.items()}
        assert set(h.watches.scheduler._due) <= set(h.watches.known)
        assert set(h.watches.metrics._phases) <= set(h.watches.known)
        assert set(h.watches.deletion._said) <= {w.uid for w in h.watches.known.values()}
        self.one_outcome_announced_once()
        self.final_jobs_reach_their_watches()

    def final_jobs_reach_their_watches(self) -> None:
        """Once idle: no watch of a job Airbyte reports final stays non-final while its Secret
        holds working credentials (and its spec can be used)."""
        if not self.secret_works():
            return
        for (_, name), obj in self.h.kube.objects.items():
            job = self.h.airbyte.jobs.get(obj["status"].get("jobId"))  # type: ignore[arg-type]
            try:
                parse_spec(obj["spec"], "airbyte-default")
            except InvalidSpec:
                continue
            if job is not None and job.status in FINAL_JOB:
                assert obj["status"].get("phase") in n.FINAL_PHASES, (name, job.status, obj["status"])


Lifecycle.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLifecycle = Lifecycle.TestCase


class LifecycleListMode(Lifecycle):
    """The list walks, on pages of 2 rows (so that a handful of jobs fill pages and ties), over
    an Airbyte that returns rows of equal sort key in a new order when it says so, and whose
    lists fail on demand."""

    poll_mode = "list"

    def __init__(self) -> None:
        super().__init__()
        self._page = job_feed.LIST_PAGE
        job_feed.LIST_PAGE = self.h.airbyte.page_size = 2
        for job in range(900, 906):  # other connections' jobs: no watch's, but rows on every page
            self.h.airbyte.add_job(job, "running", connection_id=f"c-{job}")

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            job_feed.LIST_PAGE = self._page

    @rule(seed=st.integers(0, 2**16) | st.none())
    def ties_come_in_any_order(self, seed: int | None) -> None:
        self.h.airbyte.shuffle_ties = None if seed is None else random.Random(seed)

    @rule(status=st.sampled_from(["succeeded", "failed", "running"]))
    def jobs_end_together(self, status: str) -> None:
        """Every job still running moves in one instant: one stored updatedAt for all."""
        for job in self.h.airbyte.jobs.values():
            if job.status not in FINAL_JOB:
                self.h.airbyte.move(job, status)

    @rule(fault=st.sampled_from(FAULTS[:3]), count=st.integers(1, 12))
    def lists_fail(self, fault: Any, count: int) -> None:
        self.h.airbyte.list_faults.extend([fault] * count)

    def quiesce(self) -> None:
        self.h.airbyte.list_faults.clear()
        super().quiesce()


LifecycleListMode.TestCase.settings = Lifecycle.TestCase.settings
TestLifecycleListMode = LifecycleListMode.TestCase


@pytest.mark.skipif(not os.environ.get("LIFECYCLE_REPORT"), reason="make fuzz prints its count")
def test_report_examples() -> None:  # pragma: no cover - a line for `make fuzz`
    print(f"\nlifecycle model: {EXAMPLES} examples of up to 30 steps each, in each of the two poll modes")
