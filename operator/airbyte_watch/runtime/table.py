"""The watches this process knows, kept in sync by watch events and by lists.

The table only records what Kubernetes says; it never awaits anything, so a watch event is
applied in one piece between two steps of a watch (see `watches.py`).
"""

from __future__ import annotations

import enum
import itertools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.names import CANCEL_FINALIZER
from ..kube.sharding import Shard

Key = tuple[str, str]  # (namespace, name)


@dataclass
class Watch:
    namespace: str
    name: str
    uid: str
    generation: int
    spec: dict[str, Any]
    status: dict[str, Any]  # as last written by us (or as found at start)
    finalizers: list[str] = field(default_factory=list)
    deleting: bool = False  # deletionTimestamp is set and our finalizer holds the delete
    deleted: bool = False  # gone from the table: a step still holding it writes nothing
    failures: int = 0  # consecutive polls that met a problem, for the backoff
    server: str | None = None  # host of the Airbyte server it polled last, a metrics label
    server_key: str | None = None  # the ServerConfig.key it used last: keeps that client alive
    delete_seen_at: float | None = None  # monotonic time the delete was first seen
    seen: int = 0  # the table's sequence number when Kubernetes last told us about it

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def ref(self) -> dict[str, Any]:
        return {"metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid}}

    @property
    def stale(self) -> bool:
        """The spec moved past what the status acknowledges."""
        return self.status.get("observedGeneration") != self.generation


class Change(enum.Enum):
    NONE = "none"  # nothing a step must act on (our own status write, a label edit)
    NEW = "new"  # first seen: plan its first poll
    EDITED = "edited"  # the spec moved: reconcile now
    DELETING = "deleting"  # a delete waits on our finalizer: cancel, then let go
    GONE = "gone"  # deleted, or not ours: forgotten


@dataclass
class WatchTable:
    shard: Shard = field(default_factory=Shard)
    known: dict[Key, Watch] = field(default_factory=dict)
    _seq: itertools.count = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self.known)

    def get(self, key: Key) -> Watch | None:
        return self.known.get(key)

    def mark(self) -> int:
        """A point in the stream: watches seen after it have a higher `seen`."""
        return next(self._seq)

    def apply(self, event_type: str | None, body: Mapping[str, Any]) -> tuple[Change, Watch | None]:
        """Record one watch event; what changed, and the Watch it concerns (the forgotten one
        for GONE). The body is copied, never kept: only what decisions need stays."""
        meta = body.get("metadata") or {}
        key: Key = (meta.get("namespace", ""), meta.get("name", ""))
        uid = meta.get("uid", "")
        watch = self.known.get(key)
        if event_type == "DELETED":
            if watch is not None and watch.uid == uid:
                return Change.GONE, self.forget(key)
            return Change.NONE, None  # an older object of that name, already replaced
        if not self.shard.owns(uid):
            return Change.NONE, None  # another replica's watch
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp") and CANCEL_FINALIZER not in finalizers:
            # Nothing holds the delete for us: let go now.
            if watch is not None and watch.uid == uid:
                return Change.GONE, self.forget(key)
            return Change.NONE, None
        if watch is not None and watch.uid != uid:
            self.forget(key)  # deleted and re-created under the same name: a new watch
            watch = None
        if watch is None:
            watch = self._remember(key, body)
            if meta.get("deletionTimestamp"):  # found mid-delete, held by our finalizer
                watch.deleting = True
                return Change.DELETING, watch
            return Change.NEW, watch
        watch.seen = self.mark()
        watch.finalizers = finalizers
        if meta.get("deletionTimestamp"):
            first = not watch.deleting
            watch.deleting = True
            return (Change.DELETING if first else Change.NONE), watch
        generation = int(meta.get("generation", watch.generation))
        if generation != watch.generation:
            watch.generation = generation
            watch.spec = _keep(body.get("spec"))
            return Change.EDITED, watch
        return Change.NONE, watch

    def forget(self, key: Key) -> Watch | None:
        watch = self.known.pop(key, None)
        if watch is not None:
            watch.deleted = True  # a step in flight sees this and writes nothing
        return watch

    def unseen_since(self, mark: int) -> list[Watch]:
        """Watches neither listed nor told of by an event since `mark`, once a full list that
        began there has been applied: they were deleted while the stream was down (a re-list
        after 410 Gone sends no DELETED)."""
        return [w for w in self.known.values() if w.seen < mark]

    def _remember(self, key: Key, body: Mapping[str, Any]) -> Watch:
        meta = body.get("metadata") or {}
        watch = Watch(
            namespace=key[0],
            name=key[1],
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation", 1)),
            spec=_keep(body.get("spec")),
            status=_keep(body.get("status")),
            finalizers=list(meta.get("finalizers") or []),
            seen=self.mark(),
        )
        self.known[key] = watch
        return watch


def _keep(value: Any) -> dict[str, Any]:
    """Our own copy of a spec or status, with short strings shared between watches: at 50,000
    watches the same phases, reasons, condition types and timestamps would otherwise be held
    once per watch (a fifth of the table's memory, measured)."""
    return compact(dict(value or {}))


def compact(value: Any) -> Any:
    """`value` with short strings interned, containers rebuilt (never shared with the caller)."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= 64 else value
    if isinstance(value, dict):
        return {sys.intern(k) if isinstance(k, str) else k: compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value
