"""The report's answer to its reader's question, which model size and which way to run it on this machine:
`choose.md`.

A choice is one configuration (N hidden layers, H hidden units, k words) run by one impl, with its dev accuracy
over the seeds (mean and 95% interval) and its costs on the machine of the run: the batch-1 latency and the bytes
the impl holds. The seeds make accuracy noisy: two choices' accuracies differ only where the 95% interval of the
gap, seed by seed, excludes zero (`resolvably_more_accurate`). So a costlier choice is on the front only when it is resolvably more
accurate than every cheaper one, and within a budget the recommendation is the cheapest choice as accurate as
the best there.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sst2mlp import stats

from .runs import Key, Run, accuracy_over_seeds
from .tables import pipe_table

LATENCY_BUDGETS_US = (5.0, 20.0, 100.0, 1000.0)  # batch-1 latency per example: a keystroke, a page of reviews, ...
BYTES_BUDGETS = (1_000_000, 4_000_000, 16_000_000, 64_000_000)  # weights held: a microcontroller's flash to a phone's


@dataclass(frozen=True)
class Choice:
    key: Key
    accuracies: tuple[float, ...]  # dev accuracy of each seed's model
    latency_us: float  # batch-1 median, per example
    model_bytes: int | None
    exact: bool  # the same logits as dense (an int8 impl is not)

    @functools.cached_property  # the front compares each choice with many others
    def accuracy(self) -> dict:
        return stats.mean_interval(self.accuracies)

    @property
    def label(self) -> str:
        return f"N={self.key.num_layers} H={self.key.hidden_size} k={self.key.vocab_size:,} {self.key.impl}"


def choices(run: Run) -> list[Choice]:
    """Every configuration and impl the run timed at batch 1, at its lowest thread count, on the models of the run's
    source trainer (the ones every impl ran)."""
    threads = min((key.threads for key, row in run.rows.items() if row.latency), default=None)
    return [Choice(key, tuple(accuracy_over_seeds(run, key)), row.latency["median"] * 1e6, row.model_bytes, row.exact)
            for key, row in run.rows.items()
            if row.latency and key.threads == threads and key.trained_impl == run.source_trainer]


def accuracy_gap(a: Choice, b: Choice) -> tuple[float, float]:
    """The gap between two choices' mean accuracies and the half-width of its 95% t-interval. The run trains every
    configuration with the same seeds, so the gap is taken seed by seed (paired, as claims.md takes the report's
    claims); with unequal seed counts, Welch's standard error at the smaller sample's degrees of freedom. One seed
    a side: no gap is resolvable (an infinite half-width)."""
    n_a, n_b = len(a.accuracies), len(b.accuracies)
    if min(n_a, n_b) < 2:
        return a.accuracy["mean"] - b.accuracy["mean"], math.inf
    if n_a == n_b:
        paired = stats.mean_interval([x - y for x, y in zip(a.accuracies, b.accuracies)])
        return paired["mean"], paired["mean"] - paired["ci95"][0]
    sd_a, sd_b = a.accuracy["std"], b.accuracy["std"]
    return (a.accuracy["mean"] - b.accuracy["mean"],
            stats.t95(min(n_a, n_b) - 1) * math.sqrt(sd_a ** 2 / n_a + sd_b ** 2 / n_b))


def resolvably_more_accurate(a: Choice, b: Choice) -> bool:
    gap, half_width = accuracy_gap(a, b)
    return gap > half_width


def front(options: list[Choice], cost: Callable[[Choice], float]) -> list[Choice]:
    """The choices worth their cost, cheapest first: each is resolvably more accurate than every cheaper choice on
    the front, so a step up the front buys accuracy the seeds' noise cannot explain. Among choices that are not
    resolvably apart, the cheapest (then the most accurate) stands for them."""
    ordered = sorted(options, key=lambda c: (cost(c), -c.accuracy["mean"]))
    kept: list[Choice] = []
    for option in ordered:
        if all(resolvably_more_accurate(option, cheaper) for cheaper in kept):
            kept.append(option)
    return kept


def best_within(options: list[Choice], cost: Callable[[Choice], float], budget: float) -> tuple[Choice, Choice] | None:
    """Within a budget: the most accurate choice (by mean), and the cheapest choice not resolvably less accurate
    than it (the recommendation; often a smaller model or a faster impl). None when nothing fits."""
    fitting = [c for c in options if cost(c) <= budget]
    if not fitting:
        return None
    best = max(fitting, key=lambda c: (c.accuracy["mean"], -cost(c)))
    cheapest = min((c for c in fitting if not resolvably_more_accurate(best, c)), key=lambda c: (cost(c), -c.accuracy["mean"]))
    return best, cheapest


def _accuracy_cell(choice: Choice) -> str:
    summary = choice.accuracy
    if summary["ci95"] is None:
        return f"{summary['mean']:.4f} (1 seed)"
    low, high = summary["ci95"]
    return f"{summary['mean']:.4f} [{low:.4f}, {high:.4f}] ({summary['n']})"


def _bytes_cell(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.2f} MB"


def _choice_cells(choice: Choice) -> list[str]:
    return [choice.label + ("" if choice.exact else " (approximate)"), _accuracy_cell(choice), f"{choice.latency_us:,.1f}",
            _bytes_cell(choice.model_bytes)]


COSTS = (
    ("batch-1 latency", lambda c: c.latency_us, LATENCY_BUDGETS_US, lambda b: f"{b:g} us"),
    ("bytes held", lambda c: c.model_bytes if c.model_bytes is not None else math.inf, BYTES_BUDGETS,
     lambda b: f"{b / 1e6:g} MB"),
)
CHOICE_HEADER = ["choice (configuration, impl)", "dev accuracy, mean [95% interval] (seeds)", "latency us", "bytes held"]


def choose_lines(run: Run) -> list[str]:
    options = choices(run)
    lines = ["# Which model, and which way to run it, on this machine", "", run.caption(), "",
             "Every configuration and impl the run timed at batch 1. Accuracy is the mean over the seeds' models with a "
             "95% t-interval; two choices count as differently accurate only where a 95% t-interval of the gap "
             "between them, seed by seed (every configuration is trained with the same seeds), excludes zero. Latency is this machine's, "
             "per example at batch 1, model only; bytes are the weights the impl holds once loaded. Telling apart is not "
             "transitive (a choice can be within the noise of two that are apart from each other), so a budget's "
             "pick need not be on the front.", ""]
    if not options:
        return lines + ["The run timed no batch-1 latency: nothing to choose from."]
    for name, cost, budgets, show in COSTS:
        lines += [f"## Worth their {name}", "",
                  "Cheapest first; each is more accurate, beyond the seeds' noise, than every one above it.", ""]
        lines += pipe_table(CHOICE_HEADER, map(_choice_cells, front(options, cost)))
        lines += ["", f"## Within a {name} budget", "",
                  "The most accurate choice that fits, and the cheapest one the seeds cannot tell from it.", ""]
        rows = []
        for budget in budgets:
            found = best_within(options, cost, budget)
            if found is None:
                rows.append([show(budget), "nothing fits", "", "", "", "", ""])
                continue
            best, cheapest = found
            rows.append([show(budget), best.label, _accuracy_cell(best), cheapest.label, _accuracy_cell(cheapest),
                         f"{cheapest.latency_us:,.1f}", _bytes_cell(cheapest.model_bytes)])
        lines += pipe_table(["budget", "most accurate", "its accuracy", "cheapest as accurate", "its accuracy",
                             "its latency us", "its bytes"], rows)
        lines.append("")
    return lines


def write_choose(path: Path, run: Run) -> Path:
    path.write_text("\n".join(choose_lines(run)).rstrip("\n") + "\n")
    return path
