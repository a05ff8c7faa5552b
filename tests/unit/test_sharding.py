from __future__ import annotations

import uuid

import pytest
from airbyte_watch.kube.sharding import Shard, ordinal_of


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_every_watch_has_exactly_one_shard_and_they_share_the_load(count: int) -> None:
    uids = [str(uuid.UUID(int=i * 7919 + 13)) for i in range(3000)]
    shards = [Shard(i, count) for i in range(count)]
    owners = [[s.index for s in shards if s.owns(uid)] for uid in uids]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o == [i]) for i in range(count)]
    assert min(sizes) > 0.8 * len(uids) / count


# Pinned: a change of the hash would move every watch to another replica during a rollout,
# where two versions of the operator run side by side and each would think the other owns it.
GOLDEN = {
    "6a1c5e4e-0000-4000-8000-000000000001": (0, 1, 4),
    "0f8fad5b-d9cb-469f-a165-70867728950e": (0, 0, 5),
    "7c9e6679-7425-40de-944b-e07fc1f90ae7": (0, 2, 3),
    "uid-1": (1, 0, 3),
}


@pytest.mark.parametrize(("uid", "owners"), GOLDEN.items())
def test_the_owner_of_a_uid_is_the_same_in_every_version(uid: str, owners: tuple[int, ...]) -> None:
    for count, owner in zip((2, 3, 7), owners, strict=True):
        assert [i for i in range(count) if Shard(i, count).owns(uid)] == [owner]


def test_bad_shards_and_ordinals() -> None:
    with pytest.raises(ValueError):
        Shard(2, 2)
    with pytest.raises(ValueError):
        Shard(0, 0)
    assert ordinal_of("airbyte-watch-12") == 12
    with pytest.raises(ValueError):
        ordinal_of("airbyte-watch-7d9f8")
