"""The quiet gate with a fake clock and scripted canary readings: when it waits, when it stops waiting, what it records."""
import itertools

import pytest

from sst2mlp.measure.quiet_gate import Canary, QuietGate, spin_canary

FULL_SPEED = 1e-6  # canary seconds at full speed


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def scripted_gate(readings, max_wait=10.0, check_interval=0.002, quiet_speed=0.8):
    """A gate whose canary returns `readings` in turn (then full speed), and whose setup counts its calls."""
    clock, readings, calls = FakeClock(), iter(readings), []
    canary = Canary(measure=lambda: next(readings, FULL_SPEED), best=FULL_SPEED)
    gate = QuietGate(canary, lambda: calls.append(clock.now) or ((), {}), max_wait, check_interval,
                     pause=0.001, sleep=clock.sleep, clock=clock, quiet_speed=quiet_speed)
    return gate, clock, calls


def test_at_full_speed_the_gate_never_waits_and_checks_once_per_interval():
    gate, clock, calls = scripted_gate([])
    for _ in range(10):
        gate()
        clock.now += 0.0007  # a 0.7 ms round
    assert len(calls) == 10 and gate.waited == 0
    assert gate.checks == 4  # before the rounds at 0, 2.1, 4.2 and 6.3 ms
    assert gate.info() == {"machine_speed": 1.0, "measured_while_slow": 0.0, "waited_for_quiet_seconds": 0.0,
                           "slow_rounds": 0, "quiet_speed": 0.8}


def test_a_slow_phase_is_waited_out_before_the_next_round():
    slow = 2 * FULL_SPEED  # speed 0.5
    gate, _clock, calls = scripted_gate([slow] * 5)
    gate()
    assert calls == [pytest.approx(0.005)]  # five slow readings, a 1 ms pause after each, then the round
    assert gate.slow_checks == 5 and gate.info()["waited_for_quiet_seconds"] == 0.005
    assert gate.info()["machine_speed"] == 1.0 and gate.info()["measured_while_slow"] == 0.0


@pytest.mark.parametrize("quiet_speed, waits", [(0.8, False), (0.9, True)])
def test_a_stricter_threshold_also_waits_out_the_slower_part_of_full_speed(quiet_speed, waits):
    gate, _clock, calls = scripted_gate([FULL_SPEED / 0.85] * 3, quiet_speed=quiet_speed)  # three readings of 0.85
    gate()
    assert len(calls) == 1 and gate.slow_checks == (3 if waits else 0)
    assert gate.info()["quiet_speed"] == quiet_speed and gate.info()["machine_speed"] == (1.0 if waits else 0.85)


def test_when_the_budget_runs_out_it_measures_anyway_and_says_so():
    slow = 2 * FULL_SPEED
    gate, clock, calls = scripted_gate([slow] * 1000, max_wait=0.003)
    gate()
    assert calls and 0.003 <= gate.waited < 0.005
    clock.now += 0.01
    gate()  # budget spent: no more waiting
    assert len(calls) == 2 and gate.waited < 0.005
    assert gate.info()["measured_while_slow"] == 1.0 and gate.info()["machine_speed"] == 0.5


def test_zero_budget_never_waits_but_still_records_the_speed():
    gate, _clock, calls = scripted_gate([2 * FULL_SPEED], max_wait=0.0)
    gate()
    assert calls == [0.0] and gate.info()["measured_while_slow"] == 1.0


def test_the_best_reading_is_the_full_speed_and_calibration_finds_it():
    readings = iter([3e-6, 1e-6, 2e-6])
    clock = FakeClock()
    canary = Canary(measure=lambda: next(readings, 2e-6))
    canary.calibrate(seconds=0.01, pause=0.002, sleep=clock.sleep, clock=clock)
    assert canary.best == 1e-6 and canary.speed() == 0.5


def test_the_spin_canary_reads_its_fastest_loop():
    readings = iter([0.0, 5e-6, 5e-6, 7e-6, 7e-6, 10e-6])  # (start, end) of three loops: 5, 2 and 3 us
    assert spin_canary(repeats=3, clock=lambda: next(readings)) == pytest.approx(2e-6)


def paced_gate(probe_seconds, max_wait=10.0):
    """A gate at full canary speed whose probe takes `probe_seconds` in turn (then 1 ms) on the fake clock."""
    gate, clock, calls = scripted_gate([], max_wait=max_wait)
    durations, probes = iter(probe_seconds), []

    def probe():
        probes.append(clock.now)
        clock.now += next(durations, 0.001)

    gate.probe = probe
    return gate, clock, calls, probes


def run_rounds(gate, clock, round_seconds):
    for seconds in round_seconds:
        gate()
        clock.now += seconds


def test_after_a_long_round_that_ran_slow_the_gate_probes_until_the_benchmark_is_at_its_pace_again():
    gate, clock, calls, probes = paced_gate([0.0016, 0.0014, 0.0011])
    run_rounds(gate, clock, [0.001, 0.001, 0.0015, 0.001])
    gate()
    assert len(calls) == 5 and len(probes) == 3  # the 1.5 ms round: probes at 1.6 and 1.4 ms are slow, 1.1 ms is not
    assert gate.slow_rounds == 1
    assert gate.waited == pytest.approx(0.0016 + 0.0014 + 0.0011)  # the probes, from the budget
    assert gate.info()["slow_rounds"] == 1


def test_rounds_within_their_usual_spread_or_too_short_to_pace_never_probe():
    gate, clock, _calls, probes = paced_gate([])
    run_rounds(gate, clock, [0.001, 0.0012, 0.00124, 0.001])  # at most 1.24x the fastest
    short, short_clock, _, short_probes = paced_gate([])
    run_rounds(short, short_clock, [50e-6, 90e-6, 50e-6])  # rounds under 100 us: the canary covers them
    assert probes == [] and short_probes == [] and gate.waited == 0 and short.waited == 0


def test_probing_stops_when_the_waiting_budget_is_spent():
    gate, clock, calls, probes = paced_gate([0.002] * 100, max_wait=0.01)
    run_rounds(gate, clock, [0.001, 0.002])
    gate()
    assert len(calls) == 3 and gate.waited == pytest.approx(0.01) and len(probes) == 5


def test_each_input_block_is_paced_against_its_own_fastest_round():
    gate, clock, _calls, probes = paced_gate([])
    blocks = itertools.cycle([0, 1])
    position = []
    gate.setup = lambda: position.append(next(blocks)) or ((), {})
    gate.probe_key = lambda: position[-1]
    run_rounds(gate, clock, [0.001, 0.002] * 4)  # a small and a large batch in turn, each at its own pace
    gate()
    assert probes == [] and gate.slow_rounds == 0
    assert gate.fastest_round == {0: 0.001, 1: 0.002}
