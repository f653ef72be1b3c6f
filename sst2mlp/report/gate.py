"""The regression gate: a new run compared with one or more baseline runs, benchmark by benchmark, noise-aware.

Each run is represented by its fastest block (runs.gated_time): noise between runs of the same code only adds time,
so the fastest block moves less between them than the median. A timing counts as slower (or faster) only when
1. its fastest block moved by more than the benchmark's allowance: the threshold, or the benchmark's spread between
   runs of the same code if that is larger: the machine's noise profile (sst2mlp.report.profile: per group, impl
   and batch size, measured by A/A runs; the suite ships the development VMs'), or the spread of several baseline
   runs where that is larger still. Within-run samples cannot see between-run noise (which benchmarks ran in which
   minute, a neighbour's memory traffic), so the ratio is judged against it.
2. and the difference is significant in the samples (the faster half of the medians of 20 consecutive blocks of
   rounds, or a training's rounds): a Mann-Whitney U test with p below alpha (asv's rule), where the numbers of
   samples let it reach alpha; where they cannot (4 training rounds per side: p >= 0.03), every sample of one run
   must lie beyond every sample of the other (the strongest evidence so few samples can give).
A timing change can also be replicated: confirmation runs (`confirm`: the new code measured again in fresh processes,
for example only the benchmarks the first check called slower, `suspect_ids`) are compared with the baselines in the
same way, and a change stands only where every confirmation run that holds the benchmark shows it too. Between-run
noise has a long tail (a process or a minute of the machine 1.5x slower than the calibration runs ever saw), and two
independent draws from that tail on the same benchmark are rare, while a real slowdown shows in every run.
A configuration's dev accuracy counts as dropped when the 95% interval of the difference of the two runs' seed
means lies below zero.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sst2mlp import stats

from .profile import NoiseProfile, load_profile
from .runs import ReportError, cpu_of, finite_positive, gated_time, measured_while_slow, read_document

SLOWER, FASTER, SAME, NO_SAMPLES, SLOW_PHASE = "slower", "faster", "same", "too few samples", "machine in a slow phase"
NOT_REPRODUCED = "not reproduced"  # slower or faster in the new run, not in a confirmation run of the same code
INVALID = "invalid median"  # not a finite positive number of seconds: the run is broken, never "same"
ACCURACY_DROP, ACCURACY_SAME = "accuracy dropped", "accuracy same"
THRESHOLD, ALPHA = 0.10, 0.002  # check's defaults: the smallest change that counts, the U test's significance level


@dataclass(frozen=True)
class Verdict:
    name: str
    metric: str  # "time" or "accuracy"
    baseline: float | None
    new: float | None
    ratio: float | None  # new / baseline (time); new - baseline (accuracy)
    interval: list[float] | None
    p_value: float | None
    verdict: str
    allowance: float | None = None  # the change a timing may show without counting: max(threshold, between-run noise)
    test: str = ""  # "U" (Mann-Whitney) or "separation" (too few samples for the U test to reach alpha)
    noise: str = ""  # where the between-run noise came from: "baselines", "profile", "group" (no kind in the profile)

    @property
    def fails(self) -> bool:
        return self.verdict in (SLOWER, ACCURACY_DROP, INVALID)


def with_slowdown(document: dict, names: set[str], factor: float) -> dict:
    """A copy of a saved run in which the named benchmarks' samples and time stats are `factor` times slower: what a
    regression of that size would save (for testing the gate on real runs)."""
    copied = copy.deepcopy({key: value for key, value in document.items() if key != "benchmarks"})
    copied["benchmarks"] = [slowed(bench, factor) if bench.get("name") in names else copy.deepcopy(bench)
                            for bench in document["benchmarks"]]
    return copied


def slowed(bench: dict, factor: float) -> dict:
    """A copy of one saved benchmark whose samples and time stats are `factor` times slower."""
    bench = copy.deepcopy(bench)
    info = bench.get("extra_info") or {}
    if info.get("samples"):
        info["samples"] = [x * factor for x in info["samples"]]
    for stat in ("min", "max", "mean", "median"):
        bench["stats"][stat] *= factor
    if bench["stats"].get("data"):
        bench["stats"]["data"] = [x * factor for x in bench["stats"]["data"]]
    return bench


def machine_differences(baseline: dict, new: dict) -> list[str]:
    """What differs between two runs' machines in ways that move timings."""
    def describe(info):
        torch_info = info.get("torch", {})
        return {"CPU": cpu_of(info), "torch": torch_info.get("version"),
                "threads": torch_info.get("threads"), "denormals": (info.get("denormals") or {}).get("mode"),
                "runtimes": {name: entry.get("version") for name, entry in (info.get("runtimes") or {}).items()} or None}
    a, b = describe(baseline), describe(new)
    return [f"{key} {a[key]!r} vs {b[key]!r}" for key in a if a[key] != b[key]]


def _samples(bench: dict) -> list[float] | None:
    samples = (bench.get("extra_info") or {}).get("samples") or (bench.get("stats") or {}).get("data")
    return list(samples) if samples else None


def fastest_half(samples: list[float]) -> list[float]:
    """The samples the significance test compares: the faster half of a run's blocks where it has 8 or more (noise
    only adds time, so the slower blocks are the ones a phase of the machine reached; 10 a side still reach p < 1e-4),
    all of them where it has fewer (a training's rounds)."""
    ordered = sorted(samples)
    return ordered[:(len(ordered) + 1) // 2] if len(ordered) >= 8 else ordered


def separation_p(n1: int, n2: int) -> float:
    """The smallest p-value the U test gives for n1 against n2 samples (every sample of one side beyond the other's)."""
    return stats.mann_whitney_p(list(range(n1)), list(range(n1, n1 + n2)))


def between_run_noise(bases: list[dict], new: dict, profile: NoiseProfile) -> tuple[float, str]:
    """How far the benchmark moves between runs of the same code, and where that figure comes from: the noise profile,
    or the baselines' spread where several baselines moved further apart than the profile allows (a few runs see
    only part of the tail the profile was made to cover, so their spread never narrows it)."""
    noise, source = profile.allowance(new)
    if len(bases) > 1:
        times = [gated_time(base) for base in bases]
        spread = max(times) / min(times) - 1
        if spread > noise:
            return spread, "baselines"
    return noise, source


def compare_timing(name: str, bases: list[dict], new: dict, threshold: float, alpha: float,
                   profile: NoiseProfile, with_interval: bool = True) -> Verdict:
    """`bases`: the benchmark in each baseline run (one or more). The bootstrap interval is for the reader: the verdict
    does not use it (with_interval=False leaves it out)."""
    medians = [base["stats"].get("median") for base in bases]
    if not (all(finite_positive(m) for m in medians) and finite_positive(new["stats"].get("median"))):
        bad = next((m for m in medians if not finite_positive(m)), medians[0])
        return Verdict(name, "time", bad, new["stats"].get("median"), None, None, None, INVALID)
    time_a = float(np.median([gated_time(base) for base in bases]))
    time_b = gated_time(new)
    ratio = time_b / time_a
    noise, source = between_run_noise(bases, new, profile)
    allowance = max(threshold, noise)
    per_base, b = [_samples(base) for base in bases], _samples(new)
    if b is None or None in per_base or min(len(samples) for samples in [*per_base, b]) < 2:  # one round: nothing to test
        return Verdict(name, "time", time_a, time_b, ratio, None, None, NO_SAMPLES, allowance, noise=source)
    a, b = [x for samples in per_base for x in fastest_half(samples)], fastest_half(b)
    p = stats.mann_whitney_p(a, b)
    interval = stats.bootstrap_ratio_of_medians(a, b) if with_interval else None
    if separation_p(len(a), len(b)) < alpha:
        test, slower_evidence, faster_evidence = "U", p < alpha, p < alpha
    else:
        test, slower_evidence, faster_evidence = "separation", min(b) > max(a), max(b) < min(a)
    moved = abs(math.log(ratio)) > math.log(1 + allowance)
    verdict = SAME
    if moved and (slower_evidence or faster_evidence) and (any(measured_while_slow(base) for base in bases) or measured_while_slow(new)):
        verdict = SLOW_PHASE  # a difference, but the machine itself ran slow in one of the runs: no verdict on the code
    elif moved and ratio > 1 and slower_evidence:
        verdict = SLOWER
    elif moved and ratio < 1 and faster_evidence:
        verdict = FASTER
    return Verdict(name, "time", time_a, time_b, ratio, interval, p, verdict, allowance, test, source)


def compare_accuracy(name: str, base: dict, new: dict) -> Verdict:
    def seeds(bench):
        info = bench["extra_info"]
        return [float(x) for x in info.get("accuracy_seeds") or [info["accuracy"]]], int(info["dev_examples"])

    (a, n_dev), (b, _) = seeds(base), seeds(new)
    difference = float(np.mean(b) - np.mean(a))
    if len(a) > 1 and len(b) > 1:
        se = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
        half = stats.t95(min(len(a), len(b)) - 1) * se
    else:  # one model each: the binomial noise of accuracy on n_dev examples, for both sides
        p = float(np.mean(a))
        half = 1.96 * math.sqrt(2 * p * (1 - p) / n_dev)
    interval = [difference - half, difference + half]
    verdict = ACCURACY_DROP if interval[1] < 0 else ACCURACY_SAME
    return Verdict(name, "accuracy", float(np.mean(a)), float(np.mean(b)), difference, interval, None, verdict)


def compare(baselines: Path | list[Path], new: Path, threshold: float = THRESHOLD, alpha: float = ALPHA,
            allow_different_machines: bool = False, profile: NoiseProfile | None = None,
            confirm: list[Path] = ()) -> tuple[list[Verdict], list[str]]:
    """Verdicts for every benchmark in the new run and every baseline, and notes (benchmarks not in every run, machine
    differences). The between-run noise: the profile's (default: the one the suite ships), or the spread of several
    baselines (runs of the baseline code) where larger. `confirm`: runs of the new code again (any subset of its
    benchmarks); a timing change stands only where each of them that holds the benchmark shows it too."""
    baselines = [baselines] if isinstance(baselines, Path) else list(baselines)
    docs = [read_document(path) for path in (*baselines, new)]
    profile = load_profile(cpu=cpu_of(docs[-1]["machine_info"])) if profile is None else profile  # once, for every compare
    verdicts, notes = compare_documents(docs[:-1], docs[-1], threshold, alpha, allow_different_machines, profile,
                                        labels=[*map(str, baselines), str(new)])
    for path in confirm:
        again, again_notes = compare_documents(docs[:-1], read_document(path), threshold, alpha, allow_different_machines,
                                               profile, labels=[*map(str, baselines), str(path)], partial=True)
        verdicts = confirmed(verdicts, again)
        notes += [note for note in again_notes if note not in notes]
    return verdicts, notes


def confirmed(verdicts: list[Verdict], again: list[Verdict]) -> list[Verdict]:
    """The verdicts with each timing change that a confirmation run (`again`, the same benchmarks judged on it) does
    not show marked NOT_REPRODUCED; benchmarks the confirmation run does not hold keep their verdict."""
    repeated = {v.name: v for v in again if v.metric == "time"}
    def judged(v: Verdict) -> Verdict:
        twin = repeated.get(v.name)
        if v.metric != "time" or v.verdict not in (SLOWER, FASTER) or twin is None or twin.verdict == v.verdict:
            return v
        return replace(v, verdict=NOT_REPRODUCED)
    return [judged(v) for v in verdicts]


def suspect_ids(verdicts: list[Verdict], new: Path) -> list[str]:
    """pytest node ids of the new run's benchmarks judged slower: what to measure again for `confirm`."""
    slower = {v.name for v in verdicts if v.verdict == SLOWER}
    return sorted(b.get("fullname") or b["name"] for b in read_document(new)["benchmarks"] if b.get("name") in slower)


def compare_documents(baselines: list[dict], new: dict, threshold: float = THRESHOLD, alpha: float = ALPHA,
                      allow_different_machines: bool = False, profile: NoiseProfile | None = None,
                      labels: list[str] | None = None, partial: bool = False) -> tuple[list[Verdict], list[str]]:
    """`compare` on runs already read (`labels`: what the errors call them, the new run last). `partial`: the new run
    holds only some of the benchmarks (a confirmation run): the others are not listed as missing."""
    profile = load_profile(cpu=cpu_of(new["machine_info"])) if profile is None else profile
    docs = [*baselines, new]
    labels = labels or [f"baseline {i}" for i in range(1, len(baselines) + 1)] + ["the new run"]
    differences = sorted({d for doc in docs[:-1] for d in machine_differences(doc["machine_info"], docs[-1]["machine_info"])})
    if differences and not allow_different_machines:
        raise ReportError(f"{', '.join(labels[:-1])} and {labels[-1]} come from different set-ups ({'; '.join(differences)}); "
                          "their timings do not compare. Pass --allow-different-machines to compare them anyway")
    saved = [[b for b in doc["benchmarks"] if isinstance(b, dict) and "stats" in b] for doc in docs]
    unfinished = sorted({b.get("name") for run in saved for b in run if not b.get("extra_info")})
    benches = [{b.get("name") or b.get("fullname"): b for b in run if b.get("extra_info")} for run in saved]
    notes = [f"different set-ups, compared as asked: {'; '.join(differences)}"] if differences else []
    cpu = cpu_of(docs[-1]["machine_info"])
    if profile.cpu is not None and cpu != profile.cpu:
        notes.append(f"the noise profile {profile.path or ''} was measured on {profile.cpu}, these runs on {cpu}: its "
                     "allowances may not fit this machine (make one with sst2mlp-report calibrate)")
    if unfinished:  # saved by an interrupted run of an earlier version: its rounds stopped midway
        notes.append(f"{len(unfinished)} benchmark(s) without extra_info (interrupted before they finished), not compared: "
                     f"{', '.join(unfinished)}")
    common = set.intersection(*(set(run) for run in benches))
    if not common:
        raise ReportError(f"{', '.join(labels[:-1])} and {labels[-1]} ({' and '.join(str(len(run)) for run in benches)} "
                          "benchmarks) have no benchmark in common: nothing to compare; expected runs of the same benchmarks")
    only = sorted(set.union(*(set(run) for run in benches)) - common)
    if only and not partial:
        notes.append(f"{len(only)} benchmark(s) not in every run, not compared: {', '.join(only)}")
    verdicts = []
    for name in sorted(common):
        bases, new_bench = [run[name] for run in benches[:-1]], benches[-1][name]
        verdicts.append(compare_timing(name, bases, new_bench, threshold, alpha, profile))
        if new_bench.get("group") == "training" and all("accuracy" in (b.get("extra_info") or {}) for b in (*bases, new_bench)):
            verdicts.append(compare_accuracy(name, bases[0], new_bench))
    return verdicts, notes


def format_table(verdicts: list[Verdict]) -> str:
    lines = [f"{'benchmark':58s} {'baseline':>11s} {'new':>11s} {'change':>9s} {'allowed':>8s} {'95% interval':>19s} "
             f"{'p':>8s} {'test':>10s}  verdict"]
    for v in verdicts:
        allowed = f"+-{v.allowance:.0%}{NOISE_MARKS.get(v.noise, '')}" if v.allowance is not None else "-"
        if v.verdict == INVALID:
            values, interval, p = f"{v.baseline!s:>11.11s} {v.new!s:>11.11s} {'-':>9s}", "-", "-"
        elif v.metric == "time":
            values = f"{_time(v.baseline):>11s} {_time(v.new):>11s} {v.ratio:>8.3f}x"
            interval = f"[{v.interval[0]:.3f}, {v.interval[1]:.3f}]" if v.interval else "-"
            p = f"{v.p_value:.1e}" if v.p_value is not None else "-"
        else:
            values = f"{v.baseline:>11.4f} {v.new:>11.4f} {v.ratio * 100:>+8.2f}p"
            interval = f"[{v.interval[0] * 100:+.2f}, {v.interval[1] * 100:+.2f}]p"
            p = "-"
        name = v.name if v.metric == "time" else f"{v.name} accuracy"
        lines.append(f"{name:58s} {values} {allowed:>8s} {interval:>19s} {p:>8s} {v.test or '-':>10s}  {v.verdict}")
    return "\n".join(lines)


NOISE_MARKS = {"baselines": "b", "profile": "p", "group": "g"}
NOISE_LEGEND = ("baseline, new: each run's fastest block of rounds (several baselines: the median of theirs); allowed: "
                "max(threshold, between-run noise); the noise from b the baselines' spread, p the noise profile, g its "
                "group's default (a kind the profile has not seen); p: the U test on the faster half of the blocks")


def _time(seconds: float) -> str:
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def summary(verdicts: list[Verdict]) -> str:
    labels = (INVALID, SLOWER, FASTER, NOT_REPRODUCED, SAME, SLOW_PHASE, NO_SAMPLES, ACCURACY_DROP, ACCURACY_SAME)
    counts = {label: sum(v.verdict == label for v in verdicts) for label in labels}
    text = ", ".join(f"{n} {label}" for label, n in counts.items() if n)
    return f"{'FAIL' if any(v.fails for v in verdicts) else 'PASS'}: {text}"
