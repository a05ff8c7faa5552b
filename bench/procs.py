"""The processes a benchmark run starts and reads from outside: the fake Airbyte and /proc figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.controlplane import ROOT, free_port


def proc_stats(pid: int) -> dict[str, float]:
    """RSS now and at peak (MiB), and CPU seconds so far (user + system), of one process."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {
        "rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
        "peak_rss_mib": int(fields["VmHWM"].split()[0]) / 1024,
        "cpu_seconds": (int(stat[11]) + int(stat[12])) / ticks,
    }


def fetch_json(url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


class FakeProcess:
    """The fake Airbyte in its own process, its jobs running until told otherwise."""

    def __init__(self, jobs_file: Path) -> None:
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.root}/v1"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.fake_airbyte",
                "--port",
                str(self.port),
                "--prefix",
                "/v1",
                "--jobs-file",
                str(jobs_file),
                "--count-only",
                "--stable-ties",  # the floor pages by plain offset; the operator copes either way
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(300):
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the fake Airbyte did not start")

    def stats(self, since: float | None = None) -> dict[str, Any]:
        return dict(fetch_json(f"{self.root}/_fake/stats" + (f"?since={since}" if since is not None else "")))

    def load(self, jobs: list[dict[str, Any]]) -> None:
        fetch_json(f"{self.root}/_fake/jobs", jobs)

    def stop(self) -> str:
        """Stop it; what it said on stderr (contract violations, if any)."""
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err.decode(errors="replace")
