"""sst2mlp-report: figures and tables from saved pytest-benchmark JSON.

    sst2mlp-report [JSON files or storage folders; default .benchmarks] --out DIR

The JSON is the only input; outputs are written only inside --out. Figures and the
results table describe the last run given (in a storage folder, the newest); with
several runs, comparison.md/csv gives each run's medians and ratios to the first.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import tables
from .figures import FIGURES, write_figures
from .runs import ReportError, load_runs

RESULTS = ("results.md", "results.csv")
COMPARISON = ("comparison.md", "comparison.csv")
SPEEDUPS = ("speedups.md", "speedups.csv")


def make_report(inputs: list[str], out: Path, overwrite: bool = False, strict: bool = False) -> list[Path]:
    runs = load_runs(inputs, strict=strict)
    latest = runs[-1]  # files sort by name, so in a storage folder the newest run is last
    several_impls = len({key.impl for key in latest.rows}) > 1
    names = FIGURES + RESULTS + (COMPARISON if len(runs) > 1 else ()) + (SPEEDUPS if several_impls else ())
    existing = [name for name in names if (out / name).exists()]
    if existing and not overwrite:
        raise ReportError(f"{out} already holds {', '.join(existing)}; pass --overwrite to replace them, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    caption = latest.caption()
    rows = tables.results_table(latest)
    written = [
        tables.write_csv(out / "results.csv", rows, tables.RESULT_COLUMNS),
        tables.write_markdown(out / "results.md", "sst2mlp results", caption, rows, tables.RESULT_COLUMNS),
    ]
    written += write_figures(latest, out, threads=min(key.threads for key in latest.rows))
    if several_impls:
        rows = tables.speedups_table(latest)
        written += [
            tables.write_csv(out / "speedups.csv", rows, tables.SPEEDUP_COLUMNS),
            tables.write_markdown(out / "speedups.md", "sst2mlp speed-ups of each impl, measured in one run", caption,
                                  rows, tables.SPEEDUP_COLUMNS),
        ]
    if len(runs) > 1:
        rows, columns = tables.comparison_table(runs)
        captions = "\n".join(f"- {run.label}: {run.caption()}" for run in runs)
        written += [
            tables.write_csv(out / "comparison.csv", rows, columns),
            tables.write_markdown(out / "comparison.md", "sst2mlp comparison (ratios against the first run)", captions,
                                  rows, columns, empty="missing"),
        ]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sst2mlp-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", default=[".benchmarks"], help="pytest-benchmark JSON files or storage folders (default: .benchmarks)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="folder for figures and tables (default: report)")
    parser.add_argument("--overwrite", action="store_true", help="replace figures and tables already in --out")
    parser.add_argument("--strict", action="store_true",
                        help="fail on any benchmark without every parameter and extra_info field the current suite writes")
    args = parser.parse_args(argv)
    try:
        written = make_report(args.inputs, args.out, overwrite=args.overwrite, strict=args.strict)
    except ReportError as error:
        print(f"sst2mlp-report: error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
