"""The helm command built from tests/helm (Helm's own Go module), run with its state in a temp folder."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.support.controlplane import ROOT, ControlPlane, build_lock

BUILD_SCRIPT = ROOT / "tests" / "helm" / "build.sh"
CHART = ROOT / "deploy" / "helm" / "airbyte-watch"


def helm_path() -> str:
    with build_lock():
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return done.stdout.strip().splitlines()[-1]


class Helm:
    def __init__(self, plane: ControlPlane | None = None) -> None:
        self.binary = helm_path()
        self.home = Path(tempfile.mkdtemp(prefix="helm-"))
        # Helm keeps a cache, config and data folder; none of them belongs in the user's home.
        self.env = {**os.environ, **{f"HELM_{kind.upper()}_HOME": str(self.home / kind)
                                     for kind in ("cache", "config", "data")}}  # fmt: skip
        if plane is not None:
            self.env["KUBECONFIG"] = str(plane.kubeconfig)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.binary, *args], capture_output=True, text=True, env=self.env, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    def values_file(self, values: dict[str, Any]) -> str:
        path = self.home / f"values-{len(list(self.home.glob('values-*')))}.yaml"
        path.write_text(yaml.safe_dump(values))
        return str(path)

    def template(
        self, values: dict[str, Any], *, release: str = "airbyte-watch", namespace: str = "airbyte-watch",
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return self.run("template", release, str(CHART), "--namespace", namespace, "--include-crds",
                        "-f", self.values_file(values), check=check)  # fmt: skip
