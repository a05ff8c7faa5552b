"""The Airbyte connection Secret, parsed and checked. Values never leave this object in text form."""

from __future__ import annotations

import base64
import functools
import hashlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit


class InvalidSecret(ValueError):
    """The Secret cannot be used; the message names the key, never its value."""


@dataclass(frozen=True)
class ServerConfig:
    url: str  # API base without a trailing slash, e.g. https://api.airbyte.com/v1
    token_url: str | None = None
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ca_bundle: str | None = field(default=None, repr=False)
    insecure_skip_tls_verify: bool = False
    api: str = "public"

    @property
    def auth_kind(self) -> str:
        if self.client_id:
            return "clientCredentials"
        if self.token:
            return "token"
        if self.username:
            return "basic"
        return "none"

    def credential_values(self) -> tuple[str, ...]:
        """The values that must never be written anywhere (logs, status, Events)."""
        values = (self.client_secret, self.token, self.password)
        return tuple(v for v in values if v)

    @property
    def token_endpoint(self) -> str:
        return self.token_url or f"{self.url}/applications/token"

    @functools.cached_property
    def key(self) -> str:
        """Identifies one server + credentials, for sharing sessions and tokens; a hash, not a secret."""
        digest = hashlib.sha256()
        for part in (
            self.url,
            self.token_url,
            self.client_id,
            self.client_secret,
            self.token,
            self.username,
            self.password,
            self.ca_bundle,
            str(self.insecure_skip_tls_verify),
            self.api,
        ):
            digest.update((part or "").encode() + b"\0")
        return digest.hexdigest()[:16]

    @functools.cached_property
    def host(self) -> str:
        """The server's host:port, a bounded label for metrics and logs."""
        return urlsplit(self.url).netloc


def decode_secret_data(data: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (data or {}).items():
        try:
            out[key] = base64.b64decode(value, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise InvalidSecret(f"key {key!r} is not valid base64-encoded UTF-8") from None
    return out


def _check_url(key: str, raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSecret(f"key {key!r} must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidSecret(
            f"key {key!r} must not carry credentials; use clientId/clientSecret, token or "
            "username/password keys"
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))


def parse_server_config(values: Mapping[str, str]) -> ServerConfig:
    """A ServerConfig from the Secret's decoded keys, or InvalidSecret naming the problem."""
    if not values.get("url"):
        raise InvalidSecret("key 'url' is missing (the Airbyte API base URL)")
    url = _check_url("url", values["url"])
    token_url = _check_url("tokenUrl", values["tokenUrl"]) if values.get("tokenUrl") else None
    schemes = [
        name
        for name, keys in (
            ("clientId/clientSecret", ("clientId", "clientSecret")),
            ("token", ("token",)),
            ("username/password", ("username", "password")),
        )
        if any(values.get(k) for k in keys)
    ]
    if len(schemes) > 1:
        raise InvalidSecret(f"keys {' and '.join(schemes)} are both set; use one way to log in")
    if values.get("clientId") and not values.get("clientSecret"):
        raise InvalidSecret("key 'clientId' is set without 'clientSecret'")
    if values.get("clientSecret") and not values.get("clientId"):
        raise InvalidSecret("key 'clientSecret' is set without 'clientId'")
    if values.get("username") and not values.get("password"):
        raise InvalidSecret("key 'username' is set without 'password'")
    if values.get("password") and not values.get("username"):
        raise InvalidSecret("key 'password' is set without 'username'")
    ca_bundle = values.get("caBundle") or None
    if ca_bundle is not None:
        if "-----BEGIN CERTIFICATE-----" not in ca_bundle:
            raise InvalidSecret("key 'caBundle' is not a PEM certificate bundle")
        try:
            ssl.create_default_context(cadata=ca_bundle)
        except (ssl.SSLError, ValueError):
            raise InvalidSecret("key 'caBundle' holds no loadable PEM certificate") from None
    insecure = values.get("insecureSkipTLSVerify", "false").strip().lower()
    if insecure not in ("true", "false", ""):
        raise InvalidSecret('key \'insecureSkipTLSVerify\' must be "true" or "false"')
    api = values.get("api", "public").strip() or "public"
    if api not in ("public", "config"):
        raise InvalidSecret(f'key \'api\' is {api!r}; use "public" (default) or "config"')
    return ServerConfig(
        url=url,
        token_url=token_url,
        client_id=values.get("clientId") or None,
        client_secret=values.get("clientSecret") or None,
        token=values.get("token") or None,
        username=values.get("username") or None,
        password=values.get("password") or None,
        ca_bundle=ca_bundle,
        insecure_skip_tls_verify=insecure == "true",
        api=api,
    )
