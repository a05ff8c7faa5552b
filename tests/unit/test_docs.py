"""The README and docs/ stay a newcomer's path that does not lie: short, every link and anchor
resolves, every flag and Helm value is documented, snippets are the files they quote, and the
benchmark page is exactly what bench.report renders from the newest results file."""

from __future__ import annotations

import contextlib
import io
import json
import re
import unicodedata
from pathlib import Path

import pytest
import yaml
from airbyte_watch import cli
from airbyte_watch.core import names

from bench import compare, report

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 200
FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FROM_MARKER = re.compile(r"^<!-- from (\S+) -->$")
RESULTS = ROOT / "bench" / "results"
LINK_BASE = "../bench/results"  # bench/results as docs/performance.md reaches it


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text lowercased, punctuation other than `-`
    and `_` dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = text.strip().lower()
    kept = "".join(ch for ch in text if ch in "-_ " or unicodedata.category(ch)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(page.read_text()):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_github_slug_rules() -> None:
    assert github_slug("The connection Secret") == "the-connection-secret"
    assert github_slug("Trigger, then watch") == "trigger-then-watch"
    assert github_slug("The Kubernetes retry loop in `kube_client.py` is ours") == (
        "the-kubernetes-retry-loop-in-kube_clientpy-is-ours"
    )
    assert github_slug("Prometheus and alerting") == "prometheus-and-alerting"


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


def test_docs_pages_exist() -> None:
    for name in ("reference", "integrations", "operating", "design", "performance"):
        assert (DOCS / f"{name}.md").is_file(), name


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for line in prose_lines(page.read_text()):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{target}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_quoted_snippets_are_the_files(page: Path) -> None:
    """A fenced block after `<!-- from PATH -->` is a verbatim piece of PATH (from the repo root)."""
    lines = page.read_text().splitlines()
    for i, line in enumerate(lines):
        match = FROM_MARKER.match(line)
        if not match:
            continue
        assert FENCE.match(lines[i + 1]), f"{page.name}:{i + 1}: a fenced block must follow the marker"
        end = next(j for j in range(i + 2, len(lines)) if FENCE.match(lines[j]))
        snippet = "\n".join(lines[i + 2 : end]) + "\n"
        source = (ROOT / match.group(1)).read_text()
        assert snippet in source, f"{page.name}:{i + 1}: the snippet is not {match.group(1)}'s"


def run_flags() -> set[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.parse_args(["run", "--help"])
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", out.getvalue())) - {"--help"}


def test_every_flag_is_documented() -> None:
    flags = run_flags()
    assert "--poll-mode" in flags and "--leader-elect" in flags
    text = (DOCS / "operating.md").read_text()
    missing = sorted(f for f in flags if not re.search(rf"`{re.escape(f)}(?![\w-])", text))
    assert not missing, f"flags of `airbyte-watch run` missing from docs/operating.md: {missing}"


FREE_FORM_VALUES = {"resources"}  # a Kubernetes block passed as it is: documented as a whole


def value_paths(values: dict, prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in FREE_FORM_VALUES:
            paths += value_paths(value, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_every_helm_value_is_documented() -> None:
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "airbyte-watch" / "values.yaml").read_text())
    paths = value_paths(values)
    assert "leaderElection.renewDeadline" in paths
    text = (DOCS / "operating.md").read_text()
    missing = [p for p in paths if f"`{p}`" not in text]
    assert not missing, f"Helm values missing from docs/operating.md: {missing}"


def test_every_reason_and_phase_is_in_the_reference() -> None:
    """The names users write `kubectl wait`, Argo conditions and alerts against (names.py)."""
    operator = ROOT / "operator" / "airbyte_watch"
    code = "\n".join(p.read_text() for p in operator.rglob("*.py") if p.name != "names.py")
    words = {
        value
        for name, value in vars(names).items()
        if name.isupper()
        and isinstance(value, str)
        and re.fullmatch(r"[A-Z][A-Za-z]+", value)
        and re.search(rf"\b{name}\b", code)  # used, not only named
    }
    assert {"JobSucceeded", "TimedOut", "Stalled", "Cancelled"} <= words
    text = (DOCS / "reference.md").read_text()
    missing = sorted(w for w in words if not re.search(rf"\b{w}\b", text))
    assert not missing, f"names of names.py missing from docs/reference.md: {missing}"


def newest_results() -> Path:
    files = sorted(RESULTS.glob("*.json"), key=lambda p: json.loads(p.read_text())["started_at"])
    return files[-1]


def test_performance_page_is_rendered_from_the_newest_results() -> None:
    newest = newest_results()
    text = (DOCS / "performance.md").read_text()
    command = f"python -m bench.report bench/results/{newest.name} --link-base {LINK_BASE}"
    assert command in text.splitlines()[0], f"docs/performance.md must open with a comment naming: {command}"
    begin, end = "<!-- BEGIN bench.report -->\n", "<!-- END bench.report -->\n"
    rendered = text[text.index(begin) + len(begin) : text.index(end)]
    expected = report.render(json.loads(newest.read_text()), f"{LINK_BASE}/{newest.name}")
    assert rendered == expected, f"re-render docs/performance.md with: {command}"
    outside = text.replace(rendered, "")
    for block in COMPARED.finditer(text):  # bench.compare's tables, checked below
        outside = outside.replace(block["table"], "")
    assert not re.search(r"\d[\d,.]*\s*(MiB|KiB|×|requests/s)", outside), "figures outside the rendered block"


COMPARED = re.compile(
    r"<!-- python -m bench\.compare (?P<before>\S+) (?P<after>\S+) --link-base \.\./bench/results -->\n"
    r"<!-- BEGIN bench\.compare -->\n(?P<table>.*?)<!-- END bench\.compare -->\n",
    re.S,
)


def test_the_before_and_after_tables_are_rendered_from_the_files_they_name() -> None:
    """A before/after block of docs/performance.md (kopf's intake, issue 20) is bench.compare's
    output for the two results files its comment names, never typed."""
    text = (DOCS / "performance.md").read_text()
    blocks = list(COMPARED.finditer(text))
    assert blocks, "docs/performance.md has no bench.compare block"
    for block in blocks:
        before, after = ROOT / block["before"], ROOT / block["after"]
        names = tuple(f"{LINK_BASE}/{p.relative_to(RESULTS).as_posix()}" for p in (before, after))
        expected = compare.render(json.loads(before.read_text()), json.loads(after.read_text()), names)
        assert block["table"] == expected, f"re-render with: python -m bench.compare {before} {after}"
