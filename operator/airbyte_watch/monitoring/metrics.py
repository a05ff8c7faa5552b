"""Prometheus metrics. Labels are bounded: server host, outcome kind, phase, event reason."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..airbyte import model as at
from ..core.names import PHASES

_KNOWN_STATUSES = at.WAITING | {at.SUCCEEDED, at.FAILED, at.CANCELLED}
LISTED = "listed"  # the outcome of a list-mode page read without a problem
# Detection delay: the list walks and polls run every pollInterval (30 s by default), so most
# delays fall under a minute; the long tail shows polls falling behind.
DETECTION_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600, 1800)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.watches = Gauge(
            "airbyte_watch_watches", "Watches known to this process, by phase.", ["phase"], registry=r
        )
        self.polls = Counter(
            "airbyte_watch_polls_total",
            "Polls of the Airbyte API, by server and outcome: a job GET's job status, "
            f"'{LISTED}' for a page of a list-mode walk, or the problem kind.",
            ["server", "outcome"],
            registry=r,
        )
        self.poll_seconds = Histogram(
            "airbyte_watch_poll_duration_seconds",
            "Time for one poll of the Airbyte API (a job GET or a page of a list-mode walk).",
            ["server"],
            registry=r,
        )
        self.detection = Histogram(
            "airbyte_watch_detection_delay_seconds",
            "From a job's end, by Airbyte's clock (its last update), to its watch's final status.",
            ["server"],
            buckets=DETECTION_BUCKETS,
            registry=r,
        )
        self.api_errors = Counter(
            "airbyte_watch_airbyte_api_errors_total",
            "Polls that met a problem, by server and kind.",
            ["server", "kind"],
            registry=r,
        )
        self.events = Counter(
            "airbyte_watch_events_total", "Kubernetes Events posted.", ["type", "reason"], registry=r
        )
        self.status_patches = Counter(
            "airbyte_watch_status_patches_total", "Status subresource patches written.", registry=r
        )
        self.token_fetches = Counter(
            "airbyte_watch_token_fetches_total", "Access tokens fetched, by server.", ["server"], registry=r
        )
        self.rows = Counter(
            "airbyte_watch_rows_synced_total",
            "Rows synced by jobs of completed watches.",
            ["server"],
            registry=r,
        )
        self.bytes = Counter(
            "airbyte_watch_bytes_synced_total",
            "Bytes synced by jobs of completed watches.",
            ["server"],
            registry=r,
        )
        self.job_list_pages = Counter(
            "airbyte_watch_job_list_pages_total",
            "Pages of GET /jobs read by list-mode polling, by server and outcome (ok or problem kind).",
            ["server", "outcome"],
            registry=r,
        )
        self.list_fallback = Gauge(
            "airbyte_watch_list_fallback",
            "1 when a server's credentials may not list jobs and its jobs are read one by one.",
            ["server"],
            registry=r,
        )
        # Dashboards divide polls by this to show how much of the budget is used.
        self.request_budget = Gauge(
            "airbyte_watch_request_budget_per_second",
            "Request budget per Airbyte server (--max-requests-per-second).",
            registry=r,
        )
        self.leader = Gauge(
            "airbyte_watch_leader",
            "1 while this replica holds its shard's Lease and acts (always 1 without leader election).",
            registry=r,
        )
        self._phases: dict[Hashable, str] = {}
        for phase in PHASES:
            self.watches.labels(phase).set(0)

    def set_phase(self, key: Hashable, phase: str | None) -> None:
        """Move one watch between phase counts (None: it is gone)."""
        old = self._phases.pop(key, None)
        if old is not None:
            self.watches.labels(old).dec()
        if phase is not None:
            self._phases[key] = phase
            self.watches.labels(phase).inc()

    def observe_poll(self, server: str, answer: at.Job | at.Problem, seconds: float) -> None:
        self.poll_seconds.labels(server).observe(seconds)
        if isinstance(answer, at.Job):
            outcome = answer.status if answer.status in _KNOWN_STATUSES else "unknown"
        else:
            outcome = answer.kind
            self.api_errors.labels(server, answer.kind).inc()
        self.polls.labels(server, outcome).inc()

    def observe_list_page(self, server: str, outcome: str, seconds: float) -> None:
        """A page of a list-mode walk is a poll too (`outcome` "ok" or a problem kind): in list
        mode the pages are nearly all of Airbyte's load, and a server that is down shows only
        in them, since the watches' steps are then served the walk's problem without a request."""
        self.job_list_pages.labels(server, outcome).inc()
        self.poll_seconds.labels(server).observe(seconds)
        if outcome != "ok":
            self.api_errors.labels(server, outcome).inc()
        self.polls.labels(server, LISTED if outcome == "ok" else outcome).inc()

    def observe_detection(self, server: str | None, seconds: float) -> None:
        """From the job's end by Airbyte's clock to its watch's final status; a clock of
        Airbyte's that runs ahead of ours would make it negative."""
        self.detection.labels(server or "unknown").observe(max(0.0, seconds))

    def observe_event(self, type_: str, reason: str) -> None:
        self.events.labels(type_, reason).inc()

    def observe_write(self, kind: str) -> None:
        if kind == "status_patch":
            self.status_patches.inc()

    def observe_completion(self, server: str | None, status: Mapping[str, Any]) -> None:
        label = server or "unknown"
        if isinstance(status.get("rowsSynced"), int):
            self.rows.labels(label).inc(status["rowsSynced"])
        if isinstance(status.get("bytesSynced"), int):
            self.bytes.labels(label).inc(status["bytesSynced"])
