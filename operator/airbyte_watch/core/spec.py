"""The watch's spec, parsed and checked: what the schema cannot reject becomes InvalidSpec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .durations import parse_duration

INT64_MAX = 2**63 - 1


class InvalidSpec(ValueError):
    """A spec field the operator cannot use; `field` names it for the condition and event."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"spec.{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class JobIdSource:
    """spec.jobIdFrom.configMapKeyRef: a ConfigMap key in the watch's namespace."""

    config_map: str
    key: str


@dataclass(frozen=True)
class WatchSpec:
    job_id: int | None  # None until resolved from job_id_from
    server_secret: str
    poll_interval: float
    timeout: float
    backoff_exponential: bool
    backoff_max_delay: float
    on_unknown_status: str  # "Fail" or "Wait"
    job_id_from: JobIdSource | None = None
    cancel_on_timeout: bool = False
    cancel_on_delete: bool = False
    connection_id: str | None = None  # trigger mode: start a job on this connection, then watch it
    job_type: str = "sync"
    if_running: str = "Adopt"  # when a sync runs already: Adopt, Wait or Fail
    # spec.expect: a success below a bound (or without the count) ends the watch Failed.
    min_rows_synced: int | None = None
    min_bytes_synced: int | None = None


def parse_job_id(value: Any, field: str = "jobId") -> int:
    """A positive int64 from an int or a string of digits (templating tools render strings)."""
    if isinstance(value, bool):
        raise InvalidSpec(field, f"{value!r} is not a job id")
    if isinstance(value, int):
        job_id = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        job_id = int(value)
    else:
        raise InvalidSpec(field, f"{value!r} is not a job id (a positive integer)")
    if not 0 < job_id <= INT64_MAX:
        raise InvalidSpec(field, f"{value!r} is not a job id (a positive 64-bit integer)")
    return job_id


def _duration(spec: Mapping[str, Any], field: str, default: str, minimum: float) -> float:
    raw = spec.get(field, default)
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise InvalidSpec(field, str(exc)) from None
    if seconds < minimum:
        raise InvalidSpec(field, f"{raw!r} is too short (at least {minimum:g}s)")
    return seconds


def parse_spec(spec: Mapping[str, Any], default_server_secret: str) -> WatchSpec:
    source = _job_id_source(spec.get("jobIdFrom"))
    if ["jobId" in spec, source is not None, "connectionId" in spec].count(True) != 1:
        raise InvalidSpec("jobId", "exactly one of jobId, jobIdFrom and connectionId is required")
    backoff = spec.get("backoff") or {}
    max_delay = _duration(backoff, "maxDelay", "5m", 1.0)
    on_unknown = spec.get("onUnknownStatus", "Fail")
    if on_unknown not in ("Fail", "Wait"):
        raise InvalidSpec("onUnknownStatus", f"{on_unknown!r} is not Fail or Wait")
    expect = spec.get("expect")
    if expect is None:
        expect = {}
    elif not isinstance(expect, Mapping):
        raise InvalidSpec("expect", f"{expect!r} is not an object")
    server = (spec.get("serverRef") or {}).get("name") or default_server_secret
    if "/" in server:
        raise InvalidSpec("serverRef.name", "must name a Secret in the watch's own namespace")
    return WatchSpec(
        job_id=parse_job_id(spec["jobId"]) if "jobId" in spec else None,
        server_secret=server,
        poll_interval=_duration(spec, "pollInterval", "30s", 1.0),
        timeout=_duration(spec, "timeout", "168h", 1e-9),
        backoff_exponential=bool(backoff.get("exponential", True)),
        backoff_max_delay=max_delay,
        on_unknown_status=on_unknown,
        job_id_from=source,
        cancel_on_timeout=bool(spec.get("cancelOnTimeout", False)),
        cancel_on_delete=bool(spec.get("cancelOnDelete", False)),
        connection_id=str(spec["connectionId"]) if "connectionId" in spec else None,
        job_type=str(spec.get("jobType", "sync")),
        if_running=str(spec.get("ifRunning", "Adopt")),
        min_rows_synced=_count_bound(expect, "minRowsSynced"),
        min_bytes_synced=_count_bound(expect, "minBytesSynced"),
    )


def _count_bound(expect: Mapping[str, Any], key: str) -> int | None:
    """spec.expect.<key>: a non-negative int64, or None when not set."""
    value = expect.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"expect.{key}", f"{value!r} is not a count (a non-negative integer)")
    if not 0 <= value <= INT64_MAX:
        raise InvalidSpec(f"expect.{key}", f"{value!r} is not a count (a non-negative 64-bit integer)")
    return value


def _job_id_source(raw: Any) -> JobIdSource | None:
    if raw is None:
        return None
    ref = raw.get("configMapKeyRef") if isinstance(raw, Mapping) else None
    if not isinstance(ref, Mapping) or not ref.get("name") or not ref.get("key"):
        raise InvalidSpec("jobIdFrom.configMapKeyRef", "needs a name and a key")
    if "/" in str(ref["name"]):
        raise InvalidSpec("jobIdFrom.configMapKeyRef.name", "must name a ConfigMap in the watch's namespace")
    return JobIdSource(str(ref["name"]), str(ref["key"]))
