"""The quiet gate with a fake clock and scripted canary readings: when it waits, when it stops waiting, what it records."""
import pytest

from sst2mlp.canary import Canary, QuietGate, spin_canary

FULL_SPEED = 1e-6  # canary seconds at full speed


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def scripted_gate(readings, max_wait=10.0, check_interval=0.002):
    """A gate whose canary returns `readings` in turn (then full speed), and whose setup counts its calls."""
    clock, readings, calls = FakeClock(), iter(readings), []
    canary = Canary(measure=lambda: next(readings, FULL_SPEED), best=FULL_SPEED)
    gate = QuietGate(canary, lambda: calls.append(clock.now) or ((), {}), max_wait, check_interval,
                     pause=0.001, sleep=clock.sleep, clock=clock)
    return gate, clock, calls


def test_at_full_speed_the_gate_never_waits_and_checks_once_per_interval():
    gate, clock, calls = scripted_gate([])
    for _ in range(10):
        gate()
        clock.now += 0.0007  # a 0.7 ms round
    assert len(calls) == 10 and gate.waited == 0
    assert gate.checks == 4  # before the rounds at 0, 2.1, 4.2 and 6.3 ms
    assert gate.info() == {"machine_speed": 1.0, "measured_while_slow": 0.0, "waited_for_quiet_seconds": 0.0}


def test_a_slow_phase_is_waited_out_before_the_next_round():
    slow = 2 * FULL_SPEED  # speed 0.5
    gate, _clock, calls = scripted_gate([slow] * 5)
    gate()
    assert calls == [pytest.approx(0.005)]  # five slow readings, a 1 ms pause after each, then the round
    assert gate.slow_checks == 5 and gate.info()["waited_for_quiet_seconds"] == 0.005
    assert gate.info()["machine_speed"] == 1.0 and gate.info()["measured_while_slow"] == 0.0


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


def test_the_spin_canary_times_something():
    assert 0 < spin_canary() < 0.01
