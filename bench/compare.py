"""A before/after table of two results files of bench/run.py, for every N both measured.

    python -m bench.compare bench/results/BEFORE.json bench/results/AFTER.json > table.md

Every figure comes from the two files; cells read "get / list" when a file has both modes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import finish_requests, fmt, requests_per_interval

Figure = Callable[[dict[str, Any], dict[str, Any], float], str]  # (entry, mode figures, interval)


def cpu(e: dict[str, Any], m: dict[str, Any], i: float) -> str:
    return f"{fmt(m['operator']['cpu_all_in_seconds'])} ({fmt(m['ratios']['floor_cpu_all_in_seconds'])})"


def per_interval(e: dict[str, Any], m: dict[str, Any], i: float) -> str:
    return fmt(requests_per_interval(e, m, i), digits=0)


def ended(e: dict[str, Any], m: dict[str, Any], i: float) -> str:
    made, allowed = finish_requests(e, m, i)
    return f"{made:,} ({allowed:,.0f})"


ROWS: list[tuple[str, Figure]] = [
    ("peak RSS, MiB", lambda e, m, i: fmt(m["operator"]["peak_rss_mib"])),
    ("all-in CPU, operator (floor), s", cpu),
    ("all-in CPU, ratio to the floor", lambda e, m, i: f"{m['ratios']['cpu_all_in']:.2f} ×"),
    ("cold start, s", lambda e, m, i: fmt(m["operator"]["cold"]["seconds"])),
    ("cold start, ratio to the floor", lambda e, m, i: f"{m['ratios']['cold_start']:.2f} ×"),
    ("detection p99, s", lambda e, m, i: fmt(m["operator"]["detection_p99_s"], digits=2)),
    ("Airbyte requests per interval, all jobs running", per_interval),
    ("Airbyte requests while the N jobs end (allowed)", ended),
    ("Kubernetes writes per watch", lambda e, m, i: fmt(m["operator"]["k8s_writes_per_watch"], digits=2)),
]


def cell(entry: dict[str, Any], figure: Figure, interval: float) -> str:
    return " / ".join(figure(entry, entry["modes"][mode], interval) for mode in sorted(entry["modes"]))


def render(before: dict[str, Any], after: dict[str, Any], names: tuple[str, str]) -> str:
    old = {e["n"]: e for e in before["results"]}
    new = {e["n"]: e for e in after["results"]}
    out: list[str] = []
    for n in sorted(old.keys() & new.keys()):
        modes = " / ".join(sorted(new[n]["modes"]))
        out += [
            f"N = {n:,} ({modes}); before: [`{names[0]}`]({names[0]}), after: [`{names[1]}`]({names[1]})",
            "",
            f"| measure | before (`{before['commit']}`) | after (`{after['commit']}`) |",
            "|---|---|---|",
        ]
        for label, figure in ROWS:
            out.append(
                f"| {label} | {cell(old[n], figure, before['settings']['interval'])} "
                f"| {cell(new[n], figure, after['settings']['interval'])} |"
            )
        out.append("")
    return "\n".join(out)


def _in_results(path: Path) -> str:
    """The file's path inside bench/results (a baseline may sit in a folder of its own)."""
    results = Path(__file__).resolve().parent / "results"
    try:
        return path.resolve().relative_to(results).as_posix()
    except ValueError:
        return path.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument(
        "--link-base",
        default="bench/results",
        help="results folder as the page links it (docs/: ../bench/results)",
    )
    args = parser.parse_args()
    base = args.link_base.rstrip("/")
    names = (f"{base}/{_in_results(args.before)}", f"{base}/{_in_results(args.after)}")
    print(render(json.loads(args.before.read_text()), json.loads(args.after.read_text()), names), end="")


if __name__ == "__main__":
    main()
