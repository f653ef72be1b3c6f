"""How the regression gate does on a machine: A/A pairs of real runs of the same code, checked at the gate's defaults
(false alarms), and the same pairs with a slowdown injected into the second run (what it catches).

    sst2mlp-report noise RUN1 RUN2 [RUN3 RUN4 ...] [--impl sparse] [--factor 1.3]

Runs pair up in the order given (1 with 2, 3 with 4, ...). Prints, per pair, the verdicts at the defaults, the largest
between-run ratio of medians per group, and whether a `--factor` slowdown injected into every latency and throughput
benchmark of `--impl` (its samples and stats, as a regression would move them) is caught for each; then, per group,
the smallest injected slowdown caught for every benchmark of the group in every pair.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from ..contract import GROUPS
from . import gate
from .runs import ReportError, read_document

FACTORS = (1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.4, 1.5, 1.75, 2.0, 3.0, 5.0, 10.0)


def _write(folder: Path, name: str, document: dict) -> Path:
    path = folder / name
    path.write_text(json.dumps(document))
    return path


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


def study(pairs: list[tuple[Path, Path]], impl: str, factor: float, folder: Path) -> tuple[list[str], dict]:
    lines = ["| pair | compared | slower at the defaults | faster | largest A/A ratio: " + " / ".join(GROUPS) + " "
             f"| {impl} {factor:g}x slower: caught |", "|---|---|---|---|---|---|"]
    smallest: dict[str, dict[float, bool]] = defaultdict(dict)  # group -> factor -> caught everywhere
    false_alarms = 0
    for index, (base_path, new_path) in enumerate(pairs, start=1):
        base, new = read_document(base_path), read_document(new_path)
        verdicts, _ = gate.compare(base_path, new_path)
        timed = [v for v in verdicts if v.metric == "time"]
        slower = [v.name for v in timed if v.verdict == gate.SLOWER]
        false_alarms += len(slower)
        ratios = group_ratios(base, new)
        groups = {b["name"]: b["group"] for b in new["benchmarks"]}
        targets = {b["name"] for b in new["benchmarks"] if (b.get("params") or {}).get("impl") == impl and b["group"] != "training"}
        injected = _write(folder, f"pair{index}-{impl}.json", gate.with_slowdown(new, targets, factor))
        caught = {v.name for v in gate.compare(base_path, injected)[0] if v.verdict == gate.SLOWER} & targets
        lines.append(f"| {index}: {base_path.name} / {new_path.name} | {len(timed)} | {len(slower)}"
                     + (f" ({', '.join(slower)})" if slower else "") + f" | {sum(v.verdict == gate.FASTER for v in timed)} | "
                     + " / ".join(f"{ratios[g]:.2f}" if g in ratios else "-" for g in GROUPS)
                     + f" | {len(caught)}/{len(targets)} |")
        for group in GROUPS:
            members = {name for name, g in groups.items() if g == group}
            if not members:
                continue
            for step in FACTORS:
                slowed = _write(folder, f"pair{index}-{group}-{step}.json", gate.with_slowdown(new, members, step))
                found = {v.name for v in gate.compare(base_path, slowed)[0] if v.verdict == gate.SLOWER} & members
                smallest[group][step] = smallest[group].get(step, True) and found == members
    summary = {group: next((step for step in FACTORS if caught[step]), None) for group, caught in smallest.items()}
    lines += ["", f"False alarms at the defaults: {false_alarms}.", "",
              "| group | smallest slowdown caught for every benchmark in every pair |", "|---|---|"]
    lines += [f"| {group} | {f'{step:g}x' if step else f'none up to {FACTORS[-1]:g}x'} |" for group, step in summary.items()]
    return lines, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sst2mlp-report noise", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="saved runs of the same code, in pairs")
    parser.add_argument("--impl", default="sparse", help="the impl whose latency and throughput get the slowdown")
    parser.add_argument("--factor", type=float, default=1.3, help="the injected slowdown (default 1.3)")
    args = parser.parse_args(argv)
    if len(args.runs) < 2 or len(args.runs) % 2:
        parser.error(f"expected runs in pairs (an even number, at least 2), got {len(args.runs)}")
    pairs = list(zip(args.runs[::2], args.runs[1::2]))
    try:
        with tempfile.TemporaryDirectory() as folder:
            lines, _ = study(pairs, args.impl, args.factor, Path(folder))
    except ReportError as error:
        print(f"sst2mlp-report noise: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
