from __future__ import annotations

import uuid

import pytest
from airbyte_watch.sharding import Shard, ordinal_of


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_every_watch_has_exactly_one_shard_and_they_share_the_load(count: int) -> None:
    uids = [str(uuid.UUID(int=i * 7919 + 13)) for i in range(3000)]
    shards = [Shard(i, count) for i in range(count)]
    owners = [[s.index for s in shards if s.owns(uid)] for uid in uids]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o == [i]) for i in range(count)]
    assert min(sizes) > 0.8 * len(uids) / count


def test_the_owner_never_changes() -> None:
    assert [Shard(i, 5).owns("6a1c5e4e-0000-4000-8000-000000000001") for i in range(5)] == [
        Shard(i, 5).owns("6a1c5e4e-0000-4000-8000-000000000001") for i in range(5)
    ]


def test_bad_shards_and_ordinals() -> None:
    with pytest.raises(ValueError):
        Shard(2, 2)
    with pytest.raises(ValueError):
        Shard(0, 0)
    assert ordinal_of("airbyte-watch-12") == 12
    with pytest.raises(ValueError):
        ordinal_of("airbyte-watch-7d9f8")
