"""The dashboard and the alert rules: every PromQL expression parses with Prometheus's own
parser and reads only metrics a running operator exports."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import OperatorProcess, eventually
from tests.support.controlplane import ROOT, ControlPlane, build_lock, free_port
from tests.support.helm import CHART, Helm

pytestmark = pytest.mark.cluster

MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "airbyte-watch-dashboard.json"
PROMQL_BUILD = ROOT / "tests" / "promql" / "build.sh"
# Grafana replaces its variables before the query reaches Prometheus; so do we.
GRAFANA_VARIABLES = {"$__rate_interval": "2m", "$server": ".*"}
# Series Prometheus makes itself, not the operator.
PROMETHEUS_OWN = {"up"}
# Sample names per metric type, as the exposition format writes them.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def promql(*args: str, stdin: str) -> Any:
    with build_lock():
        binary = subprocess.run(["bash", str(PROMQL_BUILD)], check=True, stdout=subprocess.PIPE, text=True)
    done = subprocess.run([binary.stdout.strip().splitlines()[-1], *args], input=stdin,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout)


def parse(exprs: list[str]) -> list[dict[str, Any]]:
    return promql(stdin=json.dumps(exprs))


def check_rules(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Prometheus's own rule-file validation (promtool check rules) of a PrometheusRule's groups."""
    return promql("rules", stdin=yaml.safe_dump({"groups": groups}))


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for name, value in GRAFANA_VARIABLES.items():
        exprs = [e.replace(name, value) for e in exprs]
    assert not [e for e in exprs if "$" in e], "a Grafana variable the test does not substitute"
    return exprs


def rule_exprs() -> list[str]:
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


@pytest.fixture(scope="module")
def exported(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name the operator's live /metrics can carry."""
    namespace = "monitoring-none"  # watched, and empty: the operator starts and serves at once
    control_plane.kubectl("create", "namespace", namespace, check=False)
    port = free_port()
    log = tmp_path_factory.mktemp("monitoring") / "op.log"
    operator = OperatorProcess(control_plane, log, ["-n", namespace, f"--metrics-port={port}"])
    operator.start()
    try:
        text = eventually(lambda: _get(f"http://127.0.0.1:{port}/metrics"), timeout=30)
    finally:
        operator.stop()
    return {f"{family.name}{suffix}" for family in text_string_to_metric_families(text)
            for suffix in SUFFIXES.get(family.type, ("",))}  # fmt: skip


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def test_the_parser_is_prometheus_and_rejects_what_prometheus_rejects() -> None:
    good, bad, unknown_fn = parse(
        ["sum by (a) (rate(x_total[5m]))", "rate(x_total[5m)", "rates(x_total[5m])"]
    )
    assert good["metrics"] == ["x_total"] and "error" not in good
    assert "parse error" in bad["error"]
    assert "unknown function" in unknown_fn["error"]


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_expression_parses_and_reads_exported_metrics(exported: set[str], source: str) -> None:
    assert (
        "airbyte_watch_polls_total" in exported and "airbyte_watch_poll_duration_seconds_bucket" in exported
        and "airbyte_watch_detection_delay_seconds_bucket" in exported
    )  # fmt: skip
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text())) if source == "dashboard" else rule_exprs()
    assert exprs
    for result in parse(exprs):
        assert "error" not in result, f"{result['expr']}: {result.get('error')}"
        assert result["metrics"], f"{result['expr']} reads no metric"
        unknown = set(result["metrics"]) - exported - PROMETHEUS_OWN
        assert not unknown, f"{result['expr']} reads {unknown}, which the operator does not export"


def test_the_alert_rules_pass_prometheus_rule_validation() -> None:
    groups = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]["groups"]
    assert check_rules(groups) == {"rules": sum(len(g["rules"]) for g in groups), "errors": []}
    broken = [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "10m",
                                       "annotations": {"summary": "{{ $labels.x "}}]}]  # fmt: skip
    assert check_rules(broken)["errors"], "a broken annotation template is refused"


def test_dashboard_covers_what_operators_look_at() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert titles >= {
        "Watches by phase", "Outcomes over time", "Polls per server", "Airbyte API errors per server",
        "Poll duration", "Token fetches", "Request budget use", "Leader per pod", "Detection delay",
    }  # fmt: skip
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    exprs = " ".join(dashboard_exprs(dashboard))
    for metric in (
        "airbyte_watch_watches", "airbyte_watch_events_total", "airbyte_watch_token_fetches_total",
        "airbyte_watch_airbyte_api_errors_total", "airbyte_watch_request_budget_per_second",
        "airbyte_watch_detection_delay_seconds_bucket",
    ):  # fmt: skip
        assert re.search(rf"\b{metric}\b", exprs), metric


def test_dashboard_ships_as_a_configmap_for_grafanas_sidecar(control_plane: ControlPlane) -> None:
    kustomized = yaml.safe_load_all(control_plane.kubectl("kustomize", str(MONITORING)).stdout)
    configmap = next(d for d in kustomized if d["kind"] == "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["airbyte-watch-dashboard.json"]) == json.loads(DASHBOARD.read_text())
    assert (CHART / "files" / "airbyte-watch-dashboard.json").read_bytes() == DASHBOARD.read_bytes()
    rendered = Helm().template({"metrics": {"dashboard": {"enabled": True}}}).stdout
    charted = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ConfigMap")
    assert charted["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(charted["data"]["airbyte-watch-dashboard.json"]) == json.loads(DASHBOARD.read_text())
    assert "ConfigMap" not in {d["kind"] for d in yaml.safe_load_all(Helm().template({}).stdout) if d}
