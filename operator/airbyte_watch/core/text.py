"""Text that reaches status, Events and logs: bounded, and with credential values removed.

Airbyte (or a proxy in front of it) may echo a request in an error body, bearer token and all;
whatever it says is cut to a bound and scrubbed of every credential value we know before it
is written where anyone who can `get ajw` reads it.
"""

from __future__ import annotations

from collections.abc import Iterable

MESSAGE_LIMIT = 1024  # a status message or condition message (the CRD allows 32 KiB)
DETAIL_LIMIT = 512  # Airbyte's words inside a message
REDACTED = "[redacted]"
_MIN_SECRET = 4  # shorter values would redact ordinary words


def bound(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text`, cut to at most `limit` characters with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    keep = limit
    for _ in range(2):  # the marker's length depends on the count it names
        marker = f"... ({len(text) - keep} more characters)"
        keep = max(0, limit - len(marker))
    return (text[:keep] + f"... ({len(text) - keep} more characters)")[:limit]


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every occurrence of each secret value replaced; longest first, so that a
    value containing another is removed whole."""
    for value in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def clean(text: str, secrets: Iterable[str], limit: int = DETAIL_LIMIT) -> str:
    """Redact first (a cut must not leave half a secret behind), then bound."""
    return bound(redact(text, secrets), limit)
