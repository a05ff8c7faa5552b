"""kopf registration: the only place that knows kopf's handler API.

kopf lists and watches AirbyteJobWatches and hands every event to `Watches.observe`; the
scheduler does the polling. No change-handlers are used, so kopf writes no annotations, no
finalizers and nothing in status; handlers return None.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from . import GROUP, PLURAL, VERSION
from .watches import Watches

PREFIX = GROUP  # kopf's own bookkeeping, if it ever writes any, lives under our prefix


class UnusedDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf deep-copies every object on every event to detect changes for change handlers.

    None is registered, so nothing reads that copy: skipping it was a fifth of the
    operator's CPU at a cold start with 10,000 watches (profiled with py-spy).
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return {}


def build_registry(watches: Watches, login: Any, scan: bool = False) -> kopf.OperatorRegistry:
    """`scan`: watch namespaces and CRDs (needed for namespace globs; needs more RBAC)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
        settings.persistence.diffbase_storage = UnusedDiffBase(
            prefix=PREFIX, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{PREFIX}/finalizer"
        # Without globs there is nothing to discover: skip listing namespaces and CRDs, which
        # the least-privilege RBAC in deploy/ does not allow.
        settings.scanning.disabled = not scan
        settings.posting.enabled = False  # our Events are posted by KubeClient, on transitions
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 30
        settings.networking.error_backoffs = [1, 2, 4, 8, 16, 30]
        # Memory at 50,000 watches: kopf's first list in pages (unpaged it holds every object at
        # once), and its per-object worker, which keeps the last event's body while it idles,
        # exits soon after its event (our handler only updates a table) instead of after 5 s.
        settings.watching.chunk_size = 500
        settings.batching.idle_timeout = 0.5
        # kopf logs every event it handles at DEBUG; our handler is silent unless it acts.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)

    @kopf.on.login(registry=registry)
    def authenticate(**_: Any) -> kopf.ConnectionInfo:
        return login()

    # Async, so kopf calls it in its loop: a sync handler would cost a thread hop per event.
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def observe(event: Any, body: kopf.Body, **_: Any) -> None:
        watches.observe(event.get("type"), body)

    return registry
