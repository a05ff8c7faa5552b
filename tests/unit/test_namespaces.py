"""`--namespace` patterns: our lists (at start and in each resync) and our watch stream serve
exactly the namespaces kopf would, with kopf's own matcher as the oracle (the flag keeps kopf's
pattern syntax)."""

from __future__ import annotations

from airbyte_watch.kube.namespaces import is_pattern, list_scopes, serves
from airbyte_watch.runtime.connections import Connections
from airbyte_watch.runtime.watches import Options, Watches
from hypothesis import given
from hypothesis import strategies as st
from kopf._cogs.structs.references import match_namespace  # the oracle: what kopf would serve

from tests.support.memory import FakeClock, MemoryAirbyte, MemoryKube, MemoryPool

NAMES = st.text(alphabet="abk-", min_size=1, max_size=6)
GLOBS = st.text(alphabet="abk-*?!", min_size=0, max_size=6)
PATTERNS = st.lists(GLOBS, min_size=1, max_size=3).map(", ".join)


@given(st.lists(PATTERNS, min_size=1, max_size=3), NAMES)
def test_a_namespace_is_served_exactly_when_kopf_serves_it(patterns: list[str], namespace: str) -> None:
    assert serves(patterns, namespace) == any(match_namespace(namespace, p) for p in patterns)


def test_kopfs_documented_examples() -> None:
    first_includes = ["myapp-*, !*-pr-*, *pr-123"]
    assert serves(first_includes, "myapp-live") and serves(first_includes, "myapp-pr-123")
    assert not serves(first_includes, "myapp-pr-456") and not serves(first_includes, "otherapp-pr-123")
    implied = ["!*-pr-*, *pr-123"]
    assert serves(implied, "anyapp") and serves(implied, "otherapp-pr-123")
    assert not serves(implied, "myapp-pr-456")
    assert serves([], "anything") and serves(["a", "b"], "b") and not serves(["a", "b"], "c")


def test_only_plain_names_are_listed_namespace_by_namespace() -> None:
    assert list_scopes([]) == [None]
    assert list_scopes(["team-a", "team-b", "team-a"]) == ["team-a", "team-b"]
    for pattern in ("team-*", "team-?", "team-[ab]", "!kube-system", "team-a,team-b"):
        assert is_pattern(pattern) and list_scopes(["default", pattern]) == [None]
    assert not is_pattern("team-a")


def operator_over(kube: MemoryKube, namespaces: list[str]) -> Watches:
    pool = MemoryPool(MemoryAirbyte(kube.clock))
    return Watches(kube, Connections(kube), pool, Options(namespaces=namespaces), walks=False)  # type: ignore[arg-type]


async def test_a_negated_pattern_serves_every_other_namespace_at_start_and_in_each_resync() -> None:
    """`--namespace '!kube-system'` (which the Helm chart's schema allows): the start-up list
    took the `!` for part of a name and found nothing, and the resync listed a namespace named
    `!kube-system`, found nothing there, and forgot every watch the stream had told of."""
    kube = MemoryKube(FakeClock())
    for namespace in ("team-a", "default", "kube-system"):
        kube.create(namespace, "w", {"jobId": 7})
    watches = operator_over(kube, ["!kube-system"])
    await watches.relist()
    assert set(watches.known) == {("team-a", "w"), ("default", "w")}
    kube.delete("default", "w")
    await watches.resync()
    assert set(watches.known) == {("team-a", "w")}


async def test_comma_separated_globs_are_one_pattern_not_a_namespace_name() -> None:
    kube = MemoryKube(FakeClock())
    for namespace in ("team-a", "team-b", "team-x", "other"):
        kube.create(namespace, "w", {"jobId": 7})
    watches = operator_over(kube, ["team-*, !team-x", "other"])
    await watches.relist()
    await watches.resync()
    assert set(watches.known) == {("team-a", "w"), ("team-b", "w"), ("other", "w")}
