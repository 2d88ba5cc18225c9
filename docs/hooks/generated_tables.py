"""MkDocs hook: replace ``<!-- generated: NAME -->`` in a page by the table of ``benchmarks/results/NAME.json``.

Each benchmark script renders its own saved results (its ``table`` function), so the site shows what the
JSON holds, never a copy typed by hand. A missing results file renders as a note saying which command
writes it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"<!-- generated: ([a-z_]+) -->")
"""``<!-- generated: NAME -->``: the table of ``NAME.json``; ``NAME_plot``: the figure ``NAME.png``."""
SCRIPTS = {"accuracy": "accuracy", "ablations": "ablations", "time_to_accuracy": "time_to_accuracy",
           "root_defaults": "root_defaults"}
"""Results file -> the benchmark script whose ``table(results)`` renders it."""


def _script(name: str):
    """Import ``benchmarks/<name>.py`` (the benchmarks folder on the path, for their own imports)."""
    folder = str(ROOT / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    key = f"benchmark_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    return sys.modules[key]


def step_time_table(record: dict) -> str:
    """Median ms per step by problem, points and candidate (``step_time*.json``)."""
    rows = record["rows"]
    candidates = list(dict.fromkeys(r["candidate"] for r in rows))
    keys = list(dict.fromkeys((r["problem"], r["points"]) for r in rows))
    lines = ["| problem | points | " + " | ".join(candidates) + " |", "|---|---:|" + "---:|" * len(candidates)]
    for problem, points in keys:
        cells = []
        for candidate in candidates:
            found = [r["ms"] for r in rows if (r["problem"], r["points"], r["candidate"]) == (problem, points, candidate)]
            cells.append(f"{statistics.median(found):.1f}" if found else "-")
        lines.append(f"| {problem} | {points:,} | " + " | ".join(cells) + " |")
    commands = record.get("commands") or [record.get("command", "")]
    return (f"Measured {record.get('date', '?')} on {record.get('machine', '?')}; "
            f"`{'`, `'.join(c for c in commands if c)}`. Median ms per step.\n\n" + "\n".join(lines))


def experiments_gallery() -> str:
    """One section per ``conf/experiment/*.yaml``: its header comment, its command, its measured errors."""
    results = json.loads((RESULTS / "accuracy.json").read_text()) if (RESULTS / "accuracy.json").exists() else {}
    sections = []
    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        name = path.stem
        comment = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            if not line.startswith("# @package"):
                comment.append(line.lstrip("# ").rstrip())
        runs = [r for r in results.values() if r.get("problem") == name and not r.get("overrides")]
        if runs:
            fields = runs[0]["rel_l2"]
            measured = "; ".join(
                f"{f} {statistics.median(r['rel_l2'][f] for r in runs):.2e}"
                + (f" (median of {len(runs)} seeds, {min(r['rel_l2'][f] for r in runs):.2e} to "
                   f"{max(r['rel_l2'][f] for r in runs):.2e})" if len(runs) > 1 else "")
                for f in fields)
            measured = f"Measured (`benchmarks/results/accuracy.json`): rel. L2 {measured}."
        else:
            measured = "Not in `benchmarks/results/accuracy.json` yet."
        sections.append(f"## {name}\n\n`python train.py experiment={name}`\n\n{' '.join(comment)}\n\n{measured}\n")
    return "\n".join(sections)


def overhead_table(record: dict) -> str:
    """Lightning's cost per step over a bare loop (``lightning_overhead.json``)."""
    lines = ["| points | bare loop, ms | PINNModule in a Trainer, ms | excess (median of paired rounds) |",
             "|---:|---:|---:|---:|"]
    for row in record["rows"]:
        light = statistics.median(row["lightning_ms"]["lightning"])
        lines.append(f"| {row['points']:,} | {row['bare_ms']:.2f} | {light:.2f} | "
                     f"{100 * row['excess_median']['lightning']:+.1f}% |")
    return (f"Measured {record['date']} on {record['machine']}, {record['torch_threads']} torch threads, "
            f"{record['versions']['torch']}, {record['setting']}, {record['rounds']} rounds of "
            f"{record['steps_per_round']} steps; `{record['command']}`.\n\n" + "\n".join(lines))


def render(name: str) -> str:
    """The markdown for ``<!-- generated: name -->``."""
    if name == "experiments":
        return experiments_gallery()
    if name.endswith("_plot"):
        image = RESULTS / f"{name.removesuffix('_plot')}.png"
        return f"![{image.stem}](img/{image.name})" if image.exists() else f"*No figure yet: `{image.name}`.*"
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return f"*No results yet: `{name}.json` is written by its benchmark script in `benchmarks/`.*"
    record = json.loads(path.read_text())
    if name.startswith("step_time"):
        return step_time_table(record)
    if name == "lightning_overhead":
        return overhead_table(record)
    if name in SCRIPTS:
        return _script(SCRIPTS[name]).table(record)
    raise ValueError(f"no renderer for benchmarks/results/{name}.json")


def on_page_markdown(markdown: str, **_: object) -> str:
    """Fill every generated-table marker of the page."""
    return MARKER.sub(lambda match: render(match.group(1)), markdown)


def on_files(files, config):
    """Publish the benchmark figures (``benchmarks/results/*.png``) under ``benchmarks/img/``."""
    from mkdocs.structure.files import File

    for image in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"benchmarks/img/{image.name}", abs_src_path=str(image)))
    return files
