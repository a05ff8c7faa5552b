"""What of an Airbyte answer may be repeated: redaction, bounds, and descriptions of bodies."""

from __future__ import annotations

import json

from airbyte_watch.airbyte.text import DETAIL_LIMIT, REDACTED, bounded, describe_body, redact
from airbyte_watch.airbyte.transport import refresh_margin


def test_redact_replaces_every_known_value_longest_first() -> None:
    text = "token abcdef-123 and its prefix abcdef, twice: abcdef-123"
    assert redact(text, ["abcdef", "abcdef-123", None, ""]) == (
        f"token {REDACTED} and its prefix {REDACTED}, twice: {REDACTED}"
    )


def test_redact_leaves_short_values_alone_so_words_survive() -> None:
    assert redact("a job in sync", ["a", "in"]) == "a job in sync"


def test_bounded_cuts_long_text_and_marks_the_cut() -> None:
    assert bounded("short") == "short"
    cut = bounded("x" * 1000)
    kept = cut.index("...")
    assert len(cut) == DETAIL_LIMIT and cut.endswith(f"({1000 - kept} more characters)")


def test_describe_body_keeps_problem_fields_only() -> None:
    body = json.dumps(
        {
            "type": "t",
            "title": "state-conflict",
            "detail": "State conflict",
            "data": {"message": "m"},
            "x": "y",
        }
    )
    assert describe_body(body, "application/json", []) == "state-conflict: State conflict: m"
    assert describe_body('{"message": "You are being rate limited."}', "application/json", []) == (
        "You are being rate limited."
    )
    assert describe_body("", "", []) == "empty body"
    assert describe_body("<html>x</html>", "text/html", []) == "non-JSON body (text/html, 14 bytes)"
    assert describe_body("[1, 2]", "application/json", []) == "JSON body (application/json, 6 bytes)"
    assert describe_body('{"a": 1}', "application/json", []) == "JSON body without problem fields (8 bytes)"


def test_refresh_margin_is_a_third_of_the_lifetime_at_most_a_minute() -> None:
    assert refresh_margin(900) == 60
    assert refresh_margin(10) == 10 / 3
    assert refresh_margin(180) == 60
