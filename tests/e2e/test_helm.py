"""The Helm chart: lints, renders valid manifests for each kind of install, matches deploy/, and
installs, upgrades and uninstalls against the real API server with the real helm."""

from __future__ import annotations

import base64
import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import create_default_secret
from tests.support.cluster import OperatorProcess, apply, reasons, wait_for, watch_manifest
from tests.support.controlplane import ROOT, ControlPlane
from tests.support.fake_airbyte import RunningFake
from tests.support.helm import CHART, Helm

pytestmark = pytest.mark.cluster

# One value set per kind of install the chart supports.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"rbac": {"scope": "namespaced"}, "watchNamespaces": ["helm-team-a", "helm-team-b"]},
    "sharded": {"sharding": {"enabled": True, "shards": 3}},
    "single": {"replicas": 1, "leaderElection": {"enabled": False}},
    "monitoring": {"metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                               "dashboard": {"enabled": True}}},
    "webhook-cert-manager": {"webhook": {"certManager": {"enabled": True}}},
    "webhook-off": {"webhook": {"enabled": False}},
    "tuned": {
        "watchNamespaces": ["team-*"], "logFormat": "plain", "maxRequestsPerSecond": 20,
        "defaultServerSecret": "airbyte-prod", "concurrency": 8, "requestTimeout": 5,
        "image": {"repository": "registry.example/airbyte-watch", "tag": "1.2.3"},
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "192Mi"}},
    },
}  # fmt: skip
# The dry runs apply here: deploy/'s own objects in airbyte-watch (test_deploy) have other selectors.
RENDER_NAMESPACE = "helm-render"
# Kinds whose schemas come with the Prometheus Operator or cert-manager, not with Kubernetes.
PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"
CERT_MANAGER = "cert-manager.io/v1"


@pytest.fixture(scope="module")
def helm(control_plane: ControlPlane) -> Helm:
    for namespace in (RENDER_NAMESPACE, "helm-team-a", "helm-team-b"):
        control_plane.kubectl("create", "namespace", namespace, check=False)
    return Helm(control_plane)


def docs_of(rendered: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def by_kind(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_lints_strictly(helm: Helm, name: str) -> None:
    done = helm.run("lint", "--strict", str(CHART), "-f", helm.values_file(VALUE_SETS[name]), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_manifests_validate_and_the_server_accepts_them(
    control_plane: ControlPlane, helm: Helm, name: str, tmp_path: Path
) -> None:
    docs = docs_of(helm.template(VALUE_SETS[name], namespace=RENDER_NAMESPACE).stdout)
    kube = [d for d in docs if d["apiVersion"] not in (PROMETHEUS_OPERATOR, CERT_MANAGER)]
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(kube))
    validate = str(Path(sys.executable).parent / "kubernetes-validate")
    done = subprocess.run(
        [validate, "--strict", "-k", "1.36.0", str(rendered)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed for resource") == len(kube)
    dry = control_plane.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f",
                                str(rendered), check=False)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("(server dry run)") == len(kube)


def test_every_value_set_renders_what_it_asks_for(helm: Helm) -> None:
    def rendered(name: str) -> dict[tuple[str, str, str], dict[str, Any]]:
        return by_kind(docs_of(helm.template(VALUE_SETS[name]).stdout))

    default = rendered("default")
    kinds = {k[0] for k in default}
    assert kinds == {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                     "Role", "RoleBinding", "Deployment", "Service", "PodDisruptionBudget",
                     "Secret", "ValidatingWebhookConfiguration"}  # fmt: skip
    deployment = default[("Deployment", "airbyte-watch", "airbyte-watch")]
    assert deployment["spec"]["replicas"] == 2 and "--leader-elect" in container(deployment)["args"]
    single = rendered("single")
    assert not {"Role", "PodDisruptionBudget"} & {k[0] for k in single}, "one replica: no Lease, no budget"
    deployment = single[("Deployment", "airbyte-watch", "airbyte-watch")]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--leader-elect" not in container(deployment)["args"]
    namespaced = rendered("namespaced")
    assert not {"ClusterRole", "ClusterRoleBinding"} & {k[0] for k in namespaced}
    assert {(k[0], k[1]) for k in namespaced if k[0] in ("Role", "RoleBinding")} == {
        (kind, ns)
        for kind in ("Role", "RoleBinding")
        for ns in ("helm-team-a", "helm-team-b", "airbyte-watch")
    }
    args = container(namespaced[("Deployment", "airbyte-watch", "airbyte-watch")])["args"]
    assert {"--namespace=helm-team-a", "--namespace=helm-team-b"} <= set(args)
    assert "--all-namespaces" not in args
    sharded = rendered("sharded")
    sts = sharded[("StatefulSet", "airbyte-watch", "airbyte-watch")]
    assert "Deployment" not in {k[0] for k in sharded}
    # Two pods per shard, one acting per shard.
    assert sts["spec"]["replicas"] == 6 and {"--shard-count=3", "--leader-elect"} <= set(
        container(sts)["args"]
    )
    monitoring = rendered("monitoring")
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap"} <= {k[0] for k in monitoring}
    tuned = rendered("tuned")
    c = container(tuned[("Deployment", "airbyte-watch", "airbyte-watch")])
    assert c["image"] == "registry.example/airbyte-watch:1.2.3"
    assert set(c["args"]) >= {
        "--namespace=team-*", "--log-format=plain", "--max-requests-per-second=20",
        "--default-server-secret=airbyte-prod", "--concurrency=8", "--request-timeout=5",
    }  # fmt: skip
    # Helm merges maps: the default cpu limit stays unless set to null.
    assert c["resources"]["limits"] == {"cpu": "1", "memory": "192Mi"}
    # A namespace glob lists and watches the watches of all namespaces (the cluster role does
    # that); nothing more: no namespaces, no CRDs.
    rules = tuned[("ClusterRole", "", "airbyte-watch")]["rules"]
    verbs = {v for r in rules if r["resources"] == ["airbytejobwatches"] for v in r["verbs"]}
    assert {"list", "watch"} <= verbs
    assert not [r for r in rules if {"namespaces", "customresourcedefinitions"} & set(r["resources"])]


def test_the_cluster_admin_limits_the_urls_secrets_may_name(helm: Helm) -> None:
    out = helm.template({"allowedUrls": ["https://*.airbyte.internal", "https://api.airbyte.com/v1"],
                         "pollMode": "get"}).stdout  # fmt: skip
    args = [line.strip() for line in out.splitlines() if line.strip().startswith("- --")]
    assert "- --allowed-url=https://*.airbyte.internal" in args
    assert "- --allowed-url=https://api.airbyte.com/v1" in args and "- --poll-mode=get" in args
    default = helm.template({}).stdout
    assert "--allowed-url" not in default and "--poll-mode" not in default


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"logFormat": "xml"}, "logFormat"),
        ({"replicas": "two"}, "replicas"),
        ({"rbac": {"scope": "everywhere"}}, "rbac.scope"),
        ({"maxRequestsPerSecond": 0}, "maxRequestsPerSecond"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "watchNamespaces"),
        ({"imagePolicy": "Always"}, "imagePolicy"),
        ({"allowedUrls": ["169.254.169.254"]}, "allowedUrls"),
        ({"pollMode": "fast"}, "pollMode"),
        ({"webhook": {"timeoutSeconds": 60}}, "timeoutSeconds"),
        ({"webhook": {"certManager": {"issuerRef": {"kind": "Vault"}}}}, "kind"),
    ],
)
def test_a_bad_value_fails_naming_it(helm: Helm, values: dict[str, Any], named: str) -> None:
    done = helm.template(values, check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert named.split(".")[-1] in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rbac": {"scope": "namespaced"}}, "rbac.scope=namespaced needs watchNamespaces"),
        ({"leaderElection": {"enabled": False}}, "replicas > 1 needs leaderElection.enabled"),
        ({"sharding": {"enabled": True}, "leaderElection": {"enabled": False}}, "replicasPerShard > 1 needs"),
        (
            {"webhook": {"certManager": {"enabled": True, "issuerRef": {"kind": "ClusterIssuer"}}}},
            "webhook.certManager.issuerRef needs a name",
        ),
    ],
)
def test_combinations_that_cannot_work_fail(helm: Helm, values: dict[str, Any], message: str) -> None:
    done = helm.template(values, check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def container(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]["containers"][0]


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The object without what only says who installed it: labels, selectors, Helm's pull policy."""
    doc = copy.deepcopy(doc)
    doc["metadata"].pop("labels", None)
    spec = doc.get("spec") or {}
    spec.pop("selector", None)
    if "template" in spec:
        spec["template"]["metadata"].pop("labels", None)
        container(doc).pop("imagePullPolicy", None)
    return doc


def kustomized(plane: ControlPlane, folder: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    return by_kind(docs_of(plane.kubectl("kustomize", str(ROOT / folder)).stdout))


@pytest.mark.parametrize(
    ("values", "folder"),
    [
        ({"webhook": {"enabled": False}}, "deploy"),
        # kustomize cannot make a certificate: its webhook variant asks cert-manager for one.
        ({"webhook": {"certManager": {"enabled": True}}}, "deploy/webhook"),
    ],
)
def test_the_chart_renders_the_same_objects_as_kustomize(
    control_plane: ControlPlane, helm: Helm, values: dict[str, Any], folder: str
) -> None:
    kustomize = kustomized(control_plane, folder)
    charted = by_kind(docs_of(helm.template(values).stdout))
    # Helm installs into a namespace it is given (--create-namespace) rather than making one.
    assert {k for k in kustomize if k[0] != "Namespace"} == set(charted)
    for key, doc in charted.items():
        assert comparable(doc) == comparable(kustomize[key]), key
    # The chart's selectors carry the release too, and still select the pod template's labels.
    for key, doc in charted.items():
        selector = (doc["spec"].get("selector") or {}) if "spec" in doc else {}
        wanted = selector.get("matchLabels", selector) if key[0] != "CustomResourceDefinition" else {}
        if wanted and "template" in doc["spec"]:
            assert wanted.items() <= doc["spec"]["template"]["metadata"]["labels"].items()


WEBHOOK_CONFIG = ("ValidatingWebhookConfiguration", "", "airbyte-watch")
CERT_SECRET = ("Secret", "airbyte-watch", "airbyte-watch-webhook-cert")


def test_default_render_is_kustomizes_webhook_variant_but_for_who_makes_the_certificate(
    control_plane: ControlPlane, helm: Helm
) -> None:
    """The chart's default makes its own certificate where deploy/webhook asks cert-manager."""
    kustomize = kustomized(control_plane, "deploy/webhook")
    charted = by_kind(docs_of(helm.template({}).stdout))
    secret = charted.pop(CERT_SECRET)
    assert secret["type"] == "kubernetes.io/tls" and set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    kustomize.pop(("Issuer", "airbyte-watch", "airbyte-watch-webhook"))
    certificate = kustomize.pop(("Certificate", "airbyte-watch", "airbyte-watch-webhook"))
    assert certificate["spec"]["secretName"] == CERT_SECRET[2]
    assert charted[WEBHOOK_CONFIG]["webhooks"][0]["clientConfig"].pop("caBundle") == secret["data"]["ca.crt"]
    assert kustomize[WEBHOOK_CONFIG]["metadata"].pop("annotations") == {
        "cert-manager.io/inject-ca-from": "airbyte-watch/airbyte-watch-webhook"
    }
    assert {k for k in kustomize if k[0] != "Namespace"} == set(charted)
    for key, doc in charted.items():
        assert comparable(doc) == comparable(kustomize[key]), key


def test_the_webhook_every_replica_serves(helm: Helm) -> None:
    docs = by_kind(docs_of(helm.template({}).stdout))
    pod = docs[("Deployment", "airbyte-watch", "airbyte-watch")]["spec"]["template"]
    c = container({"spec": {"template": pod}})
    assert c["args"][-4:] == [
        "--webhook-port=9443", "--webhook-addr=0.0.0.0",
        "--webhook-cert=/etc/airbyte-watch/webhook/tls.crt",
        "--webhook-key=/etc/airbyte-watch/webhook/tls.key",
    ]  # fmt: skip
    assert {"name": "webhook", "containerPort": 9443} in c["ports"]
    assert c["volumeMounts"] == [{"name": "webhook-cert", "mountPath": "/etc/airbyte-watch/webhook",
                                  "readOnly": True}]  # fmt: skip
    assert pod["spec"]["volumes"] == [{"name": "webhook-cert", "secret": {"secretName": CERT_SECRET[2]}}]
    # The Service selects every operator pod (standbys too: admission is stateless, not led).
    service = docs[("Service", "airbyte-watch", "airbyte-watch-webhook")]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "webhook", "port": 443, "targetPort": "webhook"}]
    (hook,) = docs[WEBHOOK_CONFIG]["webhooks"]
    # Ignore: a down operator never blocks an apply.
    assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"] and hook["timeoutSeconds"] == 5
    assert hook["rules"] == [
        {"apiGroups": ["airbyte.watch"], "apiVersions": ["*"], "resources": ["airbytejobwatches"],
         "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}
    ]  # fmt: skip
    assert "namespaceSelector" not in hook, "all namespaces are watched"
    # Only a create or a changed spec is asked about (test_admission tries the expression).
    assert [c["name"] for c in hook["matchConditions"]] == ["new-or-changed-spec"]
    service_ref = hook["clientConfig"]["service"]
    assert service_ref == {"name": "airbyte-watch-webhook", "namespace": "airbyte-watch", "port": 443,
                           "path": service_ref["path"]}  # fmt: skip
    # kopf serves each admission handler at /<its id>.
    from airbyte_watch import handlers

    served = {f"/{h.id}" for h in handlers.admission._webhooks.get_all_handlers()}
    assert service_ref["path"] in served, served
    # The certificate names the Service and is signed by the CA the API server is given.
    secret = docs[CERT_SECRET]["data"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(hook["clientConfig"]["caBundle"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "airbyte-watch-webhook.airbyte-watch.svc" in names.get_values_for_type(x509.DNSName)
    key = serialization.load_pem_private_key(base64.b64decode(secret["tls.key"]), password=None)
    assert key.public_key() == cert.public_key()


def test_the_webhook_in_other_installs(helm: Helm) -> None:
    def rendered(values: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
        return by_kind(docs_of(helm.template(values).stdout))

    # Named namespaces: the webhook is asked about watches there only; a pattern cannot be a
    # label selector, so it is asked about all (and reviews what it is asked).
    (hook,) = rendered(VALUE_SETS["namespaced"])[WEBHOOK_CONFIG]["webhooks"]
    assert hook["namespaceSelector"] == {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["helm-team-a", "helm-team-b"]}
    ]}  # fmt: skip
    (hook,) = rendered(VALUE_SETS["tuned"])[WEBHOOK_CONFIG]["webhooks"]
    assert "namespaceSelector" not in hook
    # Every shard's pods serve it too.
    sts = rendered(VALUE_SETS["sharded"])[("StatefulSet", "airbyte-watch", "airbyte-watch")]
    assert "--webhook-port=9443" in container(sts)["args"]
    # Off: no webhook objects, flags, port or volume.
    off = rendered(VALUE_SETS["webhook-off"])
    assert not {"Secret", "ValidatingWebhookConfiguration"} & {k[0] for k in off}
    assert ("Service", "airbyte-watch", "airbyte-watch-webhook") not in off
    pod = off[("Deployment", "airbyte-watch", "airbyte-watch")]["spec"]["template"]["spec"]
    assert "volumes" not in pod and not [a for a in pod["containers"][0]["args"] if "webhook" in a]
    # cert-manager: a Certificate into the same Secret, from a self-signed Issuer or the user's.
    managed = rendered({"webhook": {"certManager": {"enabled": True}, "port": 10443, "timeoutSeconds": 2}})
    assert CERT_SECRET not in managed
    certificate = managed[("Certificate", "airbyte-watch", "airbyte-watch-webhook")]["spec"]
    assert certificate["secretName"] == CERT_SECRET[2]
    assert certificate["issuerRef"] == {
        "name": "airbyte-watch-webhook",
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    config = managed[WEBHOOK_CONFIG]
    assert config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "airbyte-watch/airbyte-watch-webhook"
    }
    assert (
        "caBundle" not in config["webhooks"][0]["clientConfig"]
        and config["webhooks"][0]["timeoutSeconds"] == 2
    )
    assert (
        "--webhook-port=10443" in container(managed[("Deployment", "airbyte-watch", "airbyte-watch")])["args"]
    )
    theirs = rendered(
        {"webhook": {"certManager": {"enabled": True, "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}}}
    )
    assert ("Issuer", "airbyte-watch", "airbyte-watch-webhook") not in theirs
    spec = theirs[("Certificate", "airbyte-watch", "airbyte-watch-webhook")]["spec"]
    assert spec["issuerRef"] == {"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


def test_the_chart_crd_is_the_crd() -> None:
    assert (CHART / "crds" / "airbytejobwatches.airbyte.watch.yaml").read_bytes() == (
        ROOT / "crds" / "airbytejobwatches.airbyte.watch.yaml"
    ).read_bytes()


def test_the_chart_alerts_are_deploy_monitoring_alerts(helm: Helm) -> None:
    charted = next(
        d for d in docs_of(helm.template(VALUE_SETS["monitoring"]).stdout) if d["kind"] == "PrometheusRule"
    )
    kustomized = yaml.safe_load((ROOT / "deploy" / "monitoring" / "prometheusrule.yaml").read_text())
    assert charted["spec"] == kustomized["spec"]


def webhook_certificate(plane: ControlPlane, namespace: str, name: str) -> dict[str, str]:
    """The installed webhook Secret's data; its CA is the webhook configuration's caBundle."""
    secret = yaml.safe_load(plane.kubectl("-n", namespace, "get", "secret", f"{name}-webhook-cert",
                                          "-o", "yaml").stdout)  # fmt: skip
    config = yaml.safe_load(plane.kubectl("get", "validatingwebhookconfiguration", name, "-o", "yaml").stdout)
    assert config["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    return secret["data"]


def test_install_upgrade_uninstall(control_plane: ControlPlane, helm: Helm) -> None:
    release, namespace = "aw", "helm-install"
    helm.run("install", release, str(CHART), "--namespace", namespace, "--create-namespace")
    name = "aw-airbyte-watch"
    try:
        deployment = control_plane.kubectl("-n", namespace, "get", "deployment", name, "-o", "yaml").stdout
        assert "--log-format=json" in container(yaml.safe_load(deployment))["args"]
        assert control_plane.kubectl("get", "clusterrole", name, check=False).returncode == 0
        certificate = webhook_certificate(control_plane, namespace, name)
        # A bad value is refused by the schema and leaves the release as it was.
        bad = helm.run("upgrade", release, str(CHART), "-n", namespace, "--set", "logFormat=xml", check=False)
        assert bad.returncode != 0 and "logFormat" in bad.stderr
        helm.run("upgrade", release, str(CHART), "-n", namespace, "--reuse-values",
                 "--set", "logFormat=plain", "--set", "rbac.scope=namespaced",
                 "--set", "watchNamespaces={helm-team-a}")  # fmt: skip
        deployment = control_plane.kubectl("-n", namespace, "get", "deployment", name, "-o", "yaml").stdout
        args = container(yaml.safe_load(deployment))["args"]
        assert "--log-format=plain" in args and "--namespace=helm-team-a" in args
        assert control_plane.kubectl("get", "clusterrole", name, check=False).returncode != 0
        assert control_plane.kubectl("-n", "helm-team-a", "get", "role", name, check=False).returncode == 0
        # The upgrade kept the chart's webhook certificate (lookup), and the caBundle with it.
        assert webhook_certificate(control_plane, namespace, name) == certificate
        history = helm.run("history", release, "-n", namespace, "-o", "yaml").stdout
        assert [h["status"] for h in yaml.safe_load(history)] == ["superseded", "deployed"]
    finally:
        helm.run("uninstall", release, "--namespace", namespace)
    assert control_plane.kubectl("-n", namespace, "get", "deployment", name, check=False).returncode != 0
    assert control_plane.kubectl("-n", "helm-team-a", "get", "role", name, check=False).returncode != 0
    assert control_plane.kubectl("get", "validatingwebhookconfiguration", name, check=False).returncode != 0
    # Helm never deletes a CRD from crds/: the watches in the cluster survive an uninstall.
    assert control_plane.kubectl("get", "crd", "airbytejobwatches.airbyte.watch", check=False).returncode == 0


def test_operator_works_with_only_the_charts_namespaced_rbac(
    control_plane: ControlPlane, helm: Helm, fake_airbyte: RunningFake, tmp_path: Path
) -> None:
    """The narrowest install: Roles in the watched namespace only, and the Lease's Role."""
    release, namespace, watched = "scoped", "helm-scoped", "helm-scoped-team"
    control_plane.kubectl("create", "namespace", watched)
    helm.run("install", release, str(CHART), "-n", namespace, "--create-namespace", "-f",
             helm.values_file({"rbac": {"scope": "namespaced"}, "watchNamespaces": [watched]}))  # fmt: skip
    try:
        token = control_plane.kubectl(
            "-n", namespace, "create", "token", "scoped-airbyte-watch"
        ).stdout.strip()
        config = yaml.safe_load(control_plane.kubeconfig.read_text())
        config["users"] = [{"name": "admin", "user": {"token": token}}]
        sa_plane = ControlPlane(folder=control_plane.folder)
        sa_plane.server, sa_plane.kubeconfig = control_plane.server, tmp_path / "kubeconfig"
        sa_plane.kubeconfig.write_text(yaml.safe_dump(config))
        create_default_secret(control_plane, watched, fake_airbyte.url)
        fake_airbyte.fake.add_job(77, [("running", 1), ("succeeded", None)])
        assert (
            apply(control_plane, watched, watch_manifest("w", {"jobId": 77, "pollInterval": "1s"})).returncode
            == 0
        )
        args = ["--namespace", watched, "--leader-elect", f"--leader-election-namespace={namespace}"]
        operator = OperatorProcess(sa_plane, tmp_path / "operator.log", args)
        operator.start()
        try:
            wait_for(control_plane, watched, "w", "condition=Ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\noperator output:\n{operator.output[-4000:]}") from None
        finally:
            operator.stop()
        assert reasons(control_plane, watched, "w") == ["JobRunning", "JobSucceeded"]
        lease = control_plane.kubectl("-n", namespace, "get", "lease", "airbyte-watch", "-o", "yaml").stdout
        assert yaml.safe_load(lease)["spec"]["leaseTransitions"] == 0
        assert "Traceback" not in operator.output
    finally:
        helm.run("uninstall", release, "-n", namespace)
