"""The timing harness with stand-ins for pytest-benchmark's fixture and the clock: no real timing here."""
import dataclasses
import itertools
from types import SimpleNamespace

import pytest

from sst2mlp.measure import timing
from sst2mlp.measure.timing import Timing, calibrated_rounds, time_forward
from sst2mlp.suite import plugin


class Benchmark:
    """What time_forward uses of pytest-benchmark's fixture: `enabled`, `pedantic` (calls setup and target per round,
    warm-up included) and afterwards `stats`."""

    def __init__(self, enabled: bool):
        self.enabled, self.stats, self.calls = enabled, None, 0

    def pedantic(self, target, setup, warmup_rounds=0, rounds=1):
        for _ in range(warmup_rounds + rounds if self.enabled else 1):
            args, _ = setup()
            target(*args)
            self.calls += 1
        if self.enabled:
            self.stats = SimpleNamespace(stats=SimpleNamespace(data=[1e-3] * rounds))


class Inputs:
    def next(self):
        return ((), {})


class Gate:
    def __init__(self):
        self.setup = Inputs().next

    def __call__(self):
        return self.setup()

    def info(self):
        return {"machine_speed": 1.0, "measured_while_slow": 0.0, "waited_for_quiet_seconds": 0.0}


def test_an_untimed_run_calls_once_without_the_quiet_gate_or_calibration():
    def no_gate():
        raise AssertionError("the quiet gate was set up for an untimed benchmark")

    benchmark, calls = Benchmark(enabled=False), []
    result = time_forward(benchmark, lambda: calls.append(1), Inputs(), no_gate, min_rounds=100, warmup_rounds=5, min_time=1.0)
    assert result == Timing() and not result.timed and len(calls) == 1


def test_a_timed_run_calibrates_then_times_behind_the_gate():
    benchmark, calls = Benchmark(enabled=True), []
    result = time_forward(benchmark, lambda: calls.append(1), Inputs(), Gate, min_rounds=10, warmup_rounds=2, min_time=1e-9)
    assert len(calls) == timing.CALIBRATION_CALLS + 2 + 10
    assert result.seconds == [1e-3] * 10 and result.gate.machine_speed == 1.0 and result.median() == 1e-3


def test_calibration_counts_rounds_at_the_fastest_calls_speed():
    slow, fast = 2.0**-10, 2.0**-13  # about 1 ms and 0.12 ms, exact in binary: the clock's sums stay exact
    durations = itertools.chain([slow] * 10, [fast], [slow] * 39)  # one call 8x faster than the rest
    clock = itertools.accumulate(itertools.chain.from_iterable((0.0, d) for d in durations))
    rounds = calibrated_rounds(lambda: None, Inputs().next, min_rounds=10, min_time=1.0, clock=lambda: next(clock))
    assert rounds == 2**13  # 1 s at the fastest call's speed


def test_calibration_of_a_slow_call_stops_after_its_time_budget():
    calls = []
    ticks = itertools.accumulate(itertools.cycle((0.0, 0.1)))  # every call 0.1 s
    rounds = calibrated_rounds(lambda: calls.append(1), Inputs().next, min_rounds=20, min_time=1.0, clock=lambda: next(ticks))
    assert len(calls) == timing.CALIBRATION_MIN_CALLS  # 0.25 s of calls is passed after 3, but 5 are the least
    assert rounds == 20


def test_calibration_keeps_the_minimum_rounds_and_the_cap():
    def clock_at(duration):
        ticks = itertools.accumulate(itertools.cycle((0.0, duration)))
        return lambda: next(ticks)

    assert calibrated_rounds(lambda: None, Inputs().next, min_rounds=500, min_time=0.01, clock=clock_at(1e-3)) == 500
    with pytest.warns(UserWarning, match=r"--sst2-min-time 1e\+09 s: a benchmark faster than .* is timed for 300,000 rounds only"):
        assert calibrated_rounds(lambda: None, Inputs().next, min_rounds=1, min_time=1e9, clock=clock_at(1e-3)) == timing.MAX_ROUNDS


@pytest.mark.parametrize("argnames", ["impl,batch_size", ("impl", "batch_size"), ["impl", " batch_size"]])
def test_parametrize_names_are_read_as_a_string_or_a_sequence(argnames):
    assert plugin._names(argnames) == ["impl", "batch_size"]


def test_percentiles_and_stability_of_the_rounds():
    seconds = [float(i) for i in range(1, 101)]
    assert dataclasses.astuple(timing.percentiles(seconds)) == pytest.approx((50.5, 90.1, 99.01))
    verdict = timing.stability(seconds)
    # pytest-benchmark's quartiles (the medians of the lower and upper halves): 25.5 and 75.5
    assert verdict.unstable and verdict.iqr_over_median == pytest.approx(50 / 50.5) and len(verdict.samples) == 20
