"""The operator's kopf handlers: the one module that uses kopf's handler API. Each delegates.

Two registries, because a standby replica must serve admission but take nothing in:

- `intake`: startup (Lease, first list, scheduler), cleanup, login, and every AirbyteJobWatch
  event. kopf starts its watchers only after the startup handler returns, so a standby's
  intake stays paused while it waits for the Lease.
- `admission`: login and the validating webhook, served by every replica (stateless).

Only `on.event` takes watches in: kopf writes nothing for it (no finalizer, no diff-base or
progress annotations), so the operator's own writes stay the only ones, four per watch.
"""

from __future__ import annotations

from typing import Any

import kopf

from . import GROUP, PLURAL, VERSION
from .kube import login
from .runtime import admission as admission_rules
from .runtime.service import Service

intake = kopf.OperatorRegistry()
admission = kopf.OperatorRegistry()


@kopf.on.login(registry=intake)
@kopf.on.login(registry=admission)
def log_in(**kwargs: Any) -> kopf.ConnectionInfo:
    return login.login(**kwargs)


@kopf.on.startup(registry=intake)
async def start(memo: kopf.Memo, **_: Any) -> None:
    service: Service = memo.service
    await service.start()


@kopf.on.cleanup(registry=intake)
async def stop(memo: kopf.Memo, **_: Any) -> None:
    service: Service = memo.service
    await service.close()


@kopf.on.event(GROUP, VERSION, PLURAL, registry=intake)
async def take_in(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """ADDED, MODIFIED, DELETED, or None for kopf's own listing: recorded, and a step asked for
    (never awaited here: the step runs in the service's scheduler, one at a time per watch)."""
    service: Service = memo.service
    service.watches.observe(event["type"], event["object"])


@kopf.on.validate(GROUP, VERSION, PLURAL, registry=admission, id="airbytejobwatch",
                  operations=["CREATE", "UPDATE"], ignore_failures=True)  # fmt: skip
async def refuse_what_cannot_work(
    spec: kopf.Spec, namespace: str, warnings: list[str], memo: kopf.Memo,
    old: kopf.Body | None = None, new: kopf.Body | None = None, **_: Any,
) -> None:  # fmt: skip
    """A watch that cannot work is refused at `kubectl apply`, naming the field; one that may
    work once something else is applied (a missing Secret) is admitted with a warning. Reads
    Kubernetes only, never Airbyte: admission must answer in milliseconds."""
    if old is not None and new is not None and old.get("spec") == new.get("spec"):
        # A label, or our own finalizer released on a deleted watch: refusing it would keep
        # the watch (or its delete) stuck on a Secret that went bad since. The chart's
        # matchConditions skip these too; kopf's managed configuration has none.
        return
    service: Service = memo.service
    options = service.watches.options
    found = await admission_rules.review(
        service.kube, namespace, spec,
        default_server_secret=options.default_server_secret,
        allowed_urls=service.watches.connections.allowed_urls,
    )  # fmt: skip
    warnings.extend(found.warnings)
    if found.refusal is not None:
        raise kopf.AdmissionError(found.refusal, code=422)
