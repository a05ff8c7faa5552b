"""Following one AirbyteJobWatch until it is final: the `kubectl airbyte wait` loop.

A list (by name) gives the current state and a resourceVersion; a watch from there gives the
changes. Watches end every few minutes (we ask for at most WATCH_SECONDS) and resume from the
last resourceVersion seen, bookmarks included; a 410 Gone means that version is compacted
away, so the loop lists again. Anything transient (the API server restarting, 5xx, 429) is
retried with backoff until the wait's own deadline. The answer is read from the object alone,
so a wait killed and started again picks up where the watch is.

Final means status.phase is Succeeded, Failed or Cancelled AND status.observedGeneration equals
metadata.generation: a status written before the last spec edit is not the answer.
"""

from __future__ import annotations

import datetime
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from kubernetes import watch as k8s_watch
from kubernetes.client import CustomObjectsApi
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from .. import GROUP, PLURAL, VERSION
from ..core.names import CANCELLED, FAILED, FINAL_PHASES, READY, SUCCEEDED

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1  # Failed or Cancelled, whatever the reason (job failed, not found, timed out, ...)
EXIT_NO_OUTCOME = 2  # the watch does not exist, the wait's own timeout, or an error
WATCH_SECONDS = 240  # one watch request at most; the server may end it sooner
BACKOFF_MAX = 10.0
GONE = 410
RETRIED_STATUSES = frozenset({0, 429, 500, 502, 503, 504})


def resource_name(name: str) -> str:
    return f"{PLURAL[:-2]}.{GROUP}/{name}"  # airbytejobwatch.airbyte.watch/NAME, as kubectl -o name


class WatchGone(Exception):
    """The watch does not exist, or was deleted while we waited."""


def is_current(obj: Mapping[str, Any]) -> bool:
    """The status was computed from the spec as it is now."""
    status = obj.get("status") or {}
    return status.get("observedGeneration") == obj.get("metadata", {}).get("generation")


def final_phase(obj: Mapping[str, Any]) -> str | None:
    """Succeeded, Failed or Cancelled once final for the current generation; else None."""
    phase = (obj.get("status") or {}).get("phase")
    return phase if phase in FINAL_PHASES and is_current(obj) else None


def ready_reason(obj: Mapping[str, Any]) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == READY), None)
    return str(ready.get("reason", "")) if ready else ""


def state_key(obj: Mapping[str, Any]) -> tuple[str, str, bool]:
    """What a line is printed for a change of: phase, reason, and whether the status is current."""
    return (str((obj.get("status") or {}).get("phase", "")), ready_reason(obj), is_current(obj))


def describe(obj: Mapping[str, Any], now: datetime.datetime) -> str:
    """One line: UTC time, phase, reason, message, and rows once known."""
    status = obj.get("status") or {}
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not status.get("phase"):
        return f"{stamp}  {'Pending':<9}  {'-':<20}  not yet seen by the operator"
    message = str(status.get("message", ""))
    if not is_current(obj):
        generation = obj.get("metadata", {}).get("generation")
        message += f" (status of generation {status.get('observedGeneration')}; spec is at {generation})"
    line = f"{stamp}  {status['phase']:<9}  {ready_reason(obj) or '-':<20}  {message}"
    rows = status.get("rowsSynced")
    if rows is not None and (rows or status["phase"] in FINAL_PHASES):  # 0 while running says nothing
        line += f"  rows={rows}"
    return line


def outcome(obj: Mapping[str, Any]) -> tuple[int, str | None]:
    """The exit code of a final watch, and what to say on stderr when it is not a success."""
    phase = final_phase(obj)
    if phase == SUCCEEDED:
        return EXIT_SUCCEEDED, None
    assert phase in (FAILED, CANCELLED), phase
    message = (obj.get("status") or {}).get("message", "")
    name = resource_name(obj["metadata"]["name"])
    return EXIT_FAILED, f"error: {name} {phase} ({ready_reason(obj) or 'no reason'}): {message}"


class Follower:
    """Follows one watch by name in one namespace, printing a line per change to `out`."""

    def __init__(
        self,
        api: CustomObjectsApi,
        namespace: str,
        name: str,
        out: TextIO,
        err: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        self.out, self.err = out, err or sys.stderr
        self.clock, self.sleep = clock, sleep
        self._last: tuple[str, str, bool] | None = None
        self._warned = False
        self._resume_from: str | None = None  # the last resourceVersion a watch request saw

    def run(self, timeout: float | None) -> int:
        """Exit code: 0 Succeeded, 1 Failed or Cancelled, 2 gone, the timeout, or an error."""
        deadline = None if timeout is None else self.clock() + timeout
        try:
            for obj in self._states(deadline):
                self._show(obj)
                if final_phase(obj):
                    code, said = outcome(obj)
                    if said:
                        print(said, file=self.err, flush=True)
                    return code
        except WatchGone as exc:
            print(f"error: {exc}", file=self.err, flush=True)
            return EXIT_NO_OUTCOME
        except ApiException as exc:
            print(f"error: {api_error(exc)}", file=self.err, flush=True)
            return EXIT_NO_OUTCOME
        waited = (
            ""
            if self._last is None
            else f" (phase {self._last[0] or 'Pending'}, reason {self._last[1] or '-'})"
        )
        print(f"error: timed out waiting for {resource_name(self.name)}{waited}", file=self.err, flush=True)
        return EXIT_NO_OUTCOME

    def _show(self, obj: Mapping[str, Any]) -> None:
        key = state_key(obj)
        if key != self._last:
            self._last = key
            print(describe(obj, datetime.datetime.now(datetime.UTC)), file=self.out, flush=True)

    def _remaining(self, deadline: float | None) -> float:
        return math.inf if deadline is None else deadline - self.clock()

    def _states(self, deadline: float | None) -> Iterator[dict[str, Any]]:
        """The watch as it is, then each version of it, until the deadline passes."""
        delay = 0.5
        selector = f"metadata.name={self.name}"
        while True:
            try:
                listed = self.api.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, field_selector=selector,
                    _request_timeout=(10, 30),
                )  # fmt: skip
                items = listed.get("items") or []
                if not items:
                    raise WatchGone(f'{PLURAL}.{GROUP} "{self.name}" not found in namespace {self.namespace}')
                yield items[0]
                version = listed["metadata"]["resourceVersion"]
                while self._remaining(deadline) > 0:
                    for obj in self._watch(selector, version, deadline):
                        delay = 0.5
                        yield obj
                        version = obj["metadata"]["resourceVersion"]
                    version = self._resume_from or version
                if self._remaining(deadline) <= 0:
                    return
            except ApiException as exc:
                if exc.status == GONE:
                    continue  # the version we watched from is gone: list again
                if exc.status not in RETRIED_STATUSES:
                    raise
                self._warn(f"{exc.status} {exc.reason}")
            except (HTTPError, OSError) as exc:
                self._warn(str(exc) or type(exc).__name__)
            if self._remaining(deadline) <= 0:
                return
            self.sleep(min(delay, max(0.0, self._remaining(deadline))))
            delay = min(delay * 2, BACKOFF_MAX)

    def _watch(self, selector: str, version: str, deadline: float | None) -> Iterator[dict[str, Any]]:
        """One watch request from `version`; ends when the server or our deadline ends it."""
        left = self._remaining(deadline)
        seconds = WATCH_SECONDS if left >= WATCH_SECONDS else max(1, math.ceil(left))
        stream = k8s_watch.Watch()
        self._resume_from = None
        try:
            for event in stream.stream(
                self.api.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL,
                field_selector=selector, resource_version=version, allow_watch_bookmarks=True,
                timeout_seconds=seconds, _request_timeout=(10, seconds + 30),
            ):  # fmt: skip
                kind, obj = event["type"], event["raw_object"]
                if kind == "DELETED":
                    raise WatchGone(f"{resource_name(self.name)} was deleted")
                if kind in ("ADDED", "MODIFIED"):
                    yield obj
                if self._remaining(deadline) <= 0:
                    break
        finally:
            self._resume_from = stream.resource_version  # bookmarks move it too
            stream.stop()

    def _warn(self, what: str) -> None:
        if not self._warned:
            self._warned = True
            print(f"warning: lost the API server ({what}); retrying", file=self.err, flush=True)


def api_error(exc: ApiException) -> str:
    """The API server's own message, as kubectl shows it."""
    try:
        body = json.loads(exc.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return f"{exc.status} {exc.reason}".strip()
