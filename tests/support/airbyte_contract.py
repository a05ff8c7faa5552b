"""Airbyte's published contract, checked on every request the fake receives and every answer it
sends. A violation is a list of strings; the fake collects them and a test that caused one fails.

The public API is checked with the models of Airbyte's official Python SDK (PyPI `airbyte-api`,
MIT, generated from the server's published OpenAPI document `api.yaml`), read strictly from the
JSON. The published documents themselves (airbyte-platform, Elastic License 2.0) are not copied
into this Apache-2.0 repository; what the SDK does not model (query bounds, the token endpoint,
problem bodies, the config API) is checked here against the rules of those documents, each named
with its source in tests/support/AIRBYTE.md.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pydantic
from airbyte_api import models
from airbyte_api.api.listjobs import ListJobsRequest

Check = Callable[[Any], list[str]]

JOB_STATUSES = {e.value for e in models.JobStatusEnum}
JOB_TYPES = {e.value for e in models.JobTypeEnum}
CONFIG_TYPES = {
    "check_connection_source",
    "check_connection_destination",
    "discover_schema",
    "get_spec",
    "sync",
    "reset_connection",
    "refresh",
    "clear",
}  # config.yaml JobConfigType
ATTEMPT_STATUSES = {"running", "failed", "succeeded"}  # config.yaml AttemptStatus
# api-problems.yaml: each problem title with its constant `type`.
PROBLEM_TYPES = {
    "invalid-api-key": "https://reference.airbyte.com/reference/errors#invalid-api-key",
    "forbidden": "https://reference.airbyte.com/reference/errors#forbidden",
    "bad-request": "https://reference.airbyte.com/reference/errors#bad-request",
    "resource-not-found": "https://reference.airbyte.com/reference/errors#resource-not-found",
    "state-conflict": "https://reference.airbyte.com/reference/errors#409-state-conflict",
    "try-again-later": "https://reference.airbyte.com/reference/errors#try-again-later",
    "unprocessable-entity": "https://reference.airbyte.com/reference/errors#unprocessable-entity",
    "unexpected-problem": "https://reference.airbyte.com/reference/errors",
}
_LIST_QUERY = {f.alias or name for name, f in ListJobsRequest.model_fields.items()}
_ORDER_BY = re.compile(r"\w+\|(ASC|DESC)")  # api.yaml's pattern for orderBy


def _sdk(model: type[pydantic.BaseModel]) -> Check:
    def check(body: Any) -> list[str]:
        try:
            model.model_validate_json(json.dumps(body), strict=True)
        except pydantic.ValidationError as exc:
            return [
                f"not a {model.__name__}: "
                + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            ]
        return []

    return check


def _fields(
    body: Any,
    name: str,
    required: Mapping[str, Callable[[Any], bool]],
    optional: Mapping[str, Callable[[Any], bool]] = {},
) -> list[str]:
    if not isinstance(body, dict):
        return [f"{name} is not a JSON object"]
    out = [f"{name}.{k} missing" for k in required if k not in body]
    for key, ok in {**required, **optional}.items():
        if key in body and not ok(body[key]):
            out.append(f"{name}.{key} is invalid: {body[key]!r}")
    return out


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _uuid(v: Any) -> bool:
    try:
        uuid.UUID(v)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def _datetime(v: Any) -> bool:
    try:
        datetime.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return False
    return isinstance(v, str)


def _list_of(ok: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and all(ok(x) for x in v)


# --- public API requests --------------------------------------------------------------------


def list_jobs_query(query: Mapping[str, str]) -> list[str]:
    out = [f"unknown query parameter {k!r}" for k in query if k not in _LIST_QUERY]
    try:
        ListJobsRequest.model_validate(dict(query))
    except pydantic.ValidationError as exc:
        out += [f"query {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    for name, low, high in (("limit", 1, 100), ("offset", 0, None)):
        if name in query:
            value = int(query[name]) if query[name].lstrip("-").isdigit() else None
            if value is None or value < low or (high is not None and value > high):
                out.append(f"query {name}={query[name]!r} is outside {low}..{high or ''}")
    if "orderBy" in query and not _ORDER_BY.fullmatch(query["orderBy"]):
        out.append(f"query orderBy={query['orderBy']!r} does not match {_ORDER_BY.pattern}")
    return out


def token_request(body: Any) -> list[str]:
    # The published document requires `grant_type` but declares `grant-type`; the server's own
    # wire-format test reads `grant-type`, and the SDK sends a form with `grant_type`. Either
    # spelling is accepted, following the server's code rather than the document's `required`.
    out = _fields(body, "ApplicationTokenRequestWithGrant", {"client_id": _str, "client_secret": _str})
    grant = body.get("grant-type", body.get("grant_type")) if isinstance(body, dict) else None
    if grant not in (None, "client_credentials"):
        out.append(f"grant type {grant!r} is not client_credentials")
    return out


# --- public API answers ---------------------------------------------------------------------

job_response = _sdk(models.JobResponse)
jobs_response = _sdk(models.JobsResponse)
job_create_request = _sdk(models.JobCreateRequest)


def token_response(body: Any) -> list[str]:
    # `expires_in` is required by the public document; the config API's token endpoint sends
    # none, so the fake may leave it out to play that server.
    return _fields(
        body,
        "PublicAccessTokenResponse",
        {"access_token": _str, "token_type": lambda v: v == "Bearer"},
        {"expires_in": _int},
    )


def error_body(status: int, content_type: str, body: Any) -> list[str]:
    """Problems (api-problems.yaml) and the handlers' bare bodies, always `application/json`."""
    out = [] if content_type == "application/json" else [f"error served as {content_type!r}"]
    if not isinstance(body, dict):
        return [*out, "error body is not a JSON object"]
    if "title" not in body:  # {"errorId"} (validation handlers), {"message"} (load shed, config API)
        return out if ("errorId" in body or "message" in body) else [*out, f"error body {sorted(body)}"]
    out += _fields(
        body,
        "problem",
        {"type": _str, "title": _str},
        {"status": _int, "detail": _str, "documentationUrl": _str, "data": lambda v: isinstance(v, dict)},
    )
    if body.get("status") not in (None, status):
        out.append(f"problem status {body.get('status')} on an HTTP {status}")
    expected = PROBLEM_TYPES.get(body["title"])
    if expected is None or body.get("type") != expected:
        out.append(
            f"problem {body['title']!r} has type {body.get('type')!r}, api-problems.yaml says {expected!r}"
        )
    return out


# --- config API (config.yaml) ---------------------------------------------------------------


def job_id_request(body: Any) -> list[str]:
    return _fields(body, "JobIdRequestBody", {"id": _int})


def connection_id_request(body: Any) -> list[str]:
    return _fields(body, "ConnectionIdRequestBody", {"connectionId": _uuid})


def job_list_request(body: Any) -> list[str]:
    return _fields(
        body,
        "JobListRequestBody",
        {"configTypes": _list_of(lambda v: v in CONFIG_TYPES)},
        {
            "configId": _str,
            "pagination": lambda v: not _fields(v, "Pagination", {}, {"pageSize": _int, "rowOffset": _int}),
            "statuses": _list_of(lambda v: v in JOB_STATUSES),
            "createdAtStart": _datetime,
            "createdAtEnd": _datetime,
            "updatedAtStart": _datetime,
            "updatedAtEnd": _datetime,
            "orderByField": lambda v: v in ("createdAt", "updatedAt"),
            "orderByMethod": lambda v: v in ("ASC", "DESC"),
        },
    )


def _job_read(job: Any) -> list[str]:
    return _fields(
        job,
        "JobRead",
        {
            "id": _int,
            "configType": lambda v: v in CONFIG_TYPES,
            "configId": _str,
            "createdAt": _int,
            "updatedAt": _int,
            "status": lambda v: v in JOB_STATUSES,
        },
    )


def _attempt(entry: Any) -> list[str]:
    out = _fields(entry, "AttemptInfoRead", {"attempt": lambda v: isinstance(v, dict)})
    if not out:
        out = _fields(
            entry["attempt"],
            "AttemptRead",
            {"id": _int, "status": lambda v: v in ATTEMPT_STATUSES, "createdAt": _int, "updatedAt": _int},
        )
    return out


def job_info_read(body: Any) -> list[str]:
    out = _fields(body, "JobInfoRead", {"job": lambda v: True, "attempts": lambda v: isinstance(v, list)})
    if out:
        return out
    return _job_read(body["job"]) + [m for a in body["attempts"] for m in _attempt(a)]


def job_read_list(body: Any) -> list[str]:
    out = _fields(body, "JobReadList", {"jobs": lambda v: isinstance(v, list), "totalJobCount": _int})
    for item in body.get("jobs", []) if not out else []:
        out += _fields(item, "JobWithAttemptsRead", {"job": lambda v: True})
        out += _job_read(item.get("job")) if isinstance(item, dict) else []
    return out
