"""Run-to-run agreement of the latency and throughput medians: the same benchmarks run N times back to back.

    python benchmarks/agreement.py [--runs 3] [--out DIR] [--progress-run] [pytest options...]

Default: inference and throughput of every impl at L2-H256-V1000 and L2-H256-V10000 (each model trained
once per run, untimed). Prints, per benchmark, the medians of every run and max/min - 1, then how many
agree within 10% and within 20% (targets: at least 90% within 10%, all within 20%). Exit status 1 when
a target is missed. Nothing else may run on the machine meanwhile.

--progress-run adds one more run with the progress display on (the others run with -q, so without it) and
counts how many of its medians lie within the other runs' range widened by 10%: the display changes no
timing when they all do.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARGS = ["--sst2-layers=2", "--sst2-widths=256", "--sst2-vocabs=1000,10000", "-k", "inference or throughput"]


def medians(path: Path) -> dict[str, float]:
    return {b["name"]: b["stats"]["median"] for b in json.loads(path.read_text())["benchmarks"]}


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


def run_once(path: Path, pytest_args: list[str]) -> dict[str, float]:
    command = [sys.executable, "-m", "pytest", "benchmarks/bench_mlp.py", "-p", "no:cacheprovider", *pytest_args,
               f"--benchmark-json={path}"]
    if subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL).returncode != 0:
        raise RuntimeError(f"a run failed: {' '.join(command)}")
    return medians(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--progress-run", action="store_true", help="one more run with the progress display on")
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs' JSON (default: a temporary one)")
    args, pytest_args = parser.parse_known_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="sst2mlp-agreement-"))
    out.mkdir(parents=True, exist_ok=True)
    pytest_args = pytest_args or DEFAULT_ARGS
    try:
        runs = [run_once(out / f"run{index + 1}.json", ["-q", *pytest_args]) for index in range(args.runs)]
        shown = run_once(out / "progress_on.json", ["--sst2-progress=on", *pytest_args]) if args.progress_run else None
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    rows = agreement(runs)
    for name, values, spread in rows:
        print(f"{name:55s} " + " ".join(f"{v * 1e6:10.1f}us" for v in values) + f"   {spread:6.1%}")
    within10 = sum(spread <= 0.10 for *_, spread in rows)
    within20 = sum(spread <= 0.20 for *_, spread in rows)
    print(f"{within10}/{len(rows)} medians within 10% ({within10 / len(rows):.0%}), {within20}/{len(rows)} within 20%; "
          f"worst {max(s for *_, s in rows):.1%}; JSON in {out}")
    if shown is not None:
        inside, total = within_range(runs, shown)
        print(f"progress display on: {inside}/{total} medians within the {args.runs} runs' range +-10%")
    return 0 if within10 >= 0.9 * len(rows) and within20 == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
