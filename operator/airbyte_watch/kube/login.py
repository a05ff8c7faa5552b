"""How the operator logs in to Kubernetes: kopf's vault (``@kopf.on.login``) and our own
KubeClient both call :func:`login`, and both log in again when the ``expiration`` it returns has
passed (or on a 401).

- In a pod (a service-account token file and ``$KUBERNETES_SERVICE_HOST``): the token FILE is read
  on every call. The kubelet rotates bound service-account tokens in place, and kopf's own
  ``login_with_service_account`` reads the file once and sets no expiration, so a long-lived
  operator keeps the first token until a 401 (kopf issue #926). Here ``expiration`` is a minute
  ahead, or the token's own ``exp`` claim if that is sooner, so the rotated token is picked up.
- Outside: kopf's ``login_via_client``, i.e. the official ``kubernetes`` client's kubeconfig
  loading, so exec plugins (EKS, GKE, AKS) and OIDC work. ``login_via_client`` sets no
  ``expiration``. The client keeps the exec plugin's ``expirationTimestamp`` (and an auth
  provider's expiry) on its kubeconfig loader, which the configuration's refresh hook closes
  over; we copy it into ``expiration``. If that cannot be read and the kubeconfig's user is an
  exec plugin or an auth provider, ``expiration`` is a conservative minute ahead. Static tokens
  and client certificates get none: they do not expire on their own.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import inspect
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kopf

log = logging.getLogger(__name__)

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# How long one read of the token file is used: the kubelet rewrites it well before it expires
# (at 80% of its life, an hour at the shortest), so a minute picks up every rotation in time.
TOKEN_REREAD = datetime.timedelta(minutes=1)
# A token whose exp claim has passed is useless anyway; do not log in again more often than this.
MIN_LIFETIME = datetime.timedelta(seconds=5)
# An exec plugin's or auth provider's credential whose expiry we could not read.
UNKNOWN_EXPIRY_LIFETIME = datetime.timedelta(minutes=1)


def login(
    *,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    settings: kopf.OperatorSettings | None = None,
    service_account: Path = SERVICE_ACCOUNT,
    environ: Mapping[str, str] | None = None,
    **_: Any,
) -> kopf.ConnectionInfo:
    """Log in as kopf's login handlers do (kopf passes logger, settings, ...; all optional here).

    `service_account` and `environ` are for tests: the service-account folder and the
    environment that say whether this runs in a pod.
    """
    logger = logger or log
    settings = settings or kopf.OperatorSettings()
    environ = os.environ if environ is None else environ
    if (service_account / "token").is_file() and environ.get("KUBERNETES_SERVICE_HOST"):
        return _in_pod(service_account, environ, settings, logger)
    return _via_kubeconfig(settings, logger)


def _in_pod(
    folder: Path, environ: Mapping[str, str], settings: kopf.OperatorSettings, logger: Any
) -> kopf.ConnectionInfo:
    token = (folder / "token").read_text().strip()
    if not token:
        raise kopf.LoginError(f"the service-account token file {folder / 'token'} is empty")
    host = environ["KUBERNETES_SERVICE_HOST"]
    port = environ.get("KUBERNETES_SERVICE_PORT") or "443"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    now = datetime.datetime.now(datetime.UTC)
    expiration = now + TOKEN_REREAD
    exp = token_expiry(token)
    if exp is not None:
        expiration = max(min(expiration, exp), now + MIN_LIFETIME)
    ca = folder / "ca.crt"
    namespace = folder / "namespace"
    logger.debug(f"Logged in with the service-account token; reading it again at {expiration:%H:%M:%S}.")
    return kopf.ConnectionInfo(
        server=f"https://{host}:{port}",
        ca_path=str(ca) if ca.is_file() else None,
        token=token,
        default_namespace=(namespace.read_text().strip() or None) if namespace.is_file() else None,
        trust_env=settings.networking.trust_env,
        expiration=expiration,
    )


def token_expiry(token: str) -> datetime.datetime | None:
    """The exp claim of a JWT (unverified: only to know when to read the file again)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.datetime.fromtimestamp(float(claims["exp"]), datetime.UTC)
    except (IndexError, KeyError, TypeError, ValueError, OverflowError, OSError, binascii.Error):
        return None


def _via_kubeconfig(settings: kopf.OperatorSettings, logger: Any) -> kopf.ConnectionInfo:
    info = kopf.login_via_client(logger=logger, settings=settings)
    if info is None:  # the kubernetes package is missing
        raise kopf.LoginError("no Kubernetes credentials: not in a pod, and no kubernetes client")
    anonymous = not (info.token or info.username or info.certificate_path or info.certificate_data)
    if anonymous and _user_needs_refresh():
        # The client only logs a failed exec plugin; an anonymous login would get 403s, not 401s.
        raise kopf.LoginError("the kubeconfig's exec plugin or auth provider gave no credentials")
    if info.expiration is not None:  # a future kopf may set it itself
        return info
    loader = _client_loader()
    if loader is not None:
        expiration = _aware(getattr(loader, "expiry", None))  # None: the credentials do not expire
    elif _user_needs_refresh():
        expiration = datetime.datetime.now(datetime.UTC) + UNKNOWN_EXPIRY_LIFETIME
    else:
        expiration = None
    if expiration is not None:
        logger.debug(f"Logged in via kubeconfig; the credentials expire at {expiration:%H:%M:%S}.")
    return dataclasses.replace(info, expiration=expiration)


def _client_loader() -> Any:
    """The KubeConfigLoader behind the kubernetes client's default configuration, if found.

    `load_kube_config` keeps the credentials' expiry on its loader (`expiry`: the exec plugin's
    `expirationTimestamp`, or the auth provider's), not on the configuration; the
    configuration's refresh hook is a closure over that loader.
    """
    import kubernetes.client

    hook = kubernetes.client.Configuration.get_default().refresh_api_key_hook
    if hook is None:
        return None
    try:
        loader = inspect.getclosurevars(hook).nonlocals.get("self")
    except (TypeError, ValueError):
        return None
    return loader if type(loader).__name__ == "KubeConfigLoader" else None


def _aware(expiry: object) -> datetime.datetime | None:
    if not isinstance(expiry, datetime.datetime):
        return None
    return expiry if expiry.tzinfo else expiry.replace(tzinfo=datetime.UTC)


def _user_needs_refresh() -> bool:
    """Whether the kubeconfig's current user runs an exec plugin or an auth provider."""
    from kubernetes.config import kube_config

    try:
        loader = kube_config._get_kube_config_loader(filename=kube_config.KUBE_CONFIG_DEFAULT_LOCATION)
        user = loader._user
    except Exception:  # only a hint: the login itself has already succeeded
        return False
    return user is not None and ("exec" in user or "auth-provider" in user)
