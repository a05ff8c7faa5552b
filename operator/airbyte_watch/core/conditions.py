"""The helpers that keep the conditions' invariants (as Flux's do); their names are in `names`.

Invariants: Ready is always present; Reconciling and Stalled are present only when True and
never together; lastTransitionTime moves only when a condition's status changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .names import READY, RECONCILING, STALLED

Condition = dict[str, Any]


def find(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def upsert(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> list[Condition]:
    """A new list with `type_` set; its lastTransitionTime is kept unless the status changes."""
    old = find(conditions, type_)
    moved = old is None or old.get("status") != status
    new: Condition = {
        "type": type_,
        "status": status,
        "observedGeneration": generation,
        "lastTransitionTime": now if moved else old["lastTransitionTime"],  # type: ignore[index]
        "reason": reason,
        "message": message,
    }
    out = [dict(c) for c in conditions if c.get("type") != type_]
    out.append(new)
    return sorted(out, key=_order)


def remove(conditions: Sequence[Mapping[str, Any]], type_: str) -> list[Condition]:
    return [dict(c) for c in conditions if c.get("type") != type_]


def _order(condition: Mapping[str, Any]) -> int:
    # A stable order keeps the list equal across polls, so unchanged status is not re-patched.
    return {READY: 0, RECONCILING: 1, STALLED: 2}.get(condition.get("type", ""), 3)


def mark_waiting(
    conditions: Sequence[Mapping[str, Any]], reason: str, message: str, generation: int, now: str
) -> list[Condition]:
    out = upsert(conditions, READY, "Unknown", reason, message, generation, now)
    out = upsert(out, RECONCILING, "True", reason, message, generation, now)
    return remove(out, STALLED)


def mark_stalled(
    conditions: Sequence[Mapping[str, Any]], reason: str, message: str, generation: int, now: str
) -> list[Condition]:
    out = upsert(conditions, READY, "False", reason, message, generation, now)
    out = upsert(out, STALLED, "True", reason, message, generation, now)
    return remove(out, RECONCILING)


def mark_ready(
    conditions: Sequence[Mapping[str, Any]], reason: str, message: str, generation: int, now: str
) -> list[Condition]:
    out = upsert(conditions, READY, "True", reason, message, generation, now)
    return remove(remove(out, RECONCILING), STALLED)


def restamp(conditions: Sequence[Mapping[str, Any]], generation: int) -> list[Condition]:
    """The same conditions, marked as observed at `generation` (a spec edit on a final watch)."""
    return [{**c, "observedGeneration": generation} for c in conditions]
