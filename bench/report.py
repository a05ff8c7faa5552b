"""The benchmark table and plot links of docs/performance.md, rendered from one results file.

    python -m bench.report bench/results/2026-11-25-abc123.json --link-base ../bench/results

Every figure comes from the file; nothing here is typed by hand except the issue's targets.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Column = tuple[dict[str, Any], str, dict[str, Any]]  # (the N's entry, mode, that mode's figures)
TARGET_RSS_MIB = 512
TARGET_CPU_RATIO = 1.5
TARGET_COLD_RATIO = 1.2
TARGET_SAFETY_SHARE = 0.01  # safety re-reads per interval, as a share of the watches
TARGET_WAIT_P99_S = 7.0  # issue #23: detection p99 in list mode, with 30 s watches
TARGET_WAIT_RPS = 0.25  # issue #23: Airbyte requests per second and server while all jobs run


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".strip()


def requests_per_interval(entry: dict[str, Any], m: dict[str, Any], interval: float) -> float:
    steady = m["operator"]["steady"]
    return sum(steady["requests"].values()) / (steady["seconds"] / interval)


def finish_requests(entry: dict[str, Any], m: dict[str, Any], interval: float) -> tuple[int, float]:
    """Airbyte requests while every job ends once, and what issue #12 allows for them: per
    interval one list plus the safety re-reads (1% of the watches), and one per 100 changed jobs."""
    finish = m["operator"]["finish"]
    made = sum(finish["requests"].values())
    intervals = finish["seconds"] / interval
    n = entry["n"]
    return made, intervals * (1 + TARGET_SAFETY_SHARE * n) + n / 100


def _op(c: Column) -> dict[str, Any]:
    return dict(c[2]["operator"])


def _best(entry: dict[str, Any]) -> int:
    return int(max(entry["write_limit"]["sweep"], key=lambda s: s["writes_per_second"])["concurrency"])


def _kinds(c: Column) -> str:
    by_kind = _op(c)["steady"]["requests_per_second_by_kind"]
    return " / ".join(fmt(by_kind[k], digits=2) for k in ("job_get", "job_list", "token", "other"))


ROWS: list[tuple[str, Callable[[Column], str]]] = [
    (
        "peak RSS (RSS per watch)",
        lambda c: f"{fmt(_op(c)['peak_rss_mib'], 'MiB')} ({fmt(_op(c)['rss_per_watch_kib'], 'KiB')})",
    ),
    (
        "Airbyte requests/s, all jobs running",
        lambda c: fmt(_op(c)["steady"]["requests_per_second"], digits=2),
    ),
    ("  by kind: job GET / job list / token / other", _kinds),
    (
        "Airbyte requests per watch-interval",
        lambda c: fmt(_op(c)["steady"]["requests_per_watch_interval"], digits=4),
    ),
    (
        "Airbyte requests while the N jobs end (allowed)",
        lambda c: "{:,} ({:,.0f})".format(*finish_requests(c[0], c[2], c[0].get("interval", 30.0))),
    ),
    (
        "Airbyte requests, whole run (floor)",
        lambda c: (
            f"{sum(_op(c)['requests_total'].values()):,} ({sum(c[2]['floor']['fake_requests'].values()):,})"
        ),
    ),
    (
        "detection latency p50 / p99 (max)",
        lambda c: (
            f"{fmt(_op(c)['detection_p50_s'], 's')} / {fmt(_op(c)['detection_p99_s'], 's')} "
            f"({fmt(_op(c)['detection_max_s'], 's')})"
        ),
    ),
    (
        "cold start, N new watches: 2N writes (floor)",
        lambda c: (
            f"{fmt(_op(c)['cold']['seconds'], 's')} ({fmt(c[2]['floor']['cold']['seconds_from_spawn'], 's')})"
        ),
    ),
    ("  ratio to the floor", lambda c: fmt(c[2]["ratios"]["cold_start"], "×", 2)),
    (
        "restart over N reconciled watches (writes)",
        lambda c: f"{fmt(_op(c)['restart']['seconds'], 's')} ({_op(c)['restart']['writes']})",
    ),
    (
        "all-in CPU: cold + steady + finish (floor)",
        lambda c: (
            f"{fmt(_op(c)['cpu_all_in_seconds'], 's')} "
            f"({fmt(c[2]['ratios']['floor_cpu_all_in_seconds'], 's')})"
        ),
    ),
    ("  ratio to the floor", lambda c: fmt(c[2]["ratios"]["cpu_all_in"], "×", 2)),
    (
        "  of which steady polling, no writes (ratio to the floor)",
        lambda c: (
            f"{fmt(_op(c)['steady']['cpu_seconds'], 's', 2)} "
            f"({fmt(c[2]['ratios'].get('cpu_steady'), '×', 2)})"
        ),
    ),
    (
        "Kubernetes writes per watch (minimum)",
        lambda c: (
            f"{fmt(_op(c)['k8s_writes_per_watch'], digits=2)} "
            f"({fmt(c[0]['minimum_writes_per_watch'], digits=0)})"
        ),
    ),
    (
        "API server write limit (best concurrency)",
        lambda c: (
            f"{fmt(c[0]['write_limit']['writes_per_second_max'], '/s', 0)} (c={_best(c[0])})"
            if "write_limit" in c[0]
            else "n/a"
        ),
    ),
    ("operator's --max-requests-per-second", lambda c: fmt(c[0]["budget_rps"], digits=0)),
    ("floor's cold-start write rate", lambda c: fmt(c[2]["floor"]["cold"]["writes_per_second"], "/s", 0)),
    (
        "wall time of this column (operator + floor)",
        lambda c: fmt(c[0]["durations"][f"operator_{c[1]}_s"] + c[0]["durations"][f"floor_{c[1]}_s"], "s", 0),
    ),
]


def columns(document: dict[str, Any]) -> list[Column]:
    by_n = sorted(document["results"], key=lambda e: e["n"])
    return [(entry, mode, m) for entry in by_n for mode, m in sorted(entry["modes"].items())]


def targets(document: dict[str, Any]) -> list[str]:
    """Which of issue #12's targets hold, per column."""
    interval = document["settings"]["interval"]
    lines = []
    for entry, mode, m in columns(document):
        op, n = m["operator"], entry["n"]
        per_interval = requests_per_interval(entry, m, interval)
        allowed = 1 + TARGET_SAFETY_SHARE * n  # one list per interval (no job changed) + safety re-reads
        p99 = op["detection_p99_s"]
        made, allowed_finish = finish_requests(entry, m, interval)
        checks = [
            (f"Airbyte requests per interval {per_interval:,.1f} ≤ {allowed:,.0f}", per_interval <= allowed),
            (f"Airbyte requests while the jobs end {made:,} ≤ {allowed_finish:,.0f}", made <= allowed_finish),
            (f"p99 {p99} s ≤ {interval + 2:g} s", p99 is not None and p99 <= interval + 2),
            (f"all-in CPU {m['ratios']['cpu_all_in']}× ≤ {TARGET_CPU_RATIO}× floor",
             (m["ratios"]["cpu_all_in"] or 1e9) <= TARGET_CPU_RATIO),
            (f"cold start {m['ratios']['cold_start']}× ≤ {TARGET_COLD_RATIO}× floor",
             m["ratios"]["cold_start"] <= TARGET_COLD_RATIO),
            (f"peak RSS {op['peak_rss_mib']} MiB ≤ {TARGET_RSS_MIB} MiB",
             op["peak_rss_mib"] <= TARGET_RSS_MIB),
        ]  # fmt: skip
        verdicts = "; ".join(f"{text}: {'met' if ok else 'not met'}" for text, ok in checks)
        lines.append(f"- N = {n:,}, `--poll-mode {mode}`: {verdicts}")
    return lines


def targets_of_waiting(document: dict[str, Any]) -> list[str]:
    """Which of issue #23's targets hold, per list-mode column: the walks' cadence apart from
    pollInterval must bring detection within seconds for little load on the server."""
    lines = []
    for entry, mode, m in columns(document):
        if mode != "list":
            continue
        op = m["operator"]
        p99, rps = op["detection_p99_s"], op["steady"]["requests_per_second"]
        checks = [
            (f"detection p99 {p99} s ≤ {TARGET_WAIT_P99_S:g} s",
             p99 is not None and p99 <= TARGET_WAIT_P99_S),
            (f"Airbyte requests/s while all jobs run {rps:.2f} ≤ {TARGET_WAIT_RPS}",
             rps is not None and rps <= TARGET_WAIT_RPS),
        ]  # fmt: skip
        verdicts = "; ".join(f"{text}: {'met' if ok else 'not met'}" for text, ok in checks)
        lines.append(f"- N = {entry['n']:,}, `--poll-mode {mode}`: {verdicts}")
    return lines


def marginal_rss(document: dict[str, Any]) -> list[str]:
    """RSS per added watch between consecutive N of one mode: the per-watch cost without the base."""
    lines = []
    for mode in sorted({mode for e in document["results"] for mode in e["modes"]}):
        points = sorted((e["n"], e["modes"][mode]["operator"]["peak_rss_mib"])
                        for e in document["results"] if mode in e["modes"])  # fmt: skip
        for (n1, r1), (n2, r2) in itertools.pairwise(points):
            kib = (r2 - r1) * 1024 / (n2 - n1)
            lines.append(f"- `--poll-mode {mode}`: {kib:.1f} KiB per watch added from N = {n1:,} to {n2:,}")
    return lines


def windows(document: dict[str, Any]) -> str:
    """When the jobs end, per N (older files have one window in their settings)."""
    settings = document["settings"]
    parts = [
        f"{e.get('job_min', settings['job_min']):g}–{e.get('job_max', settings['job_max']):g} s"
        + (f" at N = {e['n']:,}" if len(document["results"]) > 1 else "")
        for e in sorted(document["results"], key=lambda e: e["n"])
    ]
    return ", ".join(parts)


def render(document: dict[str, Any], results_path: str) -> str:
    machine = document["machine"]
    cols = columns(document)
    stem = results_path.removesuffix(".json")
    durations = ", ".join(
        f"N = {e['n']:,}: {e['durations']['total_s'] / 60:.1f} min"
        if "total_s" in e["durations"]
        else f"N = {e['n']:,}: cut short"
        for e in document["results"]
    )
    out = [
        f"Latest run: {document['date']}, commit `{document['commit']}`"
        + (" (with uncommitted changes)" if document["dirty"] else "")
        + f", {machine['cpu_model']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"Python {document['python']}; `{document['command']}`; "
        f"{document['settings']['interval']:g} s poll interval, "
        f"jobs ending {windows(document)} into the finish phase, "
        f"operator `--startup-spread` "
        f"{'default' if document['settings']['spread'] is None else document['settings']['spread']}; "
        f"took {document['duration_s'] / 60:.1f} min ({durations}). "
        f"Raw figures: [`{results_path}`]({results_path}).",
        "",
        "| measure | " + " | ".join(f"N = {e['n']:,}, {mode}" for e, mode, _ in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for label, cell in ROWS:
        out.append(f"| {label} | " + " | ".join(cell(c) for c in cols) + " |")
    interval = document["settings"]["interval"]
    if marginal := marginal_rss(document):
        out += ["", "Peak RSS per watch added (the base process left out):", "", *marginal]
    out += ["", f"Targets of issue #12 (one replica, {interval:g} s interval):", "", *targets(document), ""]
    waiting = targets_of_waiting(document)
    if waiting:
        out += [f"Targets of issue #23 (list mode, {interval:g} s watches):", "", *waiting, ""]
    problems = [
        f"- N = {e['n']:,}, `--poll-mode {mode}` failed: {text.splitlines()[0]}"
        for e in document["results"]
        for mode, text in e.get("errors", {}).items()
    ]
    problems += [
        f"- N = {e['n']:,}, `--poll-mode {mode}`: the fake saw a contract violation: "
        f"{m['operator']['fake_stderr'].splitlines()[0]}"
        for e, mode, m in cols
        if m["operator"].get("fake_stderr", "").strip()
    ]
    if not document.get("complete", True):
        asked = ", ".join(f"{n:,}" for n in document["settings"]["n"])
        problems.append(f"- The run (N = {asked}) was cut short; the columns above are what it measured.")
    out += [*problems, ""] if problems else []
    for name, title in (("rss", "Peak RSS against N"), ("cpu", "All-in CPU against N, operator and floor"),
                        ("requests", "Airbyte requests per second against N"),
                        ("latency", "Detection latency distribution")):  # fmt: skip
        out.append(f"![{title}]({stem}-{name}.png)")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results file of bench/run.py")
    parser.add_argument(
        "--link-base",
        default="bench/results",
        help="results folder as the page links it (docs/: ../bench/results)",
    )
    args = parser.parse_args()
    document = json.loads(args.results.read_text())
    print(render(document, f"{args.link_base.rstrip('/')}/{args.results.name}"), end="")


if __name__ == "__main__":
    main()
