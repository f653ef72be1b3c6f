"""Measuring only while the machine runs at full speed: a tiny canary checked between timed rounds.

On a shared VM the core this process runs on switches, every few tenths of a second, between
full speed and a slow state about 1.5-2x slower (another guest on the same physical core). A
benchmark's median then depends on which state held during most of its rounds, and moves 1.5x
between back-to-back runs. So the suite times a canary (a fixed, tiny interpreter loop that
touches no data, so it leaves the benchmark's caches alone) every `check_interval` seconds
between rounds, outside the timed region, and while it reads slower than `quiet_speed` (0.8 unless
`--sst2-quiet-speed` says otherwise) times the session's best, waits before the next round (at most
`max_wait` seconds per benchmark; then it measures anyway and the benchmark says so). Each benchmark records how fast the machine was when
its rounds ran (`machine_speed`) and how long it waited. Nothing is rescaled.

The canary sees only the core. A call that streams tens of megabytes (a whole-dev forward pass at
k = 10,000) is also slowed by a neighbour that takes the memory bandwidth or the shared cache, and
a call of several milliseconds spans changes of state the canary checked before it. So for calls
of at least `PACE_MIN_SECONDS` the benchmark's own rounds are a second canary: after a round that
took more than `SLOW_ROUND` times the fastest round on the same inputs (`probe_key`: batches of
different sizes take different times), the gate times untimed calls of the benchmark on those inputs
(`probe`) until one runs at its usual pace again, from the same waiting budget. The
slow round itself stays in the statistics: the gate only decides when the next round starts.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

QUIET_SPEED = 0.8  # measured here: slow phases read 0.45-0.75 of the best canary, full speed 0.85-1.0
SPIN_ITERATIONS = 300  # about 2.5 us at full speed
PACE_MIN_SECONDS = 100e-6  # rounds shorter than this are covered by the canary checked every 2 ms
SLOW_ROUND = 1.25  # a round this much slower than the fastest: the machine's state changed (IQR/median at full speed: 2-8%)


def spin_canary(repeats: int = 3, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of the fastest of `repeats` empty 300-iteration interpreter loops."""
    fastest = float("inf")
    for _ in range(repeats):
        start = clock()
        for _ in range(SPIN_ITERATIONS):
            pass
        fastest = min(fastest, clock() - start)
    return fastest


@dataclass
class Canary:
    """The session's canary: its best reading so far is the machine's full speed."""

    measure: Callable[[], float] = spin_canary
    best: float | None = None

    def speed(self) -> float:
        """How fast the machine is now, as a fraction of the fastest reading of the session."""
        seconds = self.measure()
        self.best = seconds if self.best is None else min(self.best, seconds)
        return self.best / seconds

    def calibrate(self, seconds: float = 1.0, pause: float = 0.002, sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.perf_counter) -> None:
        """Readings for `seconds` at the start of a session, so that `best` comes from a full-speed phase."""
        end = clock() + seconds
        while clock() < end:
            self.speed()
            sleep(pause)


@dataclass
class WaitBudget:
    """The run's allowance for waiting on a quiet machine: at most `share` of the wall time the run has taken so far.

    On a VM whose slow state lasts for most of a run, a per-benchmark budget alone multiplies into hours (10 s each
    over 900 benchmarks); this one bounds the whole run's waiting at a fixed share of it, busy or quiet."""

    share: float
    clock: Callable[[], float] = time.monotonic
    start: float | None = None
    spent: float = 0.0

    def __post_init__(self):
        if self.start is None:
            self.start = self.clock()

    def available(self) -> float:
        return max(0.0, self.share * (self.clock() - self.start) - self.spent)

    def spend(self, seconds: float) -> None:
        self.spent += seconds


@dataclass
class QuietGate:
    """A pedantic `setup` that first, at most every `check_interval` seconds, waits while the machine is slow.

    It runs before each timed round and outside it, so the rounds are measured at full speed as long as
    the waiting budget `max_wait` lasts; `info` says how it went. With a `probe` (one untimed call of the
    benchmark), it also paces long rounds: the time from one release to the next call is the round's.
    """

    canary: Canary
    setup: Callable
    max_wait: float
    check_interval: float = 0.002
    pause: float = 0.001
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.perf_counter
    probe: Callable[[], object] | None = None
    probe_key: Callable[[], Hashable] = lambda: None  # which inputs the last round ran on
    quiet_speed: float = QUIET_SPEED  # the canary speed at which rounds may run
    budget: WaitBudget | None = None  # the run's waiting allowance, shared by every benchmark's gate
    waited: float = 0.0
    checks: int = 0
    slow_checks: int = 0  # checks that found the machine slow and waited
    speeds: list[float] = field(default_factory=list)  # the speed at each check that let rounds run
    next_check: float = float("-inf")
    fastest_round: dict = field(default_factory=dict)  # per probe_key
    slow_rounds: int = 0  # rounds after which the gate probed until the benchmark ran at its pace again
    released_at: float | None = None

    def __call__(self):
        if self.probe is not None and self.released_at is not None:
            self._pace(self.clock() - self.released_at)
        if self.clock() >= self.next_check:
            self._wait_for_full_speed()
            self.next_check = self.clock() + self.check_interval
        arguments = self.setup()
        self.released_at = self.clock()
        return arguments

    def _pace(self, last_round: float) -> None:
        key = self.probe_key()
        fastest = self.fastest_round[key] = min(self.fastest_round.get(key, last_round), last_round)
        if fastest < PACE_MIN_SECONDS or last_round <= SLOW_ROUND * fastest:
            return
        self.slow_rounds += 1
        start, allowance = self.clock(), self._allowance()
        while self.clock() - start < allowance:  # no sleep: a round after one runs cold
            began = self.clock()
            self.probe()
            call = self.clock() - began
            fastest = self.fastest_round[key] = min(fastest, call)
            if call <= SLOW_ROUND * fastest:
                break
        self._spend(self.clock() - start)

    def _wait_for_full_speed(self) -> None:
        start, allowance = self.clock(), self._allowance()
        while True:
            speed = self.canary.speed()
            self.checks += 1
            if speed >= self.quiet_speed or self.clock() - start >= allowance:
                break
            self.slow_checks += 1
            self.sleep(self.pause)
        self._spend(self.clock() - start)
        self.speeds.append(speed)

    def _allowance(self) -> float:
        """Seconds this wait may take: what is left of the benchmark's budget and of the run's."""
        left = self.max_wait - self.waited
        return min(left, self.budget.available()) if self.budget is not None else left

    def _spend(self, seconds: float) -> None:
        self.waited += seconds
        if self.budget is not None:
            self.budget.spend(seconds)

    def info(self) -> dict:
        """machine_speed: median speed when rounds ran; measured_while_slow: the share of them below quiet_speed
        (non-zero only when the waiting budget ran out); slow_rounds: long rounds after which the gate probed;
        quiet_speed: the threshold."""
        released = len(self.speeds)
        return {
            "machine_speed": round(statistics.median(self.speeds), 3) if released else None,
            "measured_while_slow": round(sum(s < self.quiet_speed for s in self.speeds) / released, 3) if released else None,
            "waited_for_quiet_seconds": round(self.waited, 3),
            "slow_rounds": self.slow_rounds,
            "quiet_speed": self.quiet_speed,
        }
