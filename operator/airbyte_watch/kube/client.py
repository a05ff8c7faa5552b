"""Every Kubernetes call the operator's own steps make: lists of AirbyteJobWatches, status
patches, finalizers, Events and Secret reads. (kopf's intake watches them: handlers.py.)

One aiohttp session, logged in through kube/login.py like kopf's own, so a step's path stays
short and every write is counted and fenced.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, NamedTuple

import aiohttp
import kopf

from .. import GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # for API server 5xx, 429 and broken connections
EVENT_MESSAGE_LIMIT = 1024


class KubeError(Exception):
    """A Kubernetes call that failed after its retries."""


class Gone(KubeError):
    """410: the resourceVersion a watch asked for is too old; list again."""


class Page(NamedTuple):
    items: list[dict[str, Any]]
    resource_version: str  # the list's: a watch from it misses nothing the list did not show


class KubeClient:
    def __init__(
        self,
        login: Callable[[], kopf.ConnectionInfo],
        component: str = "airbyte-watch",
        instance: str | None = None,
    ) -> None:
        self._login = login
        self._info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None
        self.component = component
        self.instance = instance or socket.gethostname()
        self.on_write: Callable[[str], None] = lambda kind: None  # metrics hook
        # Leader election's fence: raises when this replica may not write (see leadership.py).
        self.before_write: Callable[[], None] = lambda: None

    def _connect(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed or self._expired():
            if self._session is not None and not self._session.closed:
                # Requests still in flight on the old credentials finish; then it closes.
                old = self._session
                asyncio.get_running_loop().call_later(60, lambda: asyncio.ensure_future(old.close()))
            self._info = self._login()
            self._session = self._open(limit=32, timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    def _expired(self) -> bool:
        """The credentials' own end (an exec plugin's token, a re-read of a rotating service
        account token, kube/login.py) has come: log in again before using them."""
        expiration = self._info.expiration if self._info is not None else None
        if expiration is None:
            return False
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=datetime.UTC)
        return datetime.datetime.now(datetime.UTC) >= expiration

    def _open(self, limit: int, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
        assert self._info is not None
        return aiohttp.ClientSession(
            base_url=self._info.server.rstrip("/") + "/",
            headers=self._info.as_http_headers(),
            connector=aiohttp.TCPConnector(ssl=self._info.as_ssl_context(), limit=limit),
            timeout=timeout,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        fenced: bool = True,
        parse_success: bool = True,
    ) -> tuple[int, Any]:
        """(status, parsed body); retries transient failures, re-logs in once on 401.

        `parse_success=False`: a 2xx body is not parsed (None), for writes whose answer, the
        whole object, nobody reads; parsing them was a seventh of the CPU at 10,000 watches.

        A write (any method but GET) runs `before_write` right before each attempt is sent,
        unless `fenced` is False (the Lease itself)."""
        data = None if body is None else json.dumps(body)
        relogged = False
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            session = self._connect()
            if fenced and method != "GET":
                self.before_write()
            try:
                async with session.request(
                    method, path.lstrip("/"), data=data, headers={"Content-Type": content_type}
                ) as response:
                    text = await response.text()
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                if delay is None:
                    raise KubeError(f"{method} {path}: {type(exc).__name__}") from None
                log.debug("Kubernetes %s %s failed (%s), retry %d", method, path, exc, attempt + 1)
                await asyncio.sleep(delay)
                continue
            if status == 401 and not relogged:
                # Rotated service-account token: log in again once.
                relogged = True
                await session.close()
                continue
            if (status >= 500 or status == 429) and delay is not None:
                wait = float(retry_after) if retry_after and retry_after.isdigit() else delay
                log.debug("Kubernetes %s %s answered %d, retry %d", method, path, status, attempt + 1)
                await asyncio.sleep(min(wait, 30.0))
                continue
            if not parse_success and 200 <= status < 300:
                return status, None
            return status, _json_or(text) if text else None
        raise AssertionError("unreachable")  # pragma: no cover

    async def wait_for_crd(self, interval: float = 5.0) -> None:
        """Block until the API server serves our resource (the CRD may be applied with us)."""
        while True:
            try:
                status, body = await self._request("GET", f"/apis/{GROUP}/{VERSION}")
            except KubeError as exc:
                status, body = 0, str(exc)
            if status == 200 and any(r.get("name") == PLURAL for r in body.get("resources", [])):
                return
            log.warning("Waiting for the %s/%s CRD to be served (%s)", GROUP, VERSION, status or body)
            await asyncio.sleep(interval)

    async def list_watches(self, namespace: str | None = None) -> AsyncIterator[Page]:
        """Every AirbyteJobWatch in `namespace` (None: all), one page of 500 at a time: 50,000
        whole objects held at once would be hundreds of MB, and the peak stays in the RSS."""
        where = f"namespaces/{namespace}/" if namespace else ""
        token = ""
        while True:
            query = f"?limit=500&continue={token}" if token else "?limit=500"
            status, body = await self._request("GET", f"/apis/{GROUP}/{VERSION}/{where}{PLURAL}{query}")
            if status == 410:
                raise Gone(f"listing {PLURAL}: the continue token expired")
            if status != 200 or not isinstance(body, dict):
                raise KubeError(f"listing {PLURAL} answered {status}: {_msg(body)}")
            meta = body.get("metadata") or {}
            yield Page(body.get("items") or [], str(meta.get("resourceVersion") or ""))
            token = meta.get("continue") or ""
            if not token:
                return

    # --- the calls --------------------------------------------------------------------------

    async def set_finalizer(
        self, namespace: str, name: str, finalizer: str, present: bool, uid: str | None = None
    ) -> bool:
        """Add or remove one finalizer with a JSON patch guarded by the object's uid and the list
        it read; False if the object is gone (or, with `uid`, replaced by another of the same
        name). A 409/422 (someone else changed the list) is retried on fresh data."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
        for _ in range(5):
            status, body = await self._request("GET", path)
            if status == 404:
                return False
            if status != 200 or not isinstance(body, dict):
                raise KubeError(f"reading {namespace}/{name} answered {status}: {_msg(body)}")
            meta = body.get("metadata") or {}
            if uid is not None and meta.get("uid") != uid:
                return False
            current = list(meta.get("finalizers") or [])
            if (finalizer in current) == present:
                return True
            wanted = [*current, finalizer] if present else [f for f in current if f != finalizer]
            ops = [
                {"op": "test", "path": "/metadata/uid", "value": meta.get("uid")},
                {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
                {"op": "add", "path": "/metadata/finalizers", "value": wanted},
            ]
            status, body = await self._request(
                "PATCH", path, body=ops, content_type="application/json-patch+json"
            )
            if status == 404:
                return False
            if status < 300:
                return True
            if status not in (409, 422):
                raise KubeError(f"finalizer patch of {namespace}/{name} answered {status}: {_msg(body)}")
        raise KubeError(f"finalizer patch of {namespace}/{name} kept conflicting")

    async def replace_status(self, namespace: str, name: str, uid: str, status: Mapping[str, Any]) -> bool:
        """Write the whole status subresource of the object with this `uid`; False if it is gone
        or another object now has its name.

        A JSON patch whose first op tests the uid: a merge patch of /status would silently
        ignore a uid in its metadata and land on a re-created object of the same name.
        """
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        ops = [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "add", "path": "/status", "value": status},
        ]
        code, body = await self._request(
            "PATCH", path, body=ops, content_type="application/json-patch+json", parse_success=False
        )
        if code == 404 or (code == 422 and _failed_test_op(body)):
            return False
        if code >= 300:
            raise KubeError(f"status patch of {namespace}/{name} answered {code}: {_msg(body)}")
        self.on_write("status_patch")
        return True

    async def post_event(
        self,
        obj: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
        now: datetime.datetime,
        name: str | None = None,
    ) -> bool:
        """A core/v1 Event about `obj` (its metadata); True if this call created it, False if
        it exists already or the API server refuses it for good (a 4xx, logged).

        With a `name`, posting the same Event twice creates it once (the API server answers
        409 to the copy). Raises KubeError when the API server could not be asked (5xx, 429 or
        no connection after the retries): the caller must not move on as if it were posted.
        """
        meta = obj["metadata"]
        stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": (
                {"name": name, "namespace": meta["namespace"]}
                if name
                else {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]}
            ),
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:EVENT_MESSAGE_LIMIT],
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance[:128],
            "action": "Watch",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        status, body = await self._request(
            "POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event, parse_success=False
        )
        if status >= 500 or status == 429:
            raise KubeError(f"posting event {reason} answered {status}: {_msg(body)}")
        if status == 409 and name:
            log.debug("Event %s for %s/%s exists already", reason, meta["namespace"], meta["name"])
            return False
        if not 200 <= status < 300:
            log.warning(
                "Could not post event %s for %s/%s: %s", reason, meta["namespace"], meta["name"], _msg(body)
            )
            return False
        self.on_write("event")
        return True

    async def read_event(self, namespace: str, name: str) -> dict[str, Any] | None:
        """An Event by name (its reason, message and type), None if there is none."""
        status, body = await self._request("GET", f"/api/v1/namespaces/{namespace}/events/{name}")
        if status == 404:
            return None
        if status != 200 or not isinstance(body, dict):
            raise KubeError(f"reading event {name} answered {status}: {_msg(body)}")
        return body

    async def read_data(
        self, resource: str, namespace: str, name: str
    ) -> tuple[int, Mapping[str, str] | None]:
        """(HTTP status, `data`) of a Secret or ConfigMap (`resource`) read by name in `namespace`;
        the data only on 200."""
        status, body = await self._request("GET", f"/api/v1/namespaces/{namespace}/{resource}/{name}")
        if status == 200 and isinstance(body, dict):
            return status, body.get("data") or {}
        return status, None


def _json_or(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _failed_test_op(body: Any) -> bool:
    """A 422 from a JSON patch whose `test` op failed carries no details, unlike a 422 from the
    schema, which names the object and the fields."""
    return not (isinstance(body, dict) and (body.get("details") or {}).get("causes"))


def _msg(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body.get("reason") or body)[:300]
    return str(body)[:300]
