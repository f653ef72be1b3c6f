"""How the regression gate does on a machine: A/A pairs of real runs of the same code, checked at the gate's defaults
(false alarms), and the same pairs with a slowdown injected into the second run (what it catches).

    sst2mlp-report noise RUN1 RUN2 [RUN3 RUN4 ...] [--impl sparse] [--factor 1.3] [--noise-profile JSON]

Runs pair up in the order given (1 with 2, 3 with 4, ...). Prints, per pair, the verdicts at the defaults, the largest
between-run ratio of medians per group, and whether a `--factor` slowdown injected into every latency and throughput
benchmark of `--impl` (its samples and stats, as a regression would move them) is caught for each; then, per group and
per kind of the noise profile (group/impl/batch size), the smallest injected slowdown caught for every benchmark of it
in every pair; benchmarks measured mostly while the machine was slow (no verdict whatever they show) are counted
apart. The allowances are those `check` uses: the noise profile's (`--noise-profile`, default the shipped one).
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..contract import GROUPS
from . import gate
from .profile import PACKAGED, NoiseProfile, kind, load_profile
from .runs import ReportError, measured_while_slow, read_document

FACTORS = (1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.4, 1.5, 1.75, 2.0, 3.0, 5.0, 10.0)


def group_ratios(base: dict, new: dict) -> dict[str, float]:
    """The largest ratio of medians between two runs (either way), per group."""
    medians = [{b["name"]: (b["group"], b["stats"]["median"]) for b in doc["benchmarks"] if b.get("extra_info")}
               for doc in (base, new)]
    worst: dict[str, float] = defaultdict(lambda: 1.0)
    for name in medians[0].keys() & medians[1].keys():
        group, a = medians[0][name]
        b = medians[1][name][1]
        worst[group] = max(worst[group], max(a, b) / min(a, b))
    return dict(worst)


@dataclass(frozen=True)
class Study:
    lines: list[str]  # the tables, in markdown
    by_group: dict[str, float | None]  # the smallest slowdown caught for every benchmark of a group in every pair
    by_kind: dict[str, float | None]  # the same per kind of the noise profile (group/impl/batch size)


def smallest_caught(base: dict, new: dict, profile: NoiseProfile) -> float | None:
    """The smallest of FACTORS by which the new run's benchmark, slowed, counts as slower than the baseline's (None:
    not even the last). A larger slowdown of the same samples moves the ratio further and the samples further apart,
    so the scan stops at the first factor caught."""
    return next((step for step in FACTORS
                 if gate.compare_timing(new["name"], [base], gate.slowed(new, step), gate.THRESHOLD, gate.ALPHA, profile,
                                        with_interval=False).verdict == gate.SLOWER), None)


def _everywhere(steps: list[float | None]) -> float | None:
    """The smallest factor that catches every benchmark of a set in every pair: the largest of their smallest."""
    return None if None in steps else max(steps)


def _shown(step: float | None) -> str:
    return f"{step:g}x" if step else f"none up to {FACTORS[-1]:g}x"


def study(pairs: list[tuple[Path, Path]], impl: str, factor: float, profile: NoiseProfile | None = None) -> Study:
    profile = load_profile() if profile is None else profile

    lines = ["| pair | compared | slower at the defaults | faster | largest A/A ratio: " + " / ".join(GROUPS) + " "
             f"| measured while slow (no verdict) | {impl} {factor:g}x slower: caught |", "|---|---|---|---|---|---|---|"]
    # (group|kind, name) -> per pair, the smallest factor at which every member is caught (None: not up to the last)
    smallest_per_pair: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    false_alarms = 0
    for index, (base_path, new_path) in enumerate(pairs, start=1):
        base, new = read_document(base_path), read_document(new_path)
        verdicts, _ = gate.compare_documents([base], new, profile=profile)
        timed = [v for v in verdicts if v.metric == "time"]
        alarms = [v.name for v in timed if v.verdict == gate.SLOWER]
        false_alarms += len(alarms)
        ratios = group_ratios(base, new)
        # a benchmark measured mostly while the machine was slow gets no verdict whatever its change: not counted
        slow = {b["name"] for doc in (base, new) for b in doc["benchmarks"] if measured_while_slow(b)}
        base_benches = {b["name"]: b for b in base["benchmarks"] if b.get("extra_info")}
        judged = [b for b in new["benchmarks"] if b.get("extra_info") and b["name"] in base_benches and b["name"] not in slow]
        targets = {b["name"] for b in judged if b["group"] in ("inference", "throughput") and (b.get("params") or {}).get("impl") == impl}
        injected = gate.with_slowdown(new, targets, factor)
        caught = {v.name for v in gate.compare_documents([base], injected, profile=profile)[0] if v.verdict == gate.SLOWER} & targets
        lines.append(f"| {index}: {base_path.name} / {new_path.name} | {len(timed)} | {len(alarms)}"
                     + (f" ({', '.join(alarms)})" if alarms else "") + f" | {sum(v.verdict == gate.FASTER for v in timed)} | "
                     + " / ".join(f"{ratios[g]:.2f}" if g in ratios else "-" for g in GROUPS)
                     + f" | {len(slow)} | {len(caught)}/{len(targets)} |")
        per_bench = {b["name"]: smallest_caught(base_benches[b["name"]], b, profile) for b in judged}
        for bench in judged:
            for subset in (("group", bench["group"]), ("kind", kind(bench))):
                smallest_per_pair[subset].append(per_bench[bench["name"]])
    by_group = {name: _everywhere(steps) for (what, name), steps in smallest_per_pair.items() if what == "group"}
    by_kind = {name: _everywhere(steps) for (what, name), steps in sorted(smallest_per_pair.items()) if what == "kind"}
    lines += ["", f"False alarms at the defaults: {false_alarms}.", "",
              "| group | smallest slowdown caught for every benchmark in every pair |", "|---|---|"]
    lines += [f"| {group} | {_shown(step)} |" for group, step in by_group.items()]
    lines += ["", "| kind (group/impl/batch) | allowance | smallest slowdown caught for every benchmark in every pair |",
              "|---|---|---|"]
    lines += [f"| {name} | {_allowance(profile, name)} | {_shown(step)} |" for name, step in by_kind.items()]
    return Study(lines, by_group, by_kind)


def _allowance(profile: NoiseProfile, key: str) -> str:
    value, source = profile.allowance_of(key)
    return f"{value:.0%}" + ("" if source == "profile" else " (its group's)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sst2mlp-report noise", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="saved runs of the same code, in pairs")
    parser.add_argument("--impl", default="sparse", help="the impl whose latency and throughput get the slowdown")
    parser.add_argument("--factor", type=float, default=1.3, help="the injected slowdown (default 1.3)")
    parser.add_argument("--noise-profile", type=Path, default=PACKAGED, metavar="JSON",
                        help="the noise profile check uses (default: the one the suite ships)")
    args = parser.parse_args(argv)
    if len(args.runs) < 2 or len(args.runs) % 2:
        parser.error(f"expected runs in pairs (an even number, at least 2), got {len(args.runs)}")
    pairs = list(zip(args.runs[::2], args.runs[1::2]))
    try:
        lines = study(pairs, args.impl, args.factor, load_profile(args.noise_profile)).lines
    except ReportError as error:
        print(f"sst2mlp-report noise: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
