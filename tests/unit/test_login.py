"""kube/login.py: in a pod the token file is read on every login and the login expires in a
minute (or at the token's exp); outside, the kubeconfig through the official client, with the
exec plugin's expirationTimestamp as the login's expiration."""

from __future__ import annotations

import base64
import datetime
import json
import logging
import sys
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from airbyte_watch.kube import login as login_module
from airbyte_watch.kube.login import login, token_expiry
from kubernetes.config import kube_config

POD_ENV = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
SERVER = "https://127.0.0.1:6443"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def jwt(**claims: Any) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


@pytest.fixture
def service_account(tmp_path: Path) -> Path:
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text("first-token\n")
    (folder / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (folder / "namespace").write_text("airbyte-watch")
    return folder


def test_in_a_pod_the_token_file_is_read_again_on_every_login(service_account: Path) -> None:
    first = login(service_account=service_account, environ=POD_ENV)
    assert (first.server, first.token) == ("https://10.0.0.1:6443", "first-token")
    assert first.ca_path == str(service_account / "ca.crt")
    assert first.default_namespace == "airbyte-watch"
    (service_account / "token").write_text("rotated-token")  # as the kubelet does
    second = login(service_account=service_account, environ=POD_ENV)
    assert second.token == "rotated-token"
    assert second.as_http_headers() == {"Authorization": "Bearer rotated-token"}


def test_in_a_pod_the_login_expires_within_a_minute(service_account: Path) -> None:
    before = now()
    info = login(service_account=service_account, environ=POD_ENV)  # an opaque token: no exp
    assert info.expiration is not None
    minute = datetime.timedelta(seconds=60)
    assert before + minute - datetime.timedelta(seconds=1) <= info.expiration <= now() + minute


def test_in_a_pod_a_sooner_exp_claim_wins_and_a_later_one_does_not(service_account: Path) -> None:
    soon = int(now().timestamp()) + 20
    (service_account / "token").write_text(jwt(exp=soon, sub="system:serviceaccount:x:y"))
    info = login(service_account=service_account, environ=POD_ENV)
    assert info.expiration == datetime.datetime.fromtimestamp(soon, datetime.UTC)
    (service_account / "token").write_text(jwt(exp=int(now().timestamp()) + 3600))
    info = login(service_account=service_account, environ=POD_ENV)
    assert info.expiration is not None and info.expiration <= now() + datetime.timedelta(seconds=60)
    # A token already past its exp: read again in a few seconds, not in a busy loop.
    (service_account / "token").write_text(jwt(exp=int(now().timestamp()) - 10))
    info = login(service_account=service_account, environ=POD_ENV)
    assert info.expiration is not None and info.expiration >= now() + datetime.timedelta(seconds=4)


def test_token_expiry_reads_only_well_formed_exp_claims() -> None:
    exp = 1_700_000_000
    assert token_expiry(jwt(exp=exp)) == datetime.datetime.fromtimestamp(exp, datetime.UTC)
    for token in ("opaque", jwt(sub="no-exp"), jwt(exp="soon"), "a.!!!.c", "a.e30.c"):
        assert token_expiry(token) is None, token


def test_in_a_pod_an_ipv6_service_host_is_bracketed(service_account: Path) -> None:
    info = login(service_account=service_account, environ={"KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert info.server == "https://[fd00::1]:443"


def test_in_a_pod_an_empty_token_file_is_a_login_error(service_account: Path) -> None:
    (service_account / "token").write_text("")
    with pytest.raises(kopf.LoginError):
        login(service_account=service_account, environ=POD_ENV)


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig file that the kubernetes client loads as $KUBECONFIG would make it.

    The client reads $KUBECONFIG once, at import, into KUBE_CONFIG_DEFAULT_LOCATION.
    """
    path = tmp_path / "kubeconfig"
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # as on a laptop, in any CI
    return path


def write_kubeconfig(path: Path, user: dict[str, Any]) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": SERVER, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )


def exec_plugin(tmp_path: Path, expires_in: float | None) -> tuple[dict[str, Any], Path]:
    """An exec user running a script that prints a new token each run and counts its runs."""
    counter = tmp_path / "runs"
    script = tmp_path / "plugin.py"
    script.write_text(
        f"""\
import datetime, json, pathlib
counter = pathlib.Path({str(counter)!r})
with counter.open("a") as f:
    f.write("run\\n")
status = {{"token": f"exec-token-{{len(counter.read_text().splitlines())}}"}}
expires_in = {expires_in!r}
if expires_in is not None:
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=expires_in)
    status["expirationTimestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": status}}))
"""
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(script)],
            "interactiveMode": "Never",
        }
    }
    return user, counter


def test_without_a_token_file_the_kubeconfig_is_used(
    kubeconfig: Path, service_account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_kubeconfig(kubeconfig, {"token": "static-token"})
    (service_account / "token").unlink()
    info = login(service_account=service_account, environ=POD_ENV)
    assert (info.server, info.token, info.insecure) == (SERVER, "static-token", True)
    assert info.expiration is None  # a static token does not expire on its own
    # Called as KubeClient calls it (no kwargs), and as kopf calls a login handler.
    assert login().token == "static-token"
    kwargs = {"logger": logging.getLogger("kopf.test"), "settings": kopf.OperatorSettings()}
    assert login(**kwargs, retry=0, started=now(), runtime=datetime.timedelta(0), memo=None).token


def test_an_exec_plugin_login_expires_when_the_plugin_said(kubeconfig: Path, tmp_path: Path) -> None:
    user, counter = exec_plugin(tmp_path, expires_in=30)
    write_kubeconfig(kubeconfig, user)
    before = now()
    info = login()
    assert info.token is not None and info.token.startswith("exec-token-")
    assert info.expiration is not None
    # expirationTimestamp has whole seconds.
    lead = (info.expiration - before).total_seconds()
    assert 28 <= lead <= 31, lead
    runs = len(counter.read_text().splitlines())
    again = login()  # as kopf and KubeClient do once the expiration has passed
    assert len(counter.read_text().splitlines()) > runs
    assert again.token != info.token


def test_an_exec_plugin_without_expiry_gives_a_login_without_expiration(
    kubeconfig: Path, tmp_path: Path
) -> None:
    user, _ = exec_plugin(tmp_path, expires_in=None)
    write_kubeconfig(kubeconfig, user)
    info = login()
    assert info.token == "exec-token-1" and info.expiration is None  # client-go: valid until a 401


def test_an_exec_plugin_whose_expiry_cannot_be_read_expires_in_a_minute(
    kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback, if a kubernetes client release no longer keeps the loader reachable."""
    monkeypatch.setattr(login_module, "_client_loader", lambda: None)
    user, _ = exec_plugin(tmp_path, expires_in=3600)
    write_kubeconfig(kubeconfig, user)
    info = login()
    assert info.expiration is not None
    assert info.expiration <= now() + datetime.timedelta(seconds=60)
    write_kubeconfig(kubeconfig, {"token": "static-token"})
    assert login().expiration is None  # the fallback is for exec and auth-provider users only


def test_a_failing_exec_plugin_is_a_login_error(kubeconfig: Path, tmp_path: Path) -> None:
    """The client only logs the plugin's failure; an anonymous login would meet 403s, not 401s."""
    user, _ = exec_plugin(tmp_path, expires_in=30)
    user["exec"]["args"] = ["-c", "import sys; sys.exit('no cloud session')"]
    write_kubeconfig(kubeconfig, user)
    with pytest.raises(kopf.LoginError):
        login()
