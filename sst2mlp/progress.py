"""A progress line for long runs: the benchmark running now, done/total, elapsed time and an honest estimate of the rest.

The estimate comes only from what this run has measured: for training benchmarks a straight line through
their wall times against their work (FLOPs per example of the configuration; a fixed part covers
the rounds' set-up and the untimed extra seeds), flat until two sizes were measured, and the mean wall time of
the latency and throughput benchmarks finished so far. Until the first of those has run, each counts at
its known floor (`min_other_seconds`: every one measures at least --sst2-min-time) and the estimate is shown
as a lower bound; until a training has been measured, the rest is "unknown". Everything here runs between
benchmarks or between training rounds, never inside a timed region.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Planned:
    """A benchmark the run will execute: a training one carries its work (the configuration's FLOPs per example,
    which its training time grows with)."""

    nodeid: str
    work: float | None = None  # None: a latency or throughput benchmark

    @property
    def training(self) -> bool:
        return self.work is not None


def fit_line(works: list[float], seconds: list[float]) -> tuple[float, float]:
    """(fixed seconds, seconds per unit of work) by least squares, neither negative; flat when the works do not differ.

    Through the origin (seconds proportional to work) a small first configuration, which also pays the
    run's one-off costs, would predict the large ones several times too long."""
    mean_work, mean_seconds = sum(works) / len(works), sum(seconds) / len(seconds)
    spread = sum((w - mean_work) ** 2 for w in works)
    if spread == 0:
        return mean_seconds, 0.0
    slope = max(0.0, sum((w - mean_work) * (t - mean_seconds) for w, t in zip(works, seconds)) / spread)
    fixed = mean_seconds - slope * mean_work
    if fixed < 0:  # the line would give a small configuration negative time: proportional instead
        return 0.0, sum(seconds) / sum(works)
    return fixed, slope


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


@dataclass
class Progress:
    planned: list[Planned]  # every benchmark the run will execute, in order
    write: Callable[[str], None]  # writes one line (a terminal line is rewritten in place by the caller)
    clock: Callable[[], float] = time.monotonic
    every: float = 30.0  # seconds between plain lines when the output is not a terminal
    terminal: bool = True
    min_other_seconds: float = 0.0  # the least a latency or throughput benchmark takes (its measuring time)
    start: float = field(init=False)
    done: int = field(init=False, default=0)
    current: str | None = field(init=False, default=None)
    detail: str = field(init=False, default="")
    _began: float = field(init=False, default=0.0)
    _last_line: float = field(init=False, default=float("-inf"))
    _trainings: list[tuple[float, float]] = field(init=False, default_factory=list)  # (work, wall seconds)
    _other_seconds: list[float] = field(init=False, default_factory=list)

    def __post_init__(self):
        self.start = self.clock()
        self._by_id = {benchmark.nodeid: benchmark for benchmark in self.planned}

    def __contains__(self, nodeid: str) -> bool:
        return nodeid in self._by_id

    def benchmark_started(self, nodeid: str) -> None:
        self.current, self.detail, self._began = nodeid, "", self.clock()
        self._show()

    def training_round(self, round_index: int, rounds: int) -> None:
        """Called in a training benchmark's setup, between timed rounds."""
        self.detail = f"round {round_index + 1}/{rounds}" + (" (warm-up)" if round_index == 0 else "")
        self._show()

    def benchmark_finished(self, nodeid: str) -> None:
        seconds = self.clock() - self._began
        benchmark = self._by_id[nodeid]
        if benchmark.training:
            self._trainings.append((benchmark.work, seconds))
        else:
            self._other_seconds.append(seconds)
        self.done += 1
        self.current, self.detail = None, ""
        self._show(force=self.done == len(self.planned))

    def remaining_seconds(self) -> float | None:
        """The estimate for the benchmarks not finished yet; None while a training still to run has no basis."""
        estimate = self.estimate()
        return None if estimate is None else estimate[0]

    def estimate(self) -> tuple[float, bool] | None:
        """(seconds left, whether that is only a lower bound), or None while a training still to run has no basis.

        Latency and throughput benchmarks count at their measured mean, or at their floor before any has run."""
        left = self.planned[self.done:]
        total, lower_bound = 0.0, False
        training = fit_line(*map(list, zip(*self._trainings))) if self._trainings else None
        for benchmark in left:
            if benchmark.training:
                if training is None:
                    return None
                fixed, per_work = training
                total += fixed + per_work * benchmark.work
            elif self._other_seconds:
                total += sum(self._other_seconds) / len(self._other_seconds)
            elif self.min_other_seconds > 0:
                total, lower_bound = total + self.min_other_seconds, True
            else:
                return None
        if self.current is not None:  # the running benchmark has used part of its share already
            total = max(0.0, total - (self.clock() - self._began))
        return total, lower_bound

    def line(self) -> str:
        estimate = self.estimate()
        if estimate is None:
            left = "unknown"
        else:
            left = ("at least " if estimate[1] else "") + f"~{_duration(estimate[0])}"
        now = f" | {self.current.split('::')[-1]}" + (f" {self.detail}" if self.detail else "") if self.current else ""
        return (f"sst2mlp: {self.done}/{len(self.planned)} benchmarks done, {_duration(self.clock() - self.start)} elapsed, "
                f"{left} left{now}")

    def _show(self, force: bool = False) -> None:
        """On a terminal every event; otherwise (CI logs) a line every `every` seconds and at the end."""
        now = self.clock()
        if self.terminal or force or now - self._last_line >= self.every:
            self._last_line = now
            self.write(self.line())
