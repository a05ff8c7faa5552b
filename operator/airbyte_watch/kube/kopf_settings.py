"""kopf's settings for the operator's two kopf registries (handlers.py): the intake and admission.

Measured at 10,000 watches (cold start, then every job ending; `py-spy` during the cold start):
kopf built a diff base (a deep copy of the body) for every event although no change handler
reads it, 7.5 % of the process's CPU; and its first list came in one response. An empty diff
base and pages of 500 took the cold start's CPU from 32.5 s to 30.0 s and the peak RSS from 171
to 151 MiB (numbers of one run each; the benchmark in docs/performance.md is the reference).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

import kopf

LIST_PAGE = 500  # objects per page of kopf's first list: 50,000 at once would peak the RSS


class NoDiffBase(kopf.DiffBaseStorage):
    """Nothing to compare: only `on.event` takes watches in, and kopf reads a diff base only for
    change handlers (on.create/update/resume). So none is built, read or written. `build`
    returns None, not an empty essence: kopf then skips clearing progress out of it (two deep
    copies per event; 8 % of kopf's CPU per event in bench/results/profiles/
    2026-12-02-kopf-event-cost.txt)."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def intake_settings(args: argparse.Namespace) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # Least privilege: no CRD or namespace scans (the CRD is waited for at start; namespace
    # globs are matched on a cluster-wide watch, as `list_scopes` says).
    settings.scanning.disabled = True
    # Our Events are named so that each lands exactly once (kube/status_writer.py); kopf's are not.
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.chunk_size = LIST_PAGE
    settings.watching.server_timeout = 300  # the API server ends each watch; kopf goes on from it
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # One kopf worker per object lives this long after its last event; the handler only
    # records, so a short life keeps 50,000 idle workers from piling up at start.
    settings.queueing.idle_timeout = 1.0
    settings.networking.request_timeout = 60
    return settings


def admission_settings(args: argparse.Namespace) -> kopf.OperatorSettings:
    settings = intake_settings(args)
    settings.admission.server = kopf.WebhookServer(
        addr=args.webhook_addr,
        port=args.webhook_port,
        host=args.webhook_host,
        certfile=args.webhook_cert,
        pkeyfile=args.webhook_key,
    )
    if args.webhook_managed:
        # kopf creates and keeps the ValidatingWebhookConfiguration (dev, tests, the demo);
        # the Helm chart brings its own.
        settings.admission.managed = args.webhook_managed
    return settings
