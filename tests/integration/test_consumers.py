"""What kstatus/Flux, Flux's CEL health checks, Argo Workflows and Argo CD conclude from every
status the operator can write, each by running that consumer's own code or script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa
import pytest
import yaml

from tests.support import consumers
from tests.support.controlplane import ROOT
from tests.support.states import STATES

ARGOCD = ROOT / "deploy" / "argocd" / "airbyte.watch" / "AirbyteJobWatch"
EXAMPLES = ROOT / "deploy" / "examples"

# State -> (kstatus, Argo Workflows, Argo CD health).
EXPECTED: dict[str, tuple[str, str, str]] = {
    "fresh": ("InProgress", "waiting", "Progressing"),
    "pending": ("InProgress", "waiting", "Progressing"),
    "queued": ("InProgress", "waiting", "Progressing"),
    "running": ("InProgress", "waiting", "Progressing"),
    "incomplete": ("InProgress", "waiting", "Progressing"),
    "retrying": ("InProgress", "waiting", "Progressing"),
    "unknown-status-waiting": ("InProgress", "waiting", "Progressing"),
    "succeeded": ("Current", "succeeded", "Healthy"),
    "failed": ("Failed", "failed", "Degraded"),
    "cancelled": ("Failed", "failed", "Degraded"),
    "unknown-status": ("Failed", "failed", "Degraded"),
    "not-found": ("Failed", "failed", "Degraded"),
    "timed-out": ("Failed", "failed", "Degraded"),
    "too-few-rows": ("Failed", "failed", "Degraded"),  # spec.expect: succeeded, but empty
    "rows-unknown": ("Failed", "failed", "Degraded"),
    # Fixable by the user, so not final: Argo keeps waiting; kstatus and Argo CD say it is stuck.
    "secret-not-found": ("Failed", "waiting", "Degraded"),
    "invalid-secret": ("Failed", "waiting", "Degraded"),
    "authentication-failed": ("Failed", "waiting", "Degraded"),
    "invalid-spec": ("Failed", "waiting", "Degraded"),
    # Argo reads only status.phase; kstatus and Argo CD wait for observedGeneration.
    "spec-edited-not-yet-observed": ("InProgress", "succeeded", "Progressing"),
    "failed-then-edited-not-yet-observed": ("InProgress", "failed", "Progressing"),
}


def test_every_state_has_an_expectation() -> None:
    assert set(EXPECTED) == set(STATES)


@pytest.mark.parametrize("name", sorted(STATES))
def test_kstatus(name: str) -> None:
    assert consumers.kstatus(STATES[name][0]) == EXPECTED[name][0]


def flux_exprs() -> dict[str, str]:
    docs = list(yaml.safe_load_all((EXAMPLES / "flux-kustomization.yaml").read_text()))
    assert docs[0]["spec"]["wait"] is True
    (entry,) = docs[1]["spec"]["healthCheckExprs"]
    assert entry["apiVersion"] == "airbyte.watch/v1alpha1" and entry["kind"] == "AirbyteJobWatch"
    assert docs[1]["spec"]["healthChecks"][0]["kind"] == "AirbyteJobWatch"
    return entry


@pytest.mark.parametrize("name", sorted(STATES))
def test_flux_health_check_exprs_agree_with_kstatus(name: str) -> None:
    exprs = flux_exprs()
    verdict = consumers.flux_cel(STATES[name][0], exprs["current"], exprs.get("failed", ""))
    assert verdict == EXPECTED[name][0]


def argo_conditions() -> tuple[dict[str, Any], dict[str, Any]]:
    workflow = yaml.safe_load((EXAMPLES / "argo-workflow.yaml").read_text())
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    return templates["wait-for-airbyte-job"]["resource"], templates


@pytest.mark.parametrize("name", sorted(STATES))
def test_argo_workflow_conditions(name: str) -> None:
    resource, _ = argo_conditions()
    verdict = consumers.argo(STATES[name][0], resource["successCondition"], resource["failureCondition"])
    assert verdict == EXPECTED[name][1]


def test_argo_reads_closed_label_safe_values() -> None:
    # Argo compares label values: the phases must be valid label values, and the example's
    # conditions must name only phases the CRD allows.
    crd = yaml.safe_load((ROOT / "crds" / "airbytejobwatches.airbyte.watch.yaml").read_text())
    phases = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
        "phase"
    ]["enum"]
    assert phases == ["Pending", "Running", "Succeeded", "Failed", "Cancelled"]
    resource, templates = argo_conditions()
    assert resource["successCondition"] == "status.phase == Succeeded"
    assert resource["failureCondition"] == "status.phase in (Failed,Cancelled)"
    assert templates["wait-for-airbyte-job"]["outputs"]["parameters"][0]["valueFrom"]["jsonPath"] == (
        "{.status.rowsSynced}"
    )
    manifest = yaml.safe_load(resource["manifest"])
    assert manifest["kind"] == "AirbyteJobWatch" and "jobId" in manifest["spec"]


def run_health_lua(obj: dict[str, Any]) -> dict[str, str]:
    """Argo CD's contract: `obj` is a global; the script returns {status, message}."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((ARGOCD / "health.lua").read_text())
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("name", sorted(STATES))
def test_argocd_health_for_every_state(name: str) -> None:
    obj = STATES[name][0]
    health = run_health_lua(obj)
    assert health["status"] == EXPECTED[name][2]
    ready = next((c for c in obj["status"].get("conditions", []) if c["type"] == "Ready"), None)
    lagging = obj["status"].get("observedGeneration") != obj["metadata"]["generation"]
    if ready is not None and not lagging:
        assert health["message"] == ready["message"], "the Ready message is shown"
    else:
        assert health["message"].startswith("Waiting for the operator")


def argocd_cases() -> list[dict[str, Any]]:
    return yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]


@pytest.mark.parametrize("case", argocd_cases(), ids=lambda c: Path(c["inputPath"]).stem)
def test_argocd_health_test_yaml(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
    assert run_health_lua(obj) == case["healthStatus"]


def test_every_testdata_file_is_in_health_test_yaml() -> None:
    listed = {c["inputPath"] for c in argocd_cases()}
    assert listed == {f"testdata/{p.name}" for p in (ARGOCD / "testdata").glob("*.yaml")}


def test_argocd_cm_patch_carries_the_same_script() -> None:
    patch = yaml.safe_load((ROOT / "deploy" / "argocd" / "argocd-cm-patch.yaml").read_text())
    script = patch["data"]["resource.customizations.health.airbyte.watch_AirbyteJobWatch"]
    assert script == (ARGOCD / "health.lua").read_text()


def test_docs_snippets_are_the_tested_files() -> None:
    """docs/integrations.md quotes the whole Argo step and Flux CEL; the README's shorter quotes
    are held to their files by tests/unit/test_docs.py (its `<!-- from PATH -->` markers)."""
    integrations = (ROOT / "docs" / "integrations.md").read_text()
    workflow = (EXAMPLES / "argo-workflow.yaml").read_text()
    start = workflow.index("    - name: wait-for-airbyte-job")
    step = workflow[start : workflow.index("    - name: report")]
    assert step in integrations, "docs/integrations.md's Argo step is the example's"
    flux = (EXAMPLES / "flux-kustomization.yaml").read_text()
    cel = flux[flux.index("  healthCheckExprs:") :]
    assert cel in integrations, "docs/integrations.md's CEL is the example's"
    readme = (ROOT / "README.md").read_text()
    for text in (readme, integrations):
        assert "--patch-file deploy/argocd/argocd-cm-patch.yaml" in text
        assert "successCondition: status.phase == Succeeded" in text
        assert "failureCondition: status.phase in (Failed,Cancelled)" in text
