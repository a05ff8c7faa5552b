"""Leader election on a coordination.k8s.io/v1 Lease: one acting replica per shard.

The protocol is client-go's (`k8s.io/client-go/tools/leaderelection`): a candidate takes the
Lease when its holder has not renewed it for `leaseDurationSeconds` as measured on the
candidate's own clock (never by comparing timestamps from another machine), and every write
of the Lease is guarded by its resourceVersion, so two candidates cannot both win.

What it adds is a fence. The leader may act only until `renew_deadline` (< lease duration)
has passed on its monotonic clock since it sent its last successful renewal. A leader that
cannot renew, or that was frozen (SIGSTOP, a paused VM) and wakes after another replica took
over, finds the deadline passed at its next `check()` before any write, and stops for good:
leadership lost is never regained in the same process (controller-runtime's convention:
exit, and let the Deployment restart the pod as a standby).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .client import KubeClient, KubeError

log = logging.getLogger(__name__)

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


class NotLeader(KubeError):
    """A write was attempted by a replica that does not (or no longer) hold the Lease."""


@dataclass(frozen=True)
class Timing:
    """client-go's defaults; tests shorten them. renew_deadline < lease_duration is the fence."""

    lease_duration: int = 15  # whole seconds: the Lease's leaseDurationSeconds is an integer
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need 0 < retry period < renew deadline < lease duration")


class Leadership:
    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing = Timing(),
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.timing = timing
        self._clock = clock
        self._on_change = on_change
        self._renewed_at: float | None = None  # monotonic, when the last good renewal was sent
        self._lost = False
        self.lost = asyncio.Event()  # set once: the process must stop acting and exit
        # The holder's record as last seen, and when it last changed (on our clock).
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.holder: str | None = None
        self._expires_at: float | None = None  # the holder's lease runs out then, as seen here

    # --- the fence -------------------------------------------------------------------------

    def may_act(self) -> bool:
        """True while this replica leads and its last renewal is younger than the deadline."""
        if self._lost or self._renewed_at is None:
            return False
        if self._clock() < self._deadline():
            return True
        self._lose("the renew deadline passed before a write")
        return False

    def check(self) -> None:
        """Call right before every write: raises NotLeader unless `may_act()`."""
        if not self.may_act():
            raise NotLeader(f"{self.identity} does not hold Lease {self.namespace}/{self.name}")

    @property
    def leading(self) -> bool:
        return self.may_act()

    def _lose(self, why: str) -> None:
        if not self._lost:
            self._lost = True
            log.error("Lost leadership of Lease %s/%s: %s; stopping", self.namespace, self.name, why)
            self._on_change(False)
            self.lost.set()

    # --- the election ----------------------------------------------------------------------

    async def acquire(self) -> None:
        """Return once this replica holds the Lease (a standby waits here, doing nothing else)."""
        logged = False
        while not await self._try_acquire_or_renew():
            if not logged and self.holder:
                log.info("Standing by: Lease %s/%s is held by %s", self.namespace, self.name, self.holder)
                logged = True
            await asyncio.sleep(self._next_try())
        log.info("Acquired Lease %s/%s as %s", self.namespace, self.name, self.identity)
        self._on_change(True)

    def _next_try(self) -> float:
        """A retry period (with client-go's jitter), or less: wake right when the holder's
        lease runs out as we have seen it, not up to a retry period later."""
        wait = self.timing.retry_period * random.uniform(1.0, 1.2)
        if self._expires_at is not None:
            wait = min(wait, max(0.05, self._expires_at - self._clock() + 0.05))
        return wait

    async def keep(self) -> None:
        """Renew every retry period; once a renewal cannot be made before the renew deadline,
        mark leadership lost and return. A hung request counts as a failed one."""
        while True:
            await asyncio.sleep(self.timing.retry_period)
            while True:
                remaining = self._deadline() - self._clock()
                if remaining <= 0 or self._lost:
                    self._lose("could not renew the Lease before the renew deadline")
                    return
                try:
                    if await asyncio.wait_for(self._try_acquire_or_renew(), remaining):
                        break
                except TimeoutError:
                    continue
                await asyncio.sleep(min(self.timing.retry_period / 2, max(0.0, remaining)))

    def _deadline(self) -> float:
        return (self._renewed_at or float("-inf")) + self.timing.renew_deadline

    async def release(self) -> None:
        """On a clean shutdown: give the Lease up so a standby takes over at once."""
        if not self.may_act():
            return
        self._lost = True  # no write after this one
        self._on_change(False)
        try:
            status, body = await self._get()
            if status == 200 and body["spec"].get("holderIdentity") == self.identity:
                body["spec"].update(holderIdentity=None, leaseDurationSeconds=1)
                status, body = await self._put(body)
            if status != 200:
                log.warning("Could not release Lease %s/%s: %s", self.namespace, self.name, status)
            else:
                log.info("Released Lease %s/%s", self.namespace, self.name)
        except KubeError as exc:
            log.warning("Could not release Lease %s/%s: %s", self.namespace, self.name, exc)

    async def _try_acquire_or_renew(self) -> bool:
        sent_at = self._clock()
        now = _micro_time()
        try:
            status, lease = await self._get()
            if status == 404:
                return await self._create(sent_at, now)
            if status != 200:
                log.warning("Reading Lease %s/%s answered %s", self.namespace, self.name, status)
                return False
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or None
            self.holder = holder
            record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"), spec.get("acquireTime"))
            if record != self._observed:
                self._observed, self._observed_at = record, self._clock()
            duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
            self._expires_at = self._observed_at + duration if holder and holder != self.identity else None
            if self._expires_at is not None and self._clock() < self._expires_at:
                return False  # held, and renewed within its duration as far as we have seen
            if holder != self.identity:
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
                spec["acquireTime"] = now
            spec.update(
                holderIdentity=self.identity,
                leaseDurationSeconds=self.timing.lease_duration,
                renewTime=now,
            )
            lease["spec"] = spec
            status, _ = await self._put(lease)
        except KubeError as exc:
            log.warning("Lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        if status != 200:  # 409: someone else wrote it first; try again next period
            log.debug("Updating Lease %s/%s answered %s", self.namespace, self.name, status)
            return False
        return self._won(sent_at)

    async def _create(self, sent_at: float, now: str) -> bool:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.timing.lease_duration,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        status, _ = await self.kube._request(
            "POST", LEASES.format(namespace=self.namespace), body=lease, fenced=False
        )
        return status == 201 and self._won(sent_at)

    def _won(self, sent_at: float) -> bool:
        if self._lost:
            return False
        self._renewed_at = sent_at
        self.holder = self.identity
        return True

    async def _get(self) -> tuple[int, Any]:
        path = f"{LEASES.format(namespace=self.namespace)}/{self.name}"
        return await self.kube._request("GET", path, fenced=False)

    async def _put(self, lease: dict[str, Any]) -> tuple[int, Any]:
        # The body carries metadata.resourceVersion: a concurrent writer makes this a 409.
        path = f"{LEASES.format(namespace=self.namespace)}/{self.name}"
        return await self.kube._request("PUT", path, body=lease, fenced=False)


def _micro_time() -> str:
    """metav1.MicroTime, as the Lease's acquireTime and renewTime want it."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
