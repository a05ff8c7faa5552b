"""Which namespaces the operator serves: `--namespace` values, read as kopf reads them.

kopf serves a namespace that matches any of the patterns. One pattern is comma-separated globs
(`*`, `?`, `[...]`): the first inclusive glob includes, each `!glob` after it excludes, and a
later inclusive glob takes an excluded namespace back only if the first one included it. A
pattern that begins with `!` begins with an implied `*`. The lists and the watch stream both
filter with `serves`, so a watch is never known to one and not the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

PATTERN_CHARS = frozenset("*?[!,")


def is_pattern(value: str) -> bool:
    """Anything but a plain namespace name: then all namespaces are listed, and filtered."""
    return bool(PATTERN_CHARS & set(value))


def list_scopes(patterns: Sequence[str]) -> list[str | None]:
    """The namespaces to list watches in; None is every namespace (then filter with `serves`)."""
    if not patterns or any(map(is_pattern, patterns)):
        return [None]
    return list(dict.fromkeys(patterns))


def serves(patterns: Sequence[str], namespace: str) -> bool:
    return not patterns or any(_matches(p, namespace) for p in patterns)


def _matches(pattern: str, namespace: str) -> bool:
    globs = [g.strip() for g in pattern.split(",")]
    if globs[0].startswith("!"):
        globs.insert(0, "*")
    included = first = fnmatchcase(namespace, globs[0])
    for glob in globs[1:]:
        if glob.startswith("!"):
            included = included and not fnmatchcase(namespace, glob.lstrip("!"))
        else:
            included = included or (first and fnmatchcase(namespace, glob))
    return included
