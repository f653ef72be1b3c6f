"""Run-to-run agreement of the latency and throughput medians: the same benchmarks run N times back to back.

    python -m sst2mlp.suite.agreement [--runs 3] [--out DIR] [--progress-run] [pytest options...]
    python -m sst2mlp.suite.agreement --summarize DIR      # the same summary of runs saved earlier

Run it from the project's checkout (it runs benchmarks/bench_mlp.py there).

Default: inference and throughput of every impl at L2-H256-V1000 and L2-H256-V10000 (each model trained
once per run, untimed), the quiet gate's waiting budget 60 s per benchmark. Pytest options given are added
after that selection, so one of the same name wins (for example --sst2-quiet-wait=10, or --sst2-vocabs=1000).
Prints, per benchmark, the medians of every run and max/min - 1, then how many agree within 10% and within
20% (targets: at least 90% within 10%, all within 20%). Exit status 1 when a target is missed. Nothing else
may run on the machine meanwhile. A median marked * was measured partly in a slow phase (the quiet gate's
waiting budget ran out: `measured_while_slow` > 0).

--progress-run adds one more run with the progress display on (the others run with -q, so without it) and
counts how many of its medians lie within the other runs' range widened by 10%: the display changes no
timing when they all do.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from sst2mlp.report.runs import ReportError, read_document

BENCHMARKS = Path("benchmarks") / "bench_mlp.py"
# The gate may wait up to 60 s per benchmark (a full run's default is 10 s): with 10 s, busy phases of the shared
# VM outlasted the budget in most checks; with 60 s, one benchmark of 324 did (README: run-to-run agreement).
DEFAULT_ARGS = ["--sst2-layers=2", "--sst2-widths=256", "--sst2-vocabs=1000,10000", "-k", "inference or throughput",
                "--sst2-quiet-wait=60"]


def benchmarks(path: Path) -> list[dict]:
    """A saved run's benchmarks, each with a name, a median and extra_info; ValueError naming the file otherwise."""
    try:
        saved = read_document(path)["benchmarks"]
        if not all(isinstance(bench["name"], str) and isinstance(bench["stats"]["median"], (int, float)) for bench in saved):
            raise ValueError("a name that is not text or a median that is not a number")
    except (ReportError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: expected a pytest-benchmark JSON file whose benchmarks have a name and "
                         f"stats.median ({type(error).__name__}: {error})") from error
    return saved


def medians(saved: list[dict]) -> dict[str, float]:
    return {b["name"]: b["stats"]["median"] for b in saved}


def measured_while_slow(saved: list[dict]) -> set[str]:
    """The benchmarks of a run whose quiet gate ran out of waiting budget and measured some rounds while slow."""
    return {b["name"] for b in saved if ((b.get("extra_info") or {}).get("measured_while_slow") or 0) > 0}


def agreement(runs: list[dict[str, float]]) -> list[tuple[str, list[float], float]]:
    """(benchmark, medians per run, max/min - 1) for the benchmarks every run measured."""
    names = sorted(set.intersection(*(set(run) for run in runs)))
    return [(name, [run[name] for run in runs], max(run[name] for run in runs) / min(run[name] for run in runs) - 1)
            for name in names]


def within_range(runs: list[dict[str, float]], other: dict[str, float], margin: float = 0.10) -> tuple[int, int]:
    """How many of `other`'s medians lie within [min / (1 + margin), max * (1 + margin)] of `runs`, out of how many."""
    names = set.intersection(*(set(run) for run in runs)) & set(other)
    inside = sum(min(run[n] for run in runs) / (1 + margin) <= other[n] <= max(run[n] for run in runs) * (1 + margin)
                 for n in names)
    return inside, len(names)


def with_default_selection(pytest_args: list[str]) -> list[str]:
    """The default benchmarks with the given options after them: pytest keeps the last of two same-named options."""
    return [*DEFAULT_ARGS, *pytest_args]


def run_once(path: Path, pytest_args: list[str]) -> None:
    if not BENCHMARKS.is_file():
        raise RuntimeError(f"{BENCHMARKS} not found in {Path.cwd()}: run the check from the project's checkout")
    command = [sys.executable, "-m", "pytest", str(BENCHMARKS), "-p", "no:cacheprovider", *pytest_args,
               f"--benchmark-json={path}"]
    if subprocess.run(command, stdout=subprocess.DEVNULL).returncode != 0:
        raise RuntimeError(f"a run failed: {' '.join(command)}")


def summary(runs: list[Path], shown: Path | None = None) -> tuple[list[str], bool]:
    """The printed lines for saved runs (and a progress-on run), and whether the targets are met."""
    saved = [benchmarks(path) for path in runs]  # each file read once: unstripped runs hold every round
    run_medians = [medians(run) for run in saved]
    rows = agreement(run_medians)
    if not rows:
        raise ValueError(f"no benchmark was measured by every run of {', '.join(map(str, runs))}")
    slow = [measured_while_slow(run) for run in saved]
    lines = []
    for name, values, spread in rows:
        marked = [f"{v * 1e6:10.1f}us{'*' if name in slow_names else ' '}" for v, slow_names in zip(values, slow)]
        lines.append(f"{name:55s} " + " ".join(marked) + f"   {spread:6.1%}")
    within10 = sum(spread <= 0.10 for *_, spread in rows)
    within20 = sum(spread <= 0.20 for *_, spread in rows)
    outside_slow = sum(spread > 0.10 and any(name in names for names in slow) for name, _, spread in rows)
    lines.append(f"{within10}/{len(rows)} medians within 10% ({within10 / len(rows):.0%}), {within20}/{len(rows)} "
                 f"within 20%; worst {max(s for *_, s in rows):.1%}; outside 10%: {len(rows) - within10 - outside_slow} "
                 f"with every run at full speed, {outside_slow} with a median marked *")
    if shown is not None:
        inside, total = within_range(run_medians, medians(benchmarks(shown)))
        lines.append(f"progress display on: {inside}/{total} medians within the {len(runs)} runs' range +-10%")
    return lines, within10 >= 0.9 * len(rows) and within20 == len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--progress-run", action="store_true", help="one more run with the progress display on")
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs' JSON (default: a temporary one)")
    parser.add_argument("--summarize", type=Path, default=None, metavar="DIR",
                        help="run nothing: summarize the runs saved in DIR by an earlier check")
    args, pytest_args = parser.parse_known_args(argv)
    if args.summarize is not None:
        out = args.summarize
        runs = sorted(out.glob("run*.json"))
        if len(runs) < 2:
            print(f"{out}: expected at least two saved runs (run1.json, run2.json, ...)", file=sys.stderr)
            return 2
        shown = out / "progress_on.json" if (out / "progress_on.json").exists() else None
    else:
        out = args.out or Path(tempfile.mkdtemp(prefix="sst2mlp-agreement-"))
        out.mkdir(parents=True, exist_ok=True)
        pytest_args = with_default_selection(pytest_args)
        runs = [out / f"run{index + 1}.json" for index in range(args.runs)]
        shown = out / "progress_on.json" if args.progress_run else None
        try:
            for path in runs:
                run_once(path, ["-q", *pytest_args])
            if shown is not None:
                run_once(shown, ["--sst2-progress=on", *pytest_args])
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 2
    try:
        lines, met = summary(runs, shown)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print("\n".join(lines) + f"\nJSON in {out}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
