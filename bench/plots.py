"""PNG plots of one results file, written beside it: `python -m bench.plots FILE.json`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt


def series(document: dict[str, Any], mode: str, pick: Any) -> tuple[list[int], list[float]]:
    points = sorted((r["n"], pick(r["modes"][mode])) for r in document["results"] if mode in r["modes"])
    return [p[0] for p in points], [p[1] for p in points]


def modes(document: dict[str, Any]) -> list[str]:
    return sorted({m for r in document["results"] for m in r["modes"]})


def _against_n(
    document: dict[str, Any],
    path: Path,
    title: str,
    ylabel: str,
    lines: list[tuple[str, Any]],
    log_y: bool = False,
) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, pick in lines:
        for mode in modes(document):
            xs, ys = series(document, mode, pick)
            style = "--" if label == "floor" else "-"  # the floor dashed, under the operator
            ax.plot(xs, ys, style, marker="o", label=f"{label}, --poll-mode {mode}")
    ax.set_xscale("log")
    if log_y:  # figures that grow with N span orders of magnitude
        ax.set_yscale("log")
    ax.set_xlabel("watches (N)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(document: dict[str, Any], results_file: Path) -> list[Path]:
    stem = results_file.with_suffix("")
    paths = [
        _against_n(
            document,
            Path(f"{stem}-rss.png"),
            "Peak RSS of the operator",
            "MiB",
            [("operator", lambda m: m["operator"]["peak_rss_mib"])],
        ),
        _against_n(
            document,
            Path(f"{stem}-cpu.png"),
            "All-in CPU (cold start, steady polling, finish)",
            "CPU seconds",
            [
                ("operator", lambda m: m["operator"]["cpu_all_in_seconds"]),
                ("floor", lambda m: m["ratios"]["floor_cpu_all_in_seconds"]),
            ],
            log_y=True,
        ),
        _against_n(
            document,
            Path(f"{stem}-requests.png"),
            "Airbyte requests per second, all jobs running",
            "requests/s",
            [
                ("operator", lambda m: m["operator"]["steady"]["requests_per_second"]),
                (
                    "floor",
                    lambda m: (
                        sum(m["floor"]["steady"]["requests"].values()) / m["floor"]["steady"]["seconds"]
                    ),
                ),
            ],
            log_y=True,
        ),
    ]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in sorted(document["results"], key=lambda r: r["n"]):
        for mode, m in sorted(r["modes"].items()):
            cdf = m["operator"]["detection_percentiles_s"]
            if cdf:
                ax.plot(cdf, range(len(cdf)), label=f"N = {r['n']:,}, --poll-mode {mode}")
    interval = document["settings"]["interval"]
    ax.axvline(interval + 2, color="grey", linestyle="--", label=f"target p99: {interval + 2:g} s")
    ax.set_xlabel("detection latency: job's end to the watch's final status (s)")
    ax.set_ylabel("percentile of watches")
    ax.set_title("Detection latency distribution")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    latency = Path(f"{stem}-latency.png")
    fig.savefig(latency, dpi=110)
    plt.close(fig)
    return [*paths, latency]


if __name__ == "__main__":
    results = Path(sys.argv[1])
    for written in plot_all(json.loads(results.read_text()), results):
        print(written)
