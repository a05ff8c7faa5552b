"""The API server's audit log, read as it grows: which watch got which write, and when.

The control plane logs every write to AirbyteJobWatches, their status and Events (level
Metadata). Reading the whole file on every look costs seconds at 50,000 watches, so this keeps
its place and reads only new lines, across the API server's rotations of the file.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path


def parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class WatchWrites:
    """The successful writes of one watch: status patch times and Event create times."""

    patches: list[float] = field(default_factory=list)
    events: list[float] = field(default_factory=list)


@dataclass
class AuditTail:
    path: Path
    namespace: str
    watches: dict[str, WatchWrites] = field(default_factory=dict)
    refused: int = 0  # writes the API server answered with 4xx/5xx (409s of repeated Events included)
    _offset: int = 0
    _inode: int = 0
    _partial: bytes = b""

    def read(self) -> None:
        if not self.path.exists():
            return
        inode = self.path.stat().st_ino
        if self._inode and inode != self._inode:
            # The API server rotated the log (at 100 MB): finish the old file, then start the new one.
            rotated = [f for f in self.path.parent.glob("audit-*.log") if f.stat().st_ino == self._inode]
            if rotated:
                self._read_from(rotated[0])
            self._offset, self._partial = 0, b""
        self._inode = inode
        self._read_from(self.path)

    def _read_from(self, path: Path) -> None:
        with path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line and self.namespace.encode() in line:
                self._record(json.loads(line))

    def _record(self, record: dict) -> None:
        ref = record.get("objectRef") or {}
        if record.get("stage") != "ResponseComplete" or ref.get("namespace") != self.namespace:
            return
        code = (record.get("responseStatus") or {}).get("code", 200)
        at = parse_time(record["stageTimestamp"])
        if ref.get("resource") == "airbytejobwatches" and ref.get("subresource") == "status":
            if code >= 300:
                self.refused += 1
                return
            self.watches.setdefault(ref["name"], WatchWrites()).patches.append(at)
        elif ref.get("resource") == "events" and record.get("verb") == "create":
            if code >= 300:
                self.refused += 1
                return
            # Event names are `<watch name>.<digest>` (status_writer.event_name).
            self.watches.setdefault(ref["name"].rsplit(".", 1)[0], WatchWrites()).events.append(at)

    def counts(self) -> tuple[int, int]:
        """Status patches and Event creates so far."""
        return (
            sum(len(w.patches) for w in self.watches.values()),
            sum(len(w.events) for w in self.watches.values()),
        )

    def with_first_writes(self) -> int:
        """Watches with at least one status patch and one Event (their cold start is done)."""
        return sum(1 for w in self.watches.values() if w.patches and w.events)

    def last_write(self) -> float:
        return max(
            (max(w.patches + w.events) for w in self.watches.values() if w.patches or w.events), default=0
        )
