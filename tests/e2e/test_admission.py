"""The validating webhook, called by the real kube-apiserver: `kubectl apply` of a watch that can
never work fails with the message naming the field, one whose Secret is not there yet is created
with a `Warning:`, and with the operator killed `kubectl apply` still works (failurePolicy Ignore).

The operator runs on this machine with `--webhook-managed`: kopf serves HTTPS on localhost and
creates the ValidatingWebhookConfiguration pointing at it (as in development and the demo; the
chart brings its own configuration and certificate, tests/e2e/test_helm.py).
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import OperatorProcess, apply, eventually, watch_manifest
from tests.support.controlplane import ROOT, ControlPlane, free_port
from tests.support.webhook import kopf_cannot_make_certificates, self_signed

pytestmark = pytest.mark.cluster

CONFIG = "airbyte-watch-test.airbyte.watch"  # the webhook configuration kopf manages
ALLOWED = "https://airbyte.allowed.example"
SENTINEL = "SENTINEL-admission-5e1f"  # a credential value that must appear nowhere
WEBHOOK_YAML = ROOT / "deploy" / "webhook" / "webhook.yaml"  # the chart's, as test_helm compares
CONFIG_KIND = "ValidatingWebhookConfiguration"


@dataclass
class Webhook:
    plane: ControlPlane
    folder: Path
    port: int = field(default_factory=free_port)
    proc: OperatorProcess | None = None
    cert_args: list[str] = field(default_factory=list)

    def running(self) -> OperatorProcess:
        """The operator serving the webhook, started (again) if it is not running."""
        if self.proc is not None and self.proc.proc is not None and self.proc.proc.poll() is None:
            return self.proc
        args = ["--namespace", "adm-*", "--webhook-port", str(self.port), "--webhook-host", "localhost",
                "--webhook-managed", CONFIG, f"--allowed-url={ALLOWED}", *self.cert_args]  # fmt: skip
        self.proc = OperatorProcess(self.plane, self.folder / "operator.log", args)
        self.proc.start()
        try:
            eventually(self._serving, timeout=30, interval=0.1)
        except AssertionError:
            raise AssertionError(f"the webhook never served:\n{self.proc.output[-4000:]}") from None
        return self.proc

    def _serving(self) -> bool:
        """kopf has written the configuration for this process's port, and the port answers TLS."""
        config = self.config()
        urls = [h["clientConfig"].get("url", "") for h in (config or {}).get("webhooks", [])]
        if not any(f"localhost:{self.port}/" in u for u in urls):
            return False
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            with (
                socket.create_connection(("localhost", self.port), timeout=1) as raw,
                context.wrap_socket(raw, server_hostname="localhost"),
            ):
                return True
        except OSError:
            return False

    def config(self) -> dict[str, Any] | None:
        done = self.plane.kubectl("get", "validatingwebhookconfiguration", CONFIG, "-o", "json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None


@pytest.fixture(scope="module")
def webhook(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    folder = tmp_path_factory.mktemp("admission")
    hook = Webhook(control_plane, folder)
    why = kopf_cannot_make_certificates()
    if why is not None:
        print(f"kopf's self-signed certificate cannot be made here ({why}); the test makes one")
        hook.cert_args = self_signed(folder)
    hook.running()
    try:
        yield hook
    finally:
        if hook.proc is not None:
            hook.proc.stop()
            assert SENTINEL not in hook.proc.output, "a credential value reached the operator's log"
        # kopf removes its configurations when it stops; not when it was killed.
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            control_plane.kubectl("delete", kind, CONFIG, "--ignore-not-found")


@pytest.fixture
def ns(control_plane: ControlPlane, webhook: Webhook) -> str:
    webhook.running()
    name = f"adm-{secrets.token_hex(4)}"
    control_plane.kubectl("create", "namespace", name)
    return name


def secret(plane: ControlPlane, ns: str, name: str, **values: str) -> None:
    plane.kubectl("-n", ns, "create", "secret", "generic", name,
                  *(f"--from-literal={k}={v}" for k, v in values.items()))  # fmt: skip


def exists(plane: ControlPlane, ns: str, name: str) -> bool:
    return plane.kubectl("-n", ns, "get", "airbytejobwatch", name, check=False).returncode == 0


def test_a_watch_whose_secret_names_a_url_outside_allowed_url_is_refused(
    control_plane: ControlPlane, ns: str
) -> None:
    # The credential pasted into the url too: the message names the url, without it.
    secret(control_plane, ns, "evil", url=f"https://evil.example/v1?key={SENTINEL}", clientId="id",
           clientSecret=SENTINEL)  # fmt: skip
    started = time.monotonic()
    done = apply(control_plane, ns, watch_manifest("w", {"jobId": 1, "serverRef": {"name": "evil"}}))
    took = time.monotonic() - started
    assert done.returncode != 0
    assert (
        'admission webhook "airbytejobwatch.airbyte-watch-test.airbyte.watch" denied the request'
        in done.stderr
    )
    assert (
        "spec.serverRef.name: Secret 'evil': key 'url' names https://evil.example/v1?key=[redacted] which "
        f"--allowed-url does not allow (allowed: {ALLOWED})" in done.stderr
    ), done.stderr
    assert SENTINEL not in done.stdout + done.stderr
    assert not exists(control_plane, ns, "w")
    assert took < 5, f"kubectl apply took {took:.1f} s"


def test_a_secret_that_breaks_its_rules_is_refused(control_plane: ControlPlane, ns: str) -> None:
    secret(control_plane, ns, "no-url", token=SENTINEL)
    secret(control_plane, ns, "two-logins", url=f"{ALLOWED}/v1", token=SENTINEL, username="u",
           password=SENTINEL)  # fmt: skip
    for name, says in [("no-url", "key 'url' is missing"), ("two-logins", "use one way to log in")]:
        done = apply(control_plane, ns, watch_manifest(name, {"jobId": 1, "serverRef": {"name": name}}))
        assert done.returncode != 0
        assert f"denied the request: spec.serverRef.name: Secret {name!r}: " in done.stderr, done.stderr
        assert says in done.stderr and SENTINEL not in done.stderr
        assert not exists(control_plane, ns, name)


def test_a_good_watch_is_admitted_without_a_word(control_plane: ControlPlane, ns: str) -> None:
    secret(control_plane, ns, "airbyte", url=f"{ALLOWED}/v1", clientId="id", clientSecret=SENTINEL)
    done = apply(control_plane, ns, watch_manifest("w", {"jobId": 1, "serverRef": {"name": "airbyte"}}))
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and exists(control_plane, ns, "w")


def test_a_missing_secret_or_config_map_is_admitted_with_a_warning(
    control_plane: ControlPlane, ns: str
) -> None:
    done = apply(control_plane, ns, watch_manifest("w", {
        "jobIdFrom": {"configMapKeyRef": {"name": "ids", "key": "jobId"}}, "serverRef": {"name": "later"},
    }))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert exists(control_plane, ns, "w")
    warnings = [line for line in done.stderr.splitlines() if line.startswith("Warning: ")]
    assert warnings == [
        f"Warning: spec.serverRef.name: Secret 'later' does not exist in namespace '{ns}' yet; "
        "the watch waits for it",
        f"Warning: spec.jobIdFrom.configMapKeyRef: ConfigMap 'ids' does not exist in namespace '{ns}' yet; "
        "the watch waits for it",
    ], done.stderr


def test_an_update_is_reviewed_too(control_plane: ControlPlane, ns: str) -> None:
    """The Secret moved to a URL no longer allowed: the next edit of the watch is refused."""
    secret(control_plane, ns, "airbyte", url=f"{ALLOWED}/v1", token=SENTINEL)
    manifest = watch_manifest("w", {"jobId": 1, "serverRef": {"name": "airbyte"}})
    assert apply(control_plane, ns, manifest).returncode == 0
    control_plane.kubectl("-n", ns, "delete", "secret", "airbyte")
    secret(control_plane, ns, "airbyte", url="http://169.254.169.254/latest", token=SENTINEL)
    edited = watch_manifest("w", {"jobId": 1, "serverRef": {"name": "airbyte"}, "pollInterval": "1m"})
    done = apply(control_plane, ns, edited)
    assert done.returncode != 0
    assert "key 'url' names http://169.254.169.254/latest which --allowed-url does not allow" in done.stderr


def test_the_shipped_match_conditions_leave_alone_what_does_not_change_the_spec(
    control_plane: ControlPlane, ns: str, webhook: Webhook
) -> None:
    """A label, or the operator's own finalizer patch on a deleted watch, must not be refused
    because the Secret went bad since: the chart's (and deploy/webhook's) matchConditions send
    the API server's question only for a create or a changed spec. Tried here on kopf's
    configuration, which has none of its own."""
    shipped = next(d for d in yaml.safe_load_all(WEBHOOK_YAML.read_text()) if d["kind"] == CONFIG_KIND)
    conditions = shipped["webhooks"][0]["matchConditions"]
    secret(control_plane, ns, "airbyte", url=f"{ALLOWED}/v1", token=SENTINEL)
    for name in ("w", "v"):
        manifest = watch_manifest(name, {"jobId": 1, "serverRef": {"name": "airbyte"}})
        assert apply(control_plane, ns, manifest).returncode == 0
    control_plane.kubectl("-n", ns, "delete", "secret", "airbyte")
    secret(control_plane, ns, "airbyte", url="http://169.254.169.254/latest", token=SENTINEL)
    patch = [{"op": "add", "path": "/webhooks/0/matchConditions", "value": conditions}]
    control_plane.kubectl(
        "patch", "validatingwebhookconfiguration", CONFIG, "--type=json", "-p", json.dumps(patch)
    )
    try:
        label = control_plane.kubectl("-n", ns, "label", "ajw", "w", "team=a", check=False)
        assert label.returncode == 0, label.stderr
        finalizer = '{"metadata":{"finalizers":["airbyte.watch/cancel-on-delete"]}}'
        control_plane.kubectl("-n", ns, "patch", "ajw", "w", "--type=merge", "-p", finalizer)
        control_plane.kubectl("-n", ns, "delete", "ajw", "w", "--wait=false")
        released = control_plane.kubectl("-n", ns, "patch", "ajw", "w", "--type=merge", "-p",
                                         '{"metadata":{"finalizers":null}}', check=False)  # fmt: skip
        assert released.returncode == 0, released.stderr
        assert eventually(lambda: not exists(control_plane, ns, "w"), timeout=10)
        # A changed spec is still asked about, and refused.
        edited = watch_manifest("v", {"jobId": 1, "serverRef": {"name": "airbyte"}, "pollInterval": "1m"})
        done = apply(control_plane, ns, edited)
        assert done.returncode != 0 and "--allowed-url does not allow" in done.stderr, done.stderr
    finally:
        undo = [{"op": "remove", "path": "/webhooks/0/matchConditions"}]
        control_plane.kubectl("patch", "validatingwebhookconfiguration", CONFIG, "--type=json", "-p",
                              json.dumps(undo), check=False)  # fmt: skip


def test_with_the_webhook_down_apply_still_works(
    control_plane: ControlPlane, ns: str, webhook: Webhook
) -> None:
    secret(control_plane, ns, "evil", url="https://evil.example/v1", token=SENTINEL)
    refused = apply(control_plane, ns, watch_manifest("before", {"jobId": 1, "serverRef": {"name": "evil"}}))
    assert refused.returncode != 0, "the webhook was not serving to begin with"
    webhook.running().kill()  # SIGKILL: kopf cannot remove its configuration
    config = webhook.config()
    assert config is not None, "the configuration went with the process: nothing was tested"
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Ignore" and f"localhost:{webhook.port}/" in hook["clientConfig"]["url"]
    started = time.monotonic()
    done = apply(control_plane, ns, watch_manifest("after", {"jobId": 1, "serverRef": {"name": "evil"}}))
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert exists(control_plane, ns, "after")
    assert took < 5, f"kubectl apply took {took:.1f} s with the webhook down"
