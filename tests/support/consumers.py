"""Run the status consumers' own code (tests/consumers: kstatus, Flux CEL, Argo) on an object."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support.controlplane import ROOT, build_lock


@functools.cache
def binary() -> str:
    with build_lock():
        done = subprocess.run(["bash", str(ROOT / "tests" / "consumers" / "build.sh")], check=True,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    path = done.stdout.strip().splitlines()[-1]
    assert Path(path).exists()
    return path


def run(consumer: str, obj: dict[str, Any], *args: str) -> dict[str, str]:
    done = subprocess.run([binary(), consumer, *args], input=json.dumps(obj), capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout)


def kstatus(obj: dict[str, Any]) -> str:
    return run("kstatus", obj)["status"]


def flux_cel(obj: dict[str, Any], current: str, failed: str = "", in_progress: str = "") -> str:
    return run("flux-cel", obj, current, failed, in_progress)["status"]


def argo(obj: dict[str, Any], success: str, failure: str) -> str:
    return run("argo", obj, success, failure)["status"]
