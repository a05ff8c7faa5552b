"""What of an Airbyte answer may be repeated in a status, an Event or a log: parsed problem fields
only, with known credential values cut out, and bounded.

A server, or a proxy in front of it, may echo the request (and so the bearer token) in an
error body, and a Secret's `url` may point at anything that answers HTTP: the raw body of an
answer never leaves the client.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from ..core.text import REDACTED, bound, redact

__all__ = ["DETAIL_LIMIT", "REDACTED", "bounded", "describe_body", "redact"]

DETAIL_LIMIT = 300  # characters of Airbyte's own words kept in one message


def bounded(text: str, limit: int = DETAIL_LIMIT) -> str:
    return bound(text, limit)


def describe_body(text: str, content_type: str, secrets: Iterable[str | None]) -> str:
    """Airbyte's problem fields (`title`, `detail`, `data.message`; the config API and the
    load-shed 429 use a top-level `message`), or only the kind and size of any other body."""
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        kind = "empty body" if not text else f"{'JSON' if body is not None else 'non-JSON'} body"
        size = len(text.encode())
        return kind if not text else f"{kind} ({content_type or 'no content type'}, {size} bytes)"
    data = body.get("data")
    parts = [
        body.get("title"),
        body.get("detail"),
        data.get("message") if isinstance(data, dict) else None,
        body.get("message"),
    ]
    words = [p for p in parts if isinstance(p, str) and p]
    if not words:
        return f"JSON body without problem fields ({len(text.encode())} bytes)"
    return bounded(redact(": ".join(dict.fromkeys(words)), secrets))
