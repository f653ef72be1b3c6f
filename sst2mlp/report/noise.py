"""How the regression gate does on a machine: A/A pairs of real runs of the same code, checked at the gate's defaults
(false alarms), and the same pairs with a slowdown injected into the second run (what it catches).

    sst2mlp-report noise RUN1 RUN2 [RUN3 RUN4 ...] [--impl sparse] [--factor 1.3] [--noise-profile JSON]

Runs pair up in the order given (1 with 2, 3 with 4, ...). Prints, per pair, the verdicts at the defaults, the largest
between-run ratio of medians per group, and whether a `--factor` slowdown injected into every latency and throughput
benchmark of `--impl` (its samples and stats, as a regression would move them) is caught for each; both again with
the gate's confirmation (check --confirm) by the next pair's second run, another process of the same code (with the
slowdown injected into it too, for what is caught); then, per group and
per kind of the noise profile (group/impl/batch size), the smallest injected slowdown caught for every benchmark of it
in every pair; benchmarks measured mostly while the machine was slow (no verdict whatever they show) are counted
apart. The allowances are those `check` uses: the noise profile's (`--noise-profile`, default the shipped one).
"""
from __future__ import annotations

import argparse
import itertools
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sst2mlp.contract import GROUPS

from . import gate
from .profile import NoiseProfile, kind, load_profile
from .runs import ReportError, cpu_of, gated_time, measured_while_slow, read_document
from .tables import pipe_table

FACTORS = (1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.4, 1.5, 1.75, 2.0, 3.0, 5.0, 10.0)


def group_ratios(base: dict, new: dict) -> dict[str, float]:
    """The largest ratio of gated times (the fastest blocks) between two runs (either way), per group."""
    medians = [{b["name"]: (b["group"], gated_time(b)) for b in doc["benchmarks"] if b.get("extra_info")}
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


@dataclass(frozen=True)
class FalseAlarms:
    """Over every ordered pair of A/A runs (baseline, new), each confirmed by a third run (the next one after the new
    run that is neither): the alarms and the pairs that would fail, before and after confirmation."""
    runs: int
    pairs: int
    alarms: int
    failing_pairs: int
    confirmed_alarms: int
    failing_after_confirmation: int

    def line(self) -> str:
        return (f"Every ordered pair of these {self.runs} runs ({self.pairs}): {self.alarms} false alarms in "
                f"{self.failing_pairs} pairs at the defaults; confirmed by a third run, {self.confirmed_alarms} in "
                f"{self.failing_after_confirmation} pairs.")

def false_alarms(documents: list[dict], profile: NoiseProfile) -> FalseAlarms:
    n = len(documents)
    alarms = failing = confirmed_alarms = failing_confirmed = 0
    for i, j in itertools.permutations(range(n), 2):
        verdicts = gate.compare_documents([documents[i]], documents[j], profile=profile)[0]
        if not _slower(verdicts):
            continue
        alarms, failing = alarms + len(_slower(verdicts)), failing + 1
        third = next((k for k in (*range(j + 1, n), *range(n)) if k not in (i, j)), None)
        if third is None:  # two runs only: nothing to confirm with
            left = _slower(verdicts)
        else:
            again = gate.compare_documents([documents[i]], documents[third], profile=profile, partial=True)[0]
            left = _slower(gate.confirmed(verdicts, again))
        confirmed_alarms, failing_confirmed = confirmed_alarms + len(left), failing_confirmed + bool(left)
    return FalseAlarms(n, n * (n - 1), alarms, failing, confirmed_alarms, failing_confirmed)


def caught_and_confirmed(documents: list[dict], profile: NoiseProfile, factor: float) -> dict[str, tuple[int, int]]:
    """Per kind: in how many of the pairs (run i, run i+1), confirmed by run i+2 (cyclically), a `factor` slowdown
    injected into every latency and throughput benchmark of runs i+1 and i+2 is caught and confirmed, of how many
    (benchmarks measured mostly while the machine was slow are not counted)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    n = len(documents)
    for i in range(n if n > 2 else 0):
        base, new, again = documents[i], documents[(i + 1) % n], documents[(i + 2) % n]
        benches = {b["name"]: b for b in new["benchmarks"] if b.get("extra_info") and b["group"] in ("inference", "throughput")
                   and not measured_while_slow(b)}
        verdicts = gate.compare_documents([base], gate.with_slowdown(new, set(benches), factor), profile=profile)[0]
        confirming = gate.compare_documents([base], gate.with_slowdown(again, set(benches), factor), profile=profile,
                                            partial=True)[0]
        for verdict in gate.confirmed(verdicts, confirming):
            if verdict.name in benches and verdict.metric == "time":
                count = counts[kind(benches[verdict.name])]
                count[0] += verdict.verdict == gate.SLOWER
                count[1] += 1
    return {name: (caught, total) for name, (caught, total) in sorted(counts.items())}


def _slower(verdicts: list[gate.Verdict]) -> set[str]:
    return {v.name for v in verdicts if v.verdict == gate.SLOWER}


def _everywhere(steps: list[float | None]) -> float | None:
    """The smallest factor that catches every benchmark of a set in every pair: the largest of their smallest."""
    return None if None in steps else max(steps)


EVERYWHERE = "smallest slowdown caught for every benchmark in every pair"


def _shown(step: float | None) -> str:
    return f"{step:g}x" if step else f"none up to {FACTORS[-1]:g}x"


def study(pairs: list[tuple[Path, Path]], impl: str, factor: float, profile: NoiseProfile | None = None) -> Study:

    header = ["pair", "compared", "slower at the defaults", "faster", "largest A/A ratio: " + " / ".join(GROUPS),
              "measured while slow (no verdict)", f"{impl} {factor:g}x slower: caught", "confirmed by",
              "slower after confirmation", f"{impl} {factor:g}x slower: caught and confirmed"]
    pair_rows = []
    # (group|kind, name) -> per pair, the smallest factor at which every member is caught (None: not up to the last)
    smallest_per_pair: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    read = {path: read_document(path) for pair in pairs for path in pair}  # each run once: the pairs reuse them
    profile = load_profile(cpu=cpu_of(read[pairs[0][1]]["machine_info"])) if profile is None else profile
    false_alarm_count = confirmed_alarms = 0
    for index, (base_path, new_path) in enumerate(pairs, start=1):
        base, new = read[base_path], read[new_path]
        verdicts, _ = gate.compare_documents([base], new, profile=profile)
        timed = [v for v in verdicts if v.metric == "time"]
        alarms = [v.name for v in timed if v.verdict == gate.SLOWER]
        false_alarm_count += len(alarms)
        ratios = group_ratios(base, new)
        # a benchmark measured mostly while the machine was slow gets no verdict whatever its change: not counted
        slow = {b["name"] for doc in (base, new) for b in doc["benchmarks"] if measured_while_slow(b)}
        base_benches = {b["name"]: b for b in base["benchmarks"] if b.get("extra_info")}
        judged = [b for b in new["benchmarks"] if b.get("extra_info") and b["name"] in base_benches and b["name"] not in slow]
        targets = {b["name"] for b in judged if b["group"] in ("inference", "throughput") and (b.get("params") or {}).get("impl") == impl}
        injected = gate.with_slowdown(new, targets, factor)
        caught = _slower(gate.compare_documents([base], injected, profile=profile)[0]) & targets
        again_path = pairs[index % len(pairs)][1]  # the next pair's second run: the same code, another process
        again = read[again_path]
        confirmed = _slower(gate.confirmed(verdicts, gate.compare_documents([base], again, profile=profile, partial=True)[0]))
        injected_again = gate.with_slowdown(again, targets, factor)
        caught_again = _slower(gate.confirmed(gate.compare_documents([base], injected, profile=profile)[0],
                                              gate.compare_documents([base], injected_again, profile=profile, partial=True)[0]))
        pair_rows.append([f"{index}: {base_path.name} / {new_path.name}", len(timed),
                          f"{len(alarms)}" + (f" ({', '.join(alarms)})" if alarms else ""),
                          sum(v.verdict == gate.FASTER for v in timed),
                          " / ".join(f"{ratios[g]:.2f}" if g in ratios else "-" for g in GROUPS),
                          len(slow), f"{len(caught)}/{len(targets)}", again_path.name,
                          f"{len(confirmed)}" + (f" ({', '.join(sorted(confirmed))})" if confirmed else ""),
                          f"{len(caught_again & targets)}/{len(targets)}"])
        confirmed_alarms += len(confirmed)
        per_bench = {b["name"]: smallest_caught(base_benches[b["name"]], b, profile) for b in judged}
        for bench in judged:
            for subset in (("group", bench["group"]), ("kind", kind(bench))):
                smallest_per_pair[subset].append(per_bench[bench["name"]])
    by_group = {name: _everywhere(steps) for (what, name), steps in smallest_per_pair.items() if what == "group"}
    by_kind = {name: _everywhere(steps) for (what, name), steps in sorted(smallest_per_pair.items()) if what == "kind"}
    documents = [read[path] for pair in pairs for path in pair]
    lines = [*pipe_table(header, pair_rows), "",
             f"False alarms at the defaults: {false_alarm_count}; after confirmation: {confirmed_alarms}.", "",
             false_alarms(documents, profile).line(), ""]
    lines += pipe_table(["group", EVERYWHERE], ([group, _shown(step)] for group, step in by_group.items()))
    lines += ["", *pipe_table(["kind (group/impl/batch)", "allowance", EVERYWHERE],
                              ([name, _allowance(profile, name), _shown(step)] for name, step in by_kind.items()))]
    confirmed_counts = caught_and_confirmed(documents, profile, factor)
    if confirmed_counts:
        lines += ["", f"With confirmation: a {factor:g}x slowdown of every latency and throughput benchmark, run i against "
                  "run i+1 confirmed by run i+2 (cyclically):", "",
                  ]
        caught, total = (sum(values) for values in zip(*confirmed_counts.values()))
        lines += pipe_table(["kind (group/impl/batch)", "caught and confirmed"],
                            [*([name, f"{c} of {t}"] for name, (c, t) in confirmed_counts.items()), ["all", f"{caught} of {total}"]])
    return Study(lines, by_group, by_kind)


def _allowance(profile: NoiseProfile, key: str) -> str:
    value, source = profile.allowance_of(key)
    return f"{value:.0%}" + ("" if source == "profile" else " (its group's)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`sst2mlp-report noise`'s arguments (sst2mlp.report.cli)."""
    parser.add_argument("runs", type=Path, nargs="+", help="saved runs of the same code, in pairs")
    parser.add_argument("--impl", default="sparse", help="the impl whose latency and throughput get the slowdown")
    parser.add_argument("--factor", type=float, default=1.3, help="the injected slowdown (default 1.3)")
    parser.add_argument("--noise-profile", type=Path, metavar="JSON",
                        help="the noise profile check uses (default: the one the suite ships for the runs' CPU)")


def run(args: argparse.Namespace) -> int:
    if len(args.runs) < 2 or len(args.runs) % 2:
        args.parser.error(f"expected runs in pairs (an even number, at least 2), got {len(args.runs)}")
    pairs = list(zip(args.runs[::2], args.runs[1::2]))
    try:
        lines = study(pairs, args.impl, args.factor, (load_profile(args.noise_profile) if args.noise_profile else None)).lines
    except ReportError as error:
        print(f"sst2mlp-report noise: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
