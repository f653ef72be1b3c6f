"""The suite's command-line options: one record each (flag, parser, default, help), and the parsed `SuiteOptions`.

conftest.py registers these records with pytest, the README's options table is checked
against them (tests/test_options.py), and `SuiteOptions()` takes its defaults from them.
"""
from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sst2mlp.arguments import choice, fraction, non_negative_float, non_negative_int, positive_float, positive_int, share
from sst2mlp.contract import nearest_to_baseline
from sst2mlp.impls.registry import DEFAULT_IMPLS, IMPL_NAMES, TRAINABLE
from sst2mlp.measure.machine import DENORMAL_MODES
from sst2mlp.measure.quiet_gate import QUIET_SPEED
from sst2mlp.reference.model import ModelConfig


def positive_int_list(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4)."""
    try:
        values = tuple(positive_int(item) for item in str(text).split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of positive integers such as 1,2,4, got {text!r}"
        ) from None
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"lists a value twice: {text!r}")
    return values


def impl_list(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(item.strip() for item in str(text).split(","))
        unknown = [name for name in names if name not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown impl {', '.join(map(repr, unknown))}; expected some of {', '.join(allowed)}, got {text!r}"
            )
        if len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(f"lists an impl twice: {text!r}")
        return names

    return parse


def folder(text: str) -> str:
    if not str(text).strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string (leave the option out to use "
                                         "$SST2_DATA_DIR or the hub)")
    return str(text)


def journal_path(text: str) -> str:
    if not str(text).strip().endswith(".jsonl"):
        raise argparse.ArgumentTypeError(f"expected the path of a run's journal, <storage>/partial/*.jsonl, got {text!r}")
    return str(text)


@dataclass(frozen=True)
class Option:
    flag: str
    field: str  # the SuiteOptions attribute it fills
    parse: Callable[[str], Any]
    default: str | None  # as typed on the command line; None means "not set"
    metavar: str
    help: str

    def default_value(self):
        return None if self.default is None else self.parse(self.default)


OPTIONS = (
    Option("--sst2-layers", "layers", positive_int_list, "1,2,4", "LIST", "hidden layer counts of the grid"),
    Option("--sst2-widths", "widths", positive_int_list, "128,256,512", "LIST", "hidden sizes of the grid"),
    Option("--sst2-vocabs", "vocabs", positive_int_list, "1000,5000,10000", "LIST", "vocabulary sizes of the grid"),
    Option("--sst2-impls", "impls", impl_list(IMPL_NAMES), ",".join(DEFAULT_IMPLS), "LIST",
           "implementations and runtimes timed for latency, throughput and cold start"),
    Option("--sst2-train-impls", "train_impls", impl_list(TRAINABLE), "sparse", "LIST",
           f"trainers timed for training ({', '.join(TRAINABLE)}); the first one's models are the weights every impl "
           "runs. sparse, the default, is the fastest exact trainer (the report's dense model and Adam, with the same "
           "losses to float rounding); dense is the report's own, about 2.5x slower (45 more minutes on a full run)"),
    Option("--sst2-threads", "threads", positive_int_list, "1", "LIST", "torch threads; a list (1,2) adds a thread axis"),
    Option("--sst2-train-rounds", "train_rounds", positive_int, "4", "N",
           "timed 2-epoch trainings per configuration, after one warm-up training"),
    Option("--sst2-train-limit", "train_limit", positive_int, None, "N",
           "train on the first N training examples only (smoke runs); default: all"),
    Option("--sst2-seed", "seed", non_negative_int, "0", "N",
           "base seed: training round r of a configuration (r = 0 the warm-up) uses seed N + r for its weights and shuffling"),
    Option("--sst2-seeds", "seeds", positive_int, None, "N",
           "seeds whose dev accuracy is recorded per configuration: the trained rounds, plus untimed sparse trainings "
           "up to N; default: the training rounds + 1"),
    Option("--sst2-denormals", "denormals", choice(DENORMAL_MODES), "flush", "MODE",
           "flush: denormal floats count as zero during all timed work (FTZ/DAZ); keep: IEEE behaviour, to measure it"),
    Option("--sst2-latency-rounds", "latency_rounds", positive_int, "1744", "N",
           "timed single-example forward passes per inference benchmark (the 872 dev examples, cycled)"),
    Option("--sst2-min-time", "min_time", positive_float, "0.5", "SECONDS",
           "every latency and throughput benchmark times at least this long (more rounds than --sst2-latency-rounds "
           "when calls are fast), so that a short hiccup of the machine cannot move its median"),
    Option("--sst2-quiet-wait", "quiet_wait", non_negative_float, "10", "SECONDS",
           "latency and throughput rounds run only while a canary says the machine is at full speed; a benchmark "
           "waits at most this long in all for it (then measures anyway and records the share measured while slow); "
           "0: never wait"),
    Option("--sst2-quiet-budget", "quiet_budget", share, "0.1", "FRACTION",
           "the whole run waits for a quiet machine at most this share of its wall time so far (on a VM that stays "
           "slow, waiting buys nothing; a benchmark that finds the budget spent measures at once and records the "
           "share measured while slow); 0: never wait"),
    Option("--sst2-quiet-speed", "quiet_speed", fraction, str(QUIET_SPEED), "FRACTION",
           "the canary reading, as a fraction of the session's fastest, at which the machine counts as at full speed "
           "and rounds may run; 0.9 also waits out the slower part of full speed, at the cost of more waiting"),
    Option("--sst2-coldstart", "coldstart", choice(("baseline", "grid", "off")), "baseline", "MODE",
           "configurations of the coldstart group (every impl, a fresh process per round from start to first "
           "prediction): baseline, the grid's configuration nearest to L2-H256-V10000; grid: all of them; off"),
    Option("--sst2-coldstart-rounds", "coldstart_rounds", positive_int, "5", "N",
           "timed processes per coldstart benchmark, after one untimed warm-up process"),
    Option("--sst2-progress", "progress", choice(("auto", "on", "off")), "auto", "MODE",
           "a progress line (done/total, elapsed, estimate of the rest) between benchmarks; auto: on unless -q"),
    Option("--sst2-preset", "preset", choice(("none", "quick")), "none", "NAME",
           "quick: the whole pipeline on a small grid in a few minutes (2x2x2 grid, every impl, dense and sparse "
           "training on 10,000 examples, 2 timed rounds, 0.2 s per latency benchmark, at most 2 s of waiting for quiet, "
           "3 cold-start processes); "
           "explicit options still win"),
    Option("--sst2-resume", "resume", journal_path, None, "JOURNAL",
           "continue an interrupted run from its journal (<storage>/partial/*.jsonl, named when the run stops): only "
           "the benchmarks it did not finish run, and the run is saved as one; refused, naming the difference, if "
           "the options, benchmarks, machine, packages or commit differ"),
    Option("--sst2-resume-commit", "resume_commit", choice(("same", "any")), "same", "MODE",
           "any: let --sst2-resume continue a run made at another commit (the saved run records every session)"),
    Option("--sst2-data", "data_dir", folder, None, "DIR",
           "local SST-2 folder (GLUE train.tsv/dev.tsv or the hub's parquet files); default: $SST2_DATA_DIR, "
           "else the hub"),
)
BY_FIELD = {option.field: option for option in OPTIONS}
MAX_SEED = 2**64 - 1  # torch.manual_seed's largest
PRESETS = {
    "quick": {"layers": "1,2", "widths": "128,256", "vocabs": "1000,10000", "train_impls": "dense,sparse",
              "train_limit": "10000", "train_rounds": "2", "latency_rounds": "500", "min_time": "0.2", "quiet_wait": "2",
              "coldstart_rounds": "3"},
}


def _default(field: str):
    return BY_FIELD[field].default_value()


@dataclass(frozen=True)
class SuiteOptions:
    layers: tuple[int, ...] = _default("layers")
    widths: tuple[int, ...] = _default("widths")
    vocabs: tuple[int, ...] = _default("vocabs")
    impls: tuple[str, ...] = _default("impls")
    train_impls: tuple[str, ...] = _default("train_impls")
    threads: tuple[int, ...] = _default("threads")
    train_rounds: int = _default("train_rounds")
    train_limit: int | None = _default("train_limit")
    latency_rounds: int = _default("latency_rounds")
    min_time: float = _default("min_time")
    quiet_wait: float = _default("quiet_wait")
    quiet_budget: float = _default("quiet_budget")
    quiet_speed: float = _default("quiet_speed")
    data_dir: str | None = _default("data_dir")
    seed: int = _default("seed")
    seeds: int | None = _default("seeds")
    denormals: str = _default("denormals")
    coldstart: str = _default("coldstart")
    coldstart_rounds: int = _default("coldstart_rounds")
    progress: str = _default("progress")
    preset: str = _default("preset")
    resume: str | None = _default("resume")
    resume_commit: str = _default("resume_commit")

    def __post_init__(self):
        if self.seeds is not None and self.seeds < self.trained_rounds:
            raise ValueError(f"--sst2-seeds {self.seeds} is below the {self.trained_rounds} trainings each configuration "
                             f"runs anyway (--sst2-train-rounds {self.train_rounds} + 1 warm-up); expected at least {self.trained_rounds}")
        last = self.seed + self.seed_count - 1
        if last > MAX_SEED:
            raise ValueError(f"--sst2-seed {self.seed}: the run uses seeds {self.seed} to {last} (one per recorded seed), "
                             f"above torch's largest seed 2**64 - 1; expected at most {MAX_SEED - self.seed_count + 1}")

    def cost_warnings(self) -> list[str]:
        """Options whose cost a user may not expect."""
        extra = self.seed_count - self.trained_rounds
        if extra <= 0:
            return []
        grid = len(self.grid())
        return [f"--sst2-seeds {self.seed_count} adds {extra} untimed training(s) per configuration, {extra * grid:,} in all "
                "(the progress estimate does not include them)"]

    @property
    def trained_rounds(self) -> int:
        return self.train_rounds + 1

    @property
    def seed_count(self) -> int:
        """How many seeds' accuracies each configuration records."""
        return self.trained_rounds if self.seeds is None else self.seeds

    @classmethod
    def from_pytest(cls, getoption: Callable[[str], Any]) -> SuiteOptions:
        """The options as pytest parsed them (each given value has been through its Option's parser; one left out is
        None): a preset fills the options left out, the defaults the rest. An option given explicitly wins, even at
        its default value."""
        given = {option.field: getoption(option.flag) for option in OPTIONS}
        preset = PRESETS.get(given["preset"] or _default("preset"), {})
        values = {}
        for option in OPTIONS:
            if given[option.field] is not None:
                values[option.field] = given[option.field]
            elif option.field in preset:
                values[option.field] = option.parse(preset[option.field])
            else:
                values[option.field] = option.default_value()
        return cls(**values)

    def grid(self) -> list[ModelConfig]:
        return [ModelConfig(n, h, k) for n, h, k in itertools.product(self.layers, self.widths, self.vocabs)]

    def coldstart_grid(self) -> list[ModelConfig]:
        """--sst2-coldstart: nothing, the whole grid, or its configuration nearest to the baseline (by the sum of
        |log ratio| of layers + 1, width and vocabulary size)."""
        if self.coldstart == "off":
            return []
        if self.coldstart == "grid":
            return self.grid()
        return [ModelConfig(*nearest_to_baseline([(n, h, k) for n, h, k in itertools.product(self.layers, self.widths,
                                                                                                    self.vocabs)]))]
