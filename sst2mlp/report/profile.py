"""A machine's noise profile: how far each kind of benchmark moves between runs of the same code on that machine, the
allowance the regression gate gives a benchmark when it has one baseline run.

    sst2mlp-report calibrate RUN RUN [RUN ...] --out noise-profile.json

A kind is (group, impl, batch size): the configurations of a grid share it, so a profile made from small runs serves
a larger grid. Its allowance is the largest spread of medians (max/min) over the runs of any benchmark of that kind,
raised to a margin and rounded up to whole percents: (max/min)^margin - 1. A/A pairs on a shared VM have heavy
tails, and a profile made of a few runs has seen only part of them; docs/gate.md has the held-out runs that chose
the margin (for a gate whose alarms are confirmed by a second run of the new code). What the gate gives no verdict is left out: benchmarks with fewer than 2
samples (one timed training round), and those measured mostly while the machine was slow (the quiet gate's
budget ran out). A kind the profile has
not seen gets its group's allowance (`GROUP_NOISE`).

The suite ships a profile for each CPU of the 2-core VMs it is developed on (PACKAGED, one file per CPU;
docs/gate.md says how each was made): the gate takes the one of the runs' CPU, else the first development VM's
(DEVELOPMENT_CPU). A profile made on the machine that runs the gate fits it better.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .runs import ReportError, cpu_of, finite_positive, gated_time, measured_while_slow, read_document

PACKAGED = Path(__file__).with_name("noise-profiles")  # one profile per CPU the suite is developed on
DEVELOPMENT_CPU = "AMD EPYC"  # whose profile serves a CPU the suite ships none for
MARGIN = 2.0  # chosen with the confirmation step on held-out A/A runs of the development VM: docs/gate.md
# A group's allowance for a kind no profile has seen: the largest A/A ratio - 1 seen on the development VMs over
# every impl, rounded up (docs/gate.md). Coldstart: processes importing torch from the page cache (1.42 in tests/data).
GROUP_NOISE = {"inference": 0.25, "throughput": 0.35, "training": 0.10, "coldstart": 0.50}


def kind(bench: dict) -> str:
    """The profile's key of a saved benchmark: group/impl/B<batch size>."""
    params = bench.get("params") or {}
    return f"{bench.get('group')}/{params.get('impl')}/B{params.get('batch_size')}"


@dataclass(frozen=True)
class NoiseProfile:
    allowances: dict[str, float]  # kind -> the change a benchmark of that kind may show between runs of the same code
    spreads: dict[str, float] = field(default_factory=dict)  # kind -> the largest spread the calibration runs showed
    cpu: str | None = None  # the CPU of the calibration runs
    margin: float = MARGIN
    runs: list[dict] = field(default_factory=list)  # file, commit, datetime of each calibration run
    path: str | None = field(default=None, compare=False)  # where it was read from (not saved)

    def allowance(self, bench: dict) -> tuple[float, str]:
        """The allowance for a saved benchmark, and where it comes from ("profile" or "group")."""
        return self.allowance_of(kind(bench))

    def allowance_of(self, key: str) -> tuple[float, str]:
        if key in self.allowances:
            return self.allowances[key], "profile"
        return GROUP_NOISE.get(key.split("/")[0], 0.0), "group"

    def updated_by(self, newer: NoiseProfile) -> NoiseProfile:
        """This profile with the kinds `newer` holds taken from it (a new impl's, or a changed one's), the rest kept;
        both must come from one CPU at one margin."""
        if (newer.cpu, newer.margin) != (self.cpu, self.margin):
            raise ReportError(f"the runs come from {newer.cpu} at margin {newer.margin:g}, the profile {self.path or ''} "
                              f"from {self.cpu} at margin {self.margin:g}; expected runs of the profile's CPU at its margin")
        runs = self.runs + [run | {"kinds": sorted(newer.allowances)} for run in newer.runs]
        return NoiseProfile(self.allowances | newer.allowances, self.spreads | newer.spreads, self.cpu, self.margin, runs)

    def save(self, path: Path) -> Path:
        document = {key: value for key, value in asdict(self).items() if key != "path"}
        path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        return path


def packaged_profile(cpu: str | None, folder: Path = PACKAGED) -> Path:
    """The profile the suite ships for `cpu`, else the one of DEVELOPMENT_CPU."""
    by_cpu = {load_profile(path).cpu: path for path in sorted(folder.glob("*.json"))}
    if DEVELOPMENT_CPU not in by_cpu:
        raise ReportError(f"{folder} holds no noise profile of {DEVELOPMENT_CPU}; expected the suite's own profiles "
                          "(a broken install: reinstall sst2mlp)")
    return by_cpu.get(cpu, by_cpu[DEVELOPMENT_CPU])


def load_profile(path: Path | None = None, cpu: str | None = None) -> NoiseProfile:
    """The profile at `path`, or the one the suite ships for `cpu` (packaged_profile). One clear error for a missing
    or malformed profile, naming the file and what was expected."""
    if path is None:
        path = packaged_profile(cpu)
    try:
        document = json.loads(Path(path).read_text())
    except OSError as error:
        raise ReportError(f"noise profile {path}: cannot read it ({error.strerror or error}); expected a file written "
                          "by sst2mlp-report calibrate") from None
    except ValueError as error:
        raise ReportError(f"noise profile {path} is not valid JSON ({error}); expected a file written by "
                          "sst2mlp-report calibrate") from None
    allowances = document.get("allowances") if isinstance(document, dict) else None
    if not isinstance(allowances, dict) or not all(isinstance(v, (int, float)) and 0 <= v < math.inf for v in allowances.values()):
        raise ReportError(f"noise profile {path} has no 'allowances' mapping each kind to a fraction of at least 0; "
                          "expected a file written by sst2mlp-report calibrate")
    return NoiseProfile(allowances={k: float(v) for k, v in allowances.items()}, spreads=document.get("spreads") or {},
                        cpu=document.get("cpu"), margin=document.get("margin", MARGIN), runs=document.get("runs") or [],
                        path=str(path))


def _judged(bench: dict) -> bool:
    """A timing the gate would judge: 2 or more samples, a median, and not measured while the machine was slow (the
    gate gives those no verdict when they move)."""
    info = bench.get("extra_info") or {}
    return (finite_positive((bench.get("stats") or {}).get("median")) and len(info.get("samples") or []) >= 2
            and not measured_while_slow(bench))


def spreads(documents: list[dict]) -> dict[str, float]:
    """Per kind, the largest spread of one benchmark's gated times (its fastest block) over the runs that judge it
    (max/min - 1)."""
    medians: dict[str, list[float]] = {}
    kinds: dict[str, str] = {}
    for document in documents:
        for bench in document.get("benchmarks", []):
            if isinstance(bench, dict) and _judged(bench):
                medians.setdefault(bench["name"], []).append(gated_time(bench))
                kinds[bench["name"]] = kind(bench)
    worst: dict[str, float] = {}
    for name, values in medians.items():
        if len(values) >= 2:
            worst[kinds[name]] = max(worst.get(kinds[name], 0.0), max(values) / min(values) - 1)
    return worst


def calibrate(paths: list[Path], margin: float = MARGIN) -> NoiseProfile:
    if len(paths) < 2:
        raise ReportError(f"calibrate needs at least 2 runs of the same code on this machine, got {len(paths)}")
    documents = [read_document(path) for path in paths]
    cpus = {cpu_of(document["machine_info"]) for document in documents}
    if len(cpus) > 1:
        raise ReportError(f"{', '.join(map(str, paths))} come from different CPUs ({', '.join(map(str, sorted(cpus, key=str)))}); "
                          "expected runs of the same code on one machine")
    worst = spreads(documents)
    if not worst:
        raise ReportError(f"{', '.join(map(str, paths))} share no benchmark with 2 or more samples; expected runs of the "
                          "same benchmarks (a training needs 2 or more timed rounds)")
    allowances = {key: math.ceil(((1 + spread) ** margin - 1) * 100 - 1e-9) / 100 for key, spread in worst.items()}
    runs = [{"file": Path(path).name, "commit": (document.get("commit_info") or {}).get("id"),
             "datetime": document.get("datetime")} for path, document in zip(paths, documents)]
    return NoiseProfile(allowances, {key: round(value, 4) for key, value in worst.items()}, cpus.pop(), margin, runs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`sst2mlp-report calibrate`'s arguments (sst2mlp.report.cli)."""
    parser.add_argument("runs", type=Path, nargs="+", help="saved runs of the same code on this machine (2 or more)")
    parser.add_argument("--out", type=Path, required=True, help="the profile to write (JSON); check reads it with --noise-profile")
    parser.add_argument("--margin", type=float, default=MARGIN, help=f"the allowance is (max/min)^margin - 1 of the spread seen (default {MARGIN:g})")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--update", type=Path, metavar="PROFILE",
                        help="start from this profile: the kinds the runs hold replace its own, the rest are kept "
                             "(after adding or changing an impl)")


def run(args: argparse.Namespace) -> int:
    if not (args.margin >= 1 and math.isfinite(args.margin)):
        args.parser.error(f"--margin: expected a number of at least 1, got {args.margin:g}")
    if args.out.exists() and not args.overwrite:
        args.parser.error(f"--out {args.out} exists; pass --overwrite to replace it, or choose another file")
    try:
        profile = calibrate(args.runs, args.margin)
        if args.update is not None:
            profile = load_profile(args.update).updated_by(profile)
        profile.save(args.out)
    except ReportError as error:
        print(f"sst2mlp-report calibrate: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"sst2mlp-report calibrate: error: cannot write {args.out} ({error.strerror or error}); expected a writable "
              "file path", file=sys.stderr)
        return 2
    width = max(map(len, profile.allowances))
    for key in sorted(profile.allowances):
        print(f"{key:{width}s}  spread {profile.spreads[key]:6.1%}  allowance {profile.allowances[key]:5.0%}")
    print(f"wrote {args.out} ({len(profile.allowances)} kinds from {len(profile.runs)} runs)")
    return 0
