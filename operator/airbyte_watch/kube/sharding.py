"""Which replica handles which watch: a stable hash of the watch's uid, modulo the shard count."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} is not within a shard count of {self.count}")

    def owns(self, uid: str) -> bool:
        """True for exactly one shard of `count`, for the whole life of the object."""
        if self.count == 1:
            return True
        digest = hashlib.sha256(uid.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def ordinal_of(hostname: str) -> int:
    """A StatefulSet pod's ordinal from its name (`airbyte-watch-2` -> 2)."""
    match = re.search(r"-(\d+)$", hostname)
    if match is None:
        raise ValueError(f"cannot read a shard index from the host name {hostname!r}")
    return int(match.group(1))
