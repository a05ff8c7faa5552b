"""What the validating webhook says about a watch before the API server stores it.

A watch the operator could never run is refused with the field that is wrong: a spec that
`parse_spec` rejects (what the CRD schema cannot express), a Secret that exists but breaks its
rules, or one that names a URL `--allowed-url` does not allow. An object that does not exist
yet (the Secret, a `jobIdFrom` ConfigMap) only draws a warning: GitOps tools apply objects in
any order. Our own trouble (the API server does not answer, we may not read the Secret) admits
the watch with a warning: admission must never block `kubectl apply` for a reason the user
cannot fix. Airbyte is never called; the answer takes one or two reads of the API server.

Messages name keys and URLs, never credential values: every message is scrubbed of the Secret's
credential values, as the runtime scrubs what it writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..airbyte.server_config import InvalidSecret, decode_secret_data, parse_server_config
from ..core.spec import InvalidSpec, WatchSpec, parse_job_id, parse_spec
from ..core.text import MESSAGE_LIMIT, bound, clean
from ..kube.client import KubeClient, KubeError
from .connections import url_allowed

# The Secret keys whose values are credentials (ServerConfig.credential_values' keys).
CREDENTIAL_KEYS = ("clientSecret", "token", "password")
# One read may take this long: the client retries a failing API server for 15 s, the webhook
# waits 5 s (timeoutSeconds) and would then admit the watch without a word.
READ_TIMEOUT = 2.0


@dataclass(frozen=True)
class Review:
    refusal: str | None  # None: admit; else the message, naming the field
    warnings: tuple[str, ...]


async def review(
    kube: KubeClient,
    namespace: str,
    spec: Mapping[str, Any],
    *,
    default_server_secret: str,
    allowed_urls: Sequence[str],
) -> Review:
    """Admit, warn or refuse one watch's spec (for CREATE and UPDATE alike)."""
    try:
        parsed = parse_spec(spec, default_server_secret)
    except InvalidSpec as exc:
        return Review(bound(str(exc), MESSAGE_LIMIT), ())
    warnings: list[str] = []
    refusal = await _check_secret(kube, namespace, spec, parsed, allowed_urls, warnings)
    if refusal is None and parsed.job_id_from is not None:
        await _check_config_map(kube, namespace, parsed, warnings)
    return Review(refusal, tuple(warnings))


async def _read(
    kube: KubeClient, resource: str, namespace: str, name: str, where: str, warnings: list[str]
) -> Mapping[str, str] | None:
    """The object's data; None, with a warning, when it is missing or cannot be read."""
    try:
        status, data = await asyncio.wait_for(kube.read_data(resource, namespace, name), READ_TIMEOUT)
    except KubeError as exc:
        warnings.append(bound(f"{where} not checked: cannot read it ({exc})", MESSAGE_LIMIT))
        return None
    except TimeoutError:
        warnings.append(f"{where} not checked: the API server did not answer within {READ_TIMEOUT:g}s")
        return None
    if status == 404:
        warnings.append(f"{where} does not exist in namespace {namespace!r} yet; the watch waits for it")
        return None
    if status != 200 or data is None:
        why = "the operator may not read it" if status == 403 else f"reading it answered {status}"
        warnings.append(f"{where} not checked: {why}")
        return None
    return data


def _secret_field(spec: Mapping[str, Any], name: str) -> str:
    if isinstance(spec.get("serverRef"), Mapping) and spec["serverRef"].get("name"):
        return f"spec.serverRef.name: Secret {name!r}"
    return f"spec.serverRef (not set; the operator's default --server-secret): Secret {name!r}"


async def _check_secret(
    kube: KubeClient,
    namespace: str,
    spec: Mapping[str, Any],
    parsed: WatchSpec,
    allowed_urls: Sequence[str],
    warnings: list[str],
) -> str | None:
    name = parsed.server_secret
    where = _secret_field(spec, name)
    data = await _read(kube, "secrets", namespace, name, where, warnings)
    if data is None:
        return None
    try:
        values = decode_secret_data(data)
    except InvalidSecret as exc:
        return bound(f"{where}: {exc}", MESSAGE_LIMIT)  # names the key only
    secrets = [values[k] for k in CREDENTIAL_KEYS if values.get(k)]
    try:
        config = parse_server_config(values)
    except InvalidSecret as exc:
        return clean(f"{where}: {exc}", secrets, MESSAGE_LIMIT)
    if allowed_urls:
        for key, url in (("url", config.url), ("tokenUrl", config.token_url)):
            if url is not None and not url_allowed(url, allowed_urls):
                return clean(
                    f"{where}: key {key!r} names {url} which --allowed-url does not allow "
                    f"(allowed: {', '.join(allowed_urls)})",
                    secrets,
                    MESSAGE_LIMIT,
                )
    return None


async def _check_config_map(kube: KubeClient, namespace: str, parsed: WatchSpec, warnings: list[str]) -> None:
    assert parsed.job_id_from is not None
    name, key = parsed.job_id_from.config_map, parsed.job_id_from.key
    where = f"spec.jobIdFrom.configMapKeyRef: ConfigMap {name!r}"
    data = await _read(kube, "configmaps", namespace, name, where, warnings)
    if data is None:
        return
    if key not in data:
        warnings.append(f"{where} has no key {key!r} yet; the watch waits for it")
    else:
        try:
            parse_job_id(str(data[key]).strip(), field="jobIdFrom")
        except InvalidSpec:
            held = bound(repr(data[key]), 80)
            warnings.append(
                f"{where} key {key!r} holds {held}, not a job id; the watch waits until it holds one"
            )
