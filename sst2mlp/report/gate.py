"""The regression gate: two saved runs compared benchmark by benchmark, noise-aware.

A timing counts as slower (or faster) only when its median moved by more than the threshold AND a
Mann-Whitney U test on the two runs' samples gives p below alpha (asv's rule: 10% and p < 0.002).
The samples are the medians of 20 consecutive blocks of rounds (`extra_info["samples"]`): single
rounds are correlated in time, blocks much less. A configuration's dev accuracy counts as dropped
when the 95% interval of the difference of the two runs' seed means lies below zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import stats
from ..contract import SST2_DEV_EXAMPLES
from .runs import ReportError, read_document

SLOWER, FASTER, SAME, NO_SAMPLES, SLOW_PHASE = "slower", "faster", "same", "no samples", "machine in a slow phase"
INVALID = "invalid median"  # not a finite positive number of seconds: the run is broken, never "same"
OLD_SLOW_PHASE_SPEED = 0.9  # runs saved before the quiet gate: a canary timed once, just before the benchmark
ACCURACY_DROP, ACCURACY_SAME = "accuracy dropped", "accuracy same"


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

    @property
    def fails(self) -> bool:
        return self.verdict in (SLOWER, ACCURACY_DROP, INVALID)


def machine_differences(baseline: dict, new: dict) -> list[str]:
    """What differs between two runs' machines in ways that move timings."""
    def describe(info):
        torch_info = info.get("torch", {})
        return {"CPU": info.get("cpu_model") or info.get("cpu", {}).get("brand_raw"), "torch": torch_info.get("version"),
                "threads": torch_info.get("threads"), "denormals": (info.get("denormals") or {}).get("mode")}
    a, b = describe(baseline), describe(new)
    return [f"{key} {a[key]!r} vs {b[key]!r}" for key in a if a[key] != b[key]]


def _samples(bench: dict) -> list[float] | None:
    samples = (bench.get("extra_info") or {}).get("samples") or (bench.get("stats") or {}).get("data")
    return list(samples) if samples else None


def compare_timing(name: str, base: dict, new: dict, threshold: float, alpha: float) -> Verdict:
    a, b = _samples(base), _samples(new)
    median_a, median_b = base["stats"].get("median"), new["stats"].get("median")
    if not (_valid_seconds(median_a) and _valid_seconds(median_b)):
        return Verdict(name, "time", median_a, median_b, None, None, None, INVALID)
    ratio = median_b / median_a
    if a is None or b is None or len(a) < 3 or len(b) < 3:
        return Verdict(name, "time", median_a, median_b, ratio, None, None, NO_SAMPLES)
    p = stats.mann_whitney_p(a, b)
    interval = stats.bootstrap_ratio_of_medians(a, b)
    verdict = SAME
    if p < alpha and abs(math.log(ratio)) > math.log(1 + threshold) and (_slow_phase(base) or _slow_phase(new)):
        verdict = SLOW_PHASE  # a difference, but the machine itself ran slow in one of the runs: no verdict on the code
    elif p < alpha and ratio > 1 + threshold:
        verdict = SLOWER
    elif p < alpha and ratio < 1 / (1 + threshold):
        verdict = FASTER
    return Verdict(name, "time", median_a, median_b, ratio, interval, p, verdict)


def _valid_seconds(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _slow_phase(bench: dict) -> bool:
    """Most of the benchmark's rounds ran while the machine was slow (the quiet gate's waiting budget ran out)."""
    info = bench.get("extra_info") or {}
    if "measured_while_slow" in info:
        return (info["measured_while_slow"] or 0.0) >= 0.5
    speed = info.get("machine_speed")  # None: the canary never ran (an untimed run)
    return speed is not None and speed < OLD_SLOW_PHASE_SPEED


def compare_accuracy(name: str, base: dict, new: dict) -> Verdict:
    def seeds(bench):
        info = bench["extra_info"]
        return [float(x) for x in info.get("accuracy_seeds") or [info["accuracy"]]], int(info.get("dev_examples") or SST2_DEV_EXAMPLES)

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


def compare(baseline: Path, new: Path, threshold: float = 0.10, alpha: float = 0.002,
            allow_different_machines: bool = False) -> tuple[list[Verdict], list[str]]:
    """Verdicts for every benchmark in both runs, and notes (benchmarks in one run only, machine differences)."""
    docs = [read_document(path) for path in (baseline, new)]
    differences = machine_differences(docs[0]["machine_info"], docs[1]["machine_info"])
    if differences and not allow_different_machines:
        raise ReportError(f"{baseline} and {new} come from different set-ups ({'; '.join(differences)}); their timings do not "
                          "compare. Pass --allow-different-machines to compare them anyway")
    saved = [[b for b in doc["benchmarks"] if isinstance(b, dict) and "stats" in b] for doc in docs]
    unfinished = sorted({b.get("name") for run in saved for b in run if not b.get("extra_info")})
    benches = [{b.get("name") or b.get("fullname"): b for b in run if b.get("extra_info")} for run in saved]
    notes = [f"different set-ups, compared as asked: {'; '.join(differences)}"] if differences else []
    if unfinished:  # saved by an interrupted run of an earlier version: its rounds stopped midway
        notes.append(f"{len(unfinished)} benchmark(s) without extra_info (interrupted before they finished), not compared: "
                     f"{', '.join(unfinished)}")
    only = sorted(set(benches[0]) ^ set(benches[1]))
    if not set(benches[0]) & set(benches[1]):
        raise ReportError(f"{baseline} ({len(benches[0])} benchmarks) and {new} ({len(benches[1])} benchmarks) have no "
                          "benchmark in common: nothing to compare; expected two runs of the same benchmarks")
    if only:
        notes.append(f"{len(only)} benchmark(s) in one run only, not compared: {', '.join(only)}")
    verdicts = []
    for name in sorted(set(benches[0]) & set(benches[1])):
        base, new_bench = benches[0][name], benches[1][name]
        verdicts.append(compare_timing(name, base, new_bench, threshold, alpha))
        if base.get("group") == "training" and "accuracy" in (base.get("extra_info") or {}) and "accuracy" in (new_bench.get("extra_info") or {}):
            verdicts.append(compare_accuracy(name, base, new_bench))
    return verdicts, notes


def format_table(verdicts: list[Verdict]) -> str:
    lines = [f"{'benchmark':58s} {'baseline':>11s} {'new':>11s} {'change':>9s} {'95% interval':>19s} {'p':>8s}  verdict"]
    for v in verdicts:
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
        lines.append(f"{name:58s} {values} {interval:>19s} {p:>8s}  {v.verdict}")
    return "\n".join(lines)


def _time(seconds: float) -> str:
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def summary(verdicts: list[Verdict]) -> str:
    labels = (INVALID, SLOWER, FASTER, SAME, SLOW_PHASE, NO_SAMPLES, ACCURACY_DROP, ACCURACY_SAME)
    counts = {label: sum(v.verdict == label for v in verdicts) for label in labels}
    text = ", ".join(f"{n} {label}" for label, n in counts.items() if n)
    return f"{'FAIL' if any(v.fails for v in verdicts) else 'PASS'}: {text}"
