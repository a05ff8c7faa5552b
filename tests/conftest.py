"""Shared fixtures: one real control plane per session, a namespace per test, the fake Airbyte,
and the operator as a separate `airbyte-watch run` process."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.support import controlplane as cp
from tests.support.cluster import OperatorProcess
from tests.support.fake_airbyte import FakeAirbyte, RunningFake

CLIENT_ID = "airbyte-watch-test-client"
CLIENT_SECRET = "cs-SENTINEL-7f3a9c"  # distinctive, so tests can scan output for leaks
OPERATOR_NAMESPACES = "op-*"  # the session operator watches only namespaces named like this


def create_default_secret(plane: cp.ControlPlane, namespace: str, url: str) -> None:
    """The Secret `airbyte-default` in `namespace`, with the fake Airbyte's test credentials."""
    plane.kubectl(
        "-n", namespace, "create", "secret", "generic", "airbyte-default", f"--from-literal=url={url}",
        f"--from-literal=clientId={CLIENT_ID}", f"--from-literal=clientSecret={CLIENT_SECRET}",
    )  # fmt: skip


@pytest.fixture(scope="session")
def control_plane() -> Iterator[cp.ControlPlane]:
    with cp.running() as plane:
        yield plane


def _namespace(plane: cp.ControlPlane, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(4)}"
    plane.kubectl("create", "namespace", name)
    return name


@pytest.fixture
def namespace(control_plane: cp.ControlPlane) -> str:
    """A fresh namespace the session operator does not watch."""
    return _namespace(control_plane, "cp")


@pytest.fixture
def op_namespace(control_plane: cp.ControlPlane, operator: OperatorProcess) -> str:
    """A fresh namespace the session operator watches."""
    return _namespace(control_plane, "op")


@pytest.fixture
def fake_airbyte() -> Iterator[RunningFake]:
    fake = FakeAirbyte("/api/public/v1", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with RunningFake(fake) as running:
        yield running


@pytest.fixture
def airbyte_secret(control_plane: cp.ControlPlane, op_namespace: str, fake_airbyte: RunningFake) -> str:
    """The default connection Secret in the test's namespace, pointing at the fake Airbyte."""
    create_default_secret(control_plane, op_namespace, fake_airbyte.url)
    return "airbyte-default"


@pytest.fixture(scope="session")
def operator(
    control_plane: cp.ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(control_plane, log, ["--namespace", OPERATOR_NAMESPACES, "--startup-spread=0.2"])
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def pytest_report_header(config: pytest.Config) -> str:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    return f"control plane binaries: {assets or 'built from tests/controlplane (cached in .cache/)'}"
