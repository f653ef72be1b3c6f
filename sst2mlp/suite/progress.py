"""A progress line for long runs: the benchmark running now, done/total, elapsed time and an honest estimate of the rest.

The estimate comes only from what this run has measured: for each kind of benchmark (training, cold start, latency
and throughput) a straight line through their wall times against their work (FLOPs per example of the
configuration, `ModelConfig.relative_work`; a fixed part covers set-up and building), flat until two sizes were measured. A latency benchmark
or cold start not measured yet counts at its known floor (`min_other_seconds`: every one measures at least
--sst2-min-time) and the estimate is shown as a lower bound; until a training has been measured, the rest is
"unknown". Everything here runs between
benchmarks or between training rounds, never inside a timed region.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Planned:
    """A benchmark the run will execute, its kind (training, coldstart, other: latency and throughput) and its work
    (`ModelConfig.relative_work` of its configuration; None where unknown)."""

    nodeid: str
    work: float | None = None
    kind: str = "other"

    @property
    def training(self) -> bool:
        return self.kind == "training"


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
    min_coldstart_seconds: float = 0.0  # the least a cold-start benchmark takes (its processes' starts)
    start: float = field(init=False)
    done: int = field(init=False, default=0)
    current: str | None = field(init=False, default=None)
    detail: str = field(init=False, default="")
    _began: float = field(init=False, default=0.0)
    _last_line: float = field(init=False, default=float("-inf"))
    _measured: dict[str, list[tuple[float, float]]] = field(init=False, default_factory=dict)  # kind -> (work, seconds)

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
        self._measured.setdefault(benchmark.kind, []).append((benchmark.work or 0.0, seconds))
        self.done += 1
        self.current, self.detail = None, ""
        self._show(force=self.done == len(self.planned))

    def remaining_seconds(self) -> float | None:
        """The estimate for the benchmarks not finished yet; None while a training still to run has no basis."""
        estimate = self.estimate()
        return None if estimate is None else estimate[0]

    def estimate(self) -> tuple[float, bool] | None:
        """(seconds left, whether that is only a lower bound), or None while a training still to run has no basis.

        Each kind of benchmark counts at a line through its measured wall times against their work (so that the
        small configurations a run starts with do not set the pace of the large ones); a latency or throughput
        benchmark, or a cold start, not measured yet counts at the measuring floor, as a lower bound."""
        lines = {kind: fit_line(*map(list, zip(*measured))) for kind, measured in self._measured.items()}
        total, lower_bound = 0.0, False
        for benchmark in self.planned[self.done:]:
            line = lines.get(benchmark.kind)
            if line is not None:
                fixed, per_work = line
                total += fixed + per_work * (benchmark.work or 0.0)
            elif benchmark.training or self.min_other_seconds <= 0:
                return None
            else:
                floor = self.min_coldstart_seconds if benchmark.kind == "coldstart" else 0.0
                total, lower_bound = total + max(floor, self.min_other_seconds), True
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
