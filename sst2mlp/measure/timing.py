"""The timing harness of the latency and throughput benchmarks: inputs built before timing, the number of rounds,
the timed loop behind the quiet gate, and what the timed rounds say (percentiles, stability)."""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sst2mlp import stats
from sst2mlp.contract import Percentiles, QuietGateInfo, Stability
from sst2mlp.impls.registry import Variant
from sst2mlp.reference.features import BagOfWords

from .quiet_gate import QuietGate

CALIBRATION_CALLS = 50  # at most; a slow benchmark stops after CALIBRATION_SECONDS of calls, and at least
CALIBRATION_MIN_CALLS = 5  # calls: a whole-dev pass of a slow runtime takes 0.1 s, 50 of them more than its timing
CALIBRATION_SECONDS = 0.25
MAX_ROUNDS = 300_000
PERCENTILES = (50, 90, 99)
PREPARATION_SECONDS = 0.05  # of timing a benchmark's input preparation (a few passes over its batches), untimed by it


class CyclingInputs:
    """Model inputs for consecutive row blocks of the dev set, built before timing; `next` cycles through them.

    batch_size 1 gives single-example latency; rows that do not fill a last block are left out.
    """

    def __init__(self, variant: Variant, dev: BagOfWords, batch_size: int):
        if batch_size > len(dev):
            raise ValueError(f"batch size {batch_size} exceeds the {len(dev)} dev examples")
        self.batch_size = batch_size
        starts = range(0, len(dev) - batch_size + 1, batch_size)
        self.rows = [dev.rows(start, start + batch_size) for start in starts]
        self.inputs = [variant.inputs(rows) for rows in self.rows]
        self.prepare = variant.inputs
        self.position = -1

    def next(self):
        self.position = (self.position + 1) % len(self.inputs)
        return self.inputs[self.position], {}

    def current(self) -> tuple:
        """The inputs `next` gave last (for the quiet gate's untimed calls, which must not warm the next round's)."""
        return self.inputs[max(self.position, 0)]


def per_call_seconds(stmt: str, globals_: dict, calls: int, min_run_time: float, **task) -> tuple:
    """torch.utils.benchmark's blocked_autorange of `stmt`, which makes `calls` calls: the Measurement per call
    (`task`: its label, sub_label, description, num_threads), and its median."""
    from torch.utils import benchmark

    whole = benchmark.Timer(stmt, globals=globals_, **task).blocked_autorange(min_run_time=min_run_time)
    per_call = benchmark.Measurement(whole.number_per_run * calls, whole.raw_times, whole.task_spec)
    return per_call, per_call.median


def input_preparation_seconds(inputs: CyclingInputs, threads: int, min_run_time: float = PREPARATION_SECONDS) -> float:
    """Median seconds per call of turning a batch's rows (the suite's CSR BagOfWords) into what the impl takes (padded
    ids, repeated words, count rows, numpy views): the work a deployment does for every request, outside the model."""
    _, median = per_call_seconds("for rows in batches: prepare(rows)", {"prepare": inputs.prepare, "batches": inputs.rows},
                                 len(inputs.rows), min_run_time, num_threads=threads)
    return median


def calibrated_rounds(forward, setup, min_rounds: int, min_time: float,
                      clock: Callable[[], float] = time.perf_counter) -> int:
    """At least `min_rounds`, and enough rounds to time for `min_time` seconds at the speed of the fastest of a few
    untimed calls (a call slowed by the machine would make the measurement too short)."""
    fastest, spent = float("inf"), 0.0
    for call in range(CALIBRATION_CALLS):
        if call >= CALIBRATION_MIN_CALLS and spent >= CALIBRATION_SECONDS:
            break
        args, _ = setup()
        start = clock()
        forward(*args)
        duration = clock() - start
        fastest, spent = min(fastest, duration), spent + duration
    needed = max(min_rounds, int(np.ceil(min_time / max(fastest, 1e-9))))
    if needed > MAX_ROUNDS:
        warnings.warn(f"--sst2-min-time {min_time:g} s: a benchmark faster than {min_time / MAX_ROUNDS * 1e6:.2f} us per call "
                      f"is timed for {MAX_ROUNDS:,} rounds only, which is shorter", stacklevel=2)
    return min(MAX_ROUNDS, needed)


@dataclass(frozen=True)
class Timing:
    """What one timed benchmark measured: its rounds' seconds and how the quiet gate went; both None when
    pytest-benchmark did not time it (--benchmark-disable, or under xdist, where it disables itself)."""

    seconds: list[float] | None = None
    gate: QuietGateInfo | None = None

    @property
    def timed(self) -> bool:
        return self.seconds is not None

    def median(self) -> float | None:
        return None if self.seconds is None else float(np.median(self.seconds))

    def stability(self) -> Stability | None:
        return None if self.seconds is None else stability(self.seconds)

    def percentiles(self) -> Percentiles | None:
        return None if self.seconds is None else percentiles(self.seconds)


def time_forward(benchmark, forward, inputs: CyclingInputs, gate: Callable[[], QuietGate], min_rounds: int,
                 warmup_rounds: int, min_time: float) -> Timing:
    """Time `forward` on the cycled inputs for at least `min_rounds` rounds and `min_time` seconds, each round at full
    machine speed as far as the quiet gate can tell. Untimed (--benchmark-disable): one call, no gate, no calibration."""
    with torch.inference_mode():
        if not benchmark.enabled:
            benchmark.pedantic(forward, setup=inputs.next)
            return Timing()
        quiet = gate()
        rounds = calibrated_rounds(forward, quiet, min_rounds, min_time)
        benchmark.pedantic(forward, setup=quiet, warmup_rounds=warmup_rounds, rounds=rounds)
    seconds = round_seconds(benchmark)
    return Timing(seconds, QuietGateInfo(**quiet.info()) if seconds is not None else None)


def round_seconds(benchmark) -> list[float] | None:
    """The timed rounds of a finished pedantic benchmark, or None when pytest-benchmark did not time it."""
    return None if benchmark.stats is None else list(benchmark.stats.stats.data)


def percentiles(seconds: list[float]) -> Percentiles:
    p50, p90, p99 = (float(v) for v in np.percentile(np.asarray(seconds), PERCENTILES))
    return Percentiles(p50, p90, p99)


def stability(seconds: list[float]) -> Stability:
    """The timed rounds' spread (sst2mlp.stats) and the samples the regression gate compares."""
    return Stability(**stats.spread(seconds), samples=stats.block_medians(seconds))
