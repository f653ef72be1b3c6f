"""What the pytest-benchmark suite measures, kept out of conftest so that tests and benchmarks share it.

`Suite` is the session: data, features per vocabulary size, and one trained model per
configuration and training impl (the training benchmark's warm-up round provides it
when that benchmark runs first), plus every impl's form of it.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from . import contract, footprint, stats
from .canary import Canary, QuietGate
from .data import SST2, load_sst2
from .features import BagOfWords, FeatureCache, Features
from .impls import REGISTRY, Variant, effective_flops, get_impl, make_variant
from .model import MLP, ModelConfig, count_flops, count_params
from .options import SuiteOptions
from .training import TrainConfig, TrainResult, accuracy, make_optimizer, train

PERCENTILES = (50, 90, 99)
LATENCY_WARMUP_EXAMPLES = 100
WARM_UP_EXAMPLES = 2048  # rows of the small untimed training that precedes a session's first peak-memory reading


@dataclass
class TrainedModel:
    model: MLP
    result: TrainResult
    accuracy: float  # on dev
    trained_impl: str
    seed: int


@dataclass
class SeedAccuracies:
    """Dev accuracy of one configuration's models over seeds, in seed order (the training rounds, then extra seeds)."""

    seeds: list[int]
    trained_by: list[str]  # the training impl of each seed's model (extra seeds use the sparse trainer)
    dev: list[float]
    train: list[float]
    approximate: dict[str, list[float]]  # per seed, the dev accuracy of each approximate impl (int8) made from that model

    def extra_info(self) -> dict:
        summary = stats.mean_interval(self.dev)
        return {
            "seeds": self.seeds,
            "seed_trained_impls": self.trained_by,
            "accuracy_seeds": self.dev,
            "accuracy_mean": summary["mean"],
            "accuracy_std": summary["std"],
            "accuracy_ci95": summary["ci95"],
            "train_accuracy_seeds": self.train,
        }


@dataclass
class PreparedVariant:
    """An impl's form of a trained model, with what its benchmarks record about it (computed once)."""

    variant: Variant
    accuracy: float
    effective_flops: float
    model_bytes: int
    file_bytes: int


@dataclass
class Suite:
    options: SuiteOptions
    trained: dict[tuple[ModelConfig, str], TrainedModel] = field(default_factory=dict)  # key: (config, trained_impl)
    variants: dict[tuple[ModelConfig, str], PreparedVariant] = field(default_factory=dict)
    seed_accuracies: dict[tuple[ModelConfig, str], SeedAccuracies] = field(default_factory=dict)  # key: (config, trained_impl)
    _extra_seeds: dict[tuple[ModelConfig, int], dict] = field(default_factory=dict, repr=False)  # accuracies of untimed seeds
    canary: Canary = field(default_factory=Canary, repr=False)
    memory: footprint.PeakMemory = field(default_factory=footprint.PeakMemory, repr=False)
    progress: object | None = field(default=None, repr=False)  # a sst2mlp.progress.Progress while a run shows one
    seconds_evaluating: float = 0.0  # untimed work for the seeds' accuracies: evaluation and extra-seed trainings
    seconds_measuring_memory: float = 0.0  # untimed: byte counts, saved files, peak readings and their warm-up
    unstable: list[str] = field(default_factory=list)  # benchmarks whose timed rounds spread more than stats.UNSTABLE_SPREAD
    trainings: int = 0  # how many trainings this session ran, to check none is wasted
    _warmed_up: set[bool] = field(default_factory=set, repr=False)  # input-layer kinds (sparse?) trained once untimed

    @cached_property
    def data(self) -> SST2:
        data = load_sst2(self.options.data_dir)
        if self.options.train_limit is not None:
            data = SST2(data.train.head(self.options.train_limit), data.dev, data.source)
        return data

    @cached_property
    def _feature_cache(self) -> FeatureCache:
        return FeatureCache(self.data.train.sentences, self.data.dev.sentences)

    def features(self, vocab_size: int) -> Features:
        return self._feature_cache(vocab_size)

    @cached_property
    def train_labels(self) -> torch.Tensor:
        return torch.from_numpy(self.data.train.labels)

    @cached_property
    def dev_labels(self) -> torch.Tensor:
        return torch.from_numpy(self.data.dev.labels)

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(seed=seed)

    def check_vocabulary_sizes(self) -> None:
        """Fail early when the grid asks for more words than the (possibly limited) training split has."""
        words = len(self._feature_cache.vocabulary)
        too_large = [k for k in self.options.vocabs if k > words]
        if too_large:
            limit = f" (the first {self.options.train_limit:,} examples)" if self.options.train_limit else ""
            raise ValueError(f"--sst2-vocabs: vocabulary size {max(too_large)} exceeds the {words:,} distinct words "
                             f"of the training split{limit}")

    def check_memory(self) -> None:
        """Refuse, before anything is allocated, a grid whose largest training would not fit in the available memory."""
        available = footprint.available_memory_bytes()
        if available is None:
            return
        dev = len(self.data.dev)
        needs = {config: footprint.training_bytes_estimate(config.num_layers, config.hidden_size, config.vocab_size, dev)
                 for config in self.options.grid()}
        config, need = max(needs.items(), key=lambda item: item[1])
        if need > available:
            raise ValueError(
                f"configuration {config.id} needs about {need / 2**30:,.1f} GiB (weights, gradients, Adam's two moments, "
                f"dense batches and the dense dev set) but {available / 2**30:,.1f} GiB are available; choose smaller "
                "--sst2-widths or --sst2-vocabs")

    def data_warnings(self) -> list[str]:
        dev = len(self.data.dev)
        if dev < 100:
            return [f"the dev split has only {dev} examples: one example moves accuracy by {100 / dev:.1f} points, "
                    "and throughput benchmarks whose batch exceeds it are skipped"]
        return []

    def summary(self) -> str | None:
        """One line for the end of a session: the data rows read and the trainings run, if any."""
        if "data" not in vars(self):  # the data was never needed (collection only, or no benchmark ran)
            return None
        return (f"sst2mlp: {self.data.describe()}; {self.trainings} trainings run; "
                f"{self.seconds_evaluating:.1f} s spent on the seeds' accuracies and "
                f"{self.seconds_measuring_memory:.1f} s on memory measurements (untimed)")

    def new_model(self, config: ModelConfig, trained_impl: str, seed: int) -> MLP:
        torch.manual_seed(seed)
        return MLP.from_config(config, sparse=get_impl(trained_impl).sparse_input)

    def fit(self, model: MLP, optimizer: torch.optim.Optimizer, seed: int) -> TrainResult:
        features = self.features(model.config.vocab_size)
        self.trainings += 1
        return train(model, features.train, self.train_labels, self.train_config(seed), optimizer)

    @contextmanager
    def measuring_memory(self):
        """Counts the time of the memory measurements, which the run's wall time pays for."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds_measuring_memory += time.perf_counter() - start

    def warm_up_training(self, trained_impl: str, vocab_size: int) -> None:
        """Once a session per input-layer kind, before its first peak-memory reading: a small untimed training.

        A process's first training also pages in torch's training code and one-off buffers (about 80 MB more
        than any later training of the same model read here); that is not what the training costs."""
        sparse = get_impl(trained_impl).sparse_input
        if sparse in self._warmed_up or self.memory.unavailable:
            return
        self._warmed_up.add(sparse)
        with self.measuring_memory():
            self._small_training(sparse, vocab_size)

    def _small_training(self, sparse: bool, vocab_size: int) -> None:
        features = self.features(vocab_size)
        rows = min(WARM_UP_EXAMPLES, len(features.train))
        torch.manual_seed(self.options.seed)
        model = MLP.from_config(ModelConfig(1, 16, features.train.vocab_size), sparse=sparse)
        config = TrainConfig(seed=self.options.seed, epochs=1)
        train(model, features.train.rows(0, rows), self.train_labels[:rows], config, make_optimizer(model, config))

    def keep(self, model: MLP, result: TrainResult, trained_impl: str, seed: int) -> TrainedModel:
        """Keep the seed-`options.seed` model of each configuration and training impl, with its dev accuracy."""
        key = (model.config, trained_impl)
        if key not in self.trained and seed == self.options.seed:
            dev = self.features(model.config.vocab_size).dev
            self.trained[key] = TrainedModel(model, result, accuracy(model, dev, self.dev_labels), trained_impl, seed)
        return self.trained[key]

    def model_for(self, config: ModelConfig, trained_impl: str = "dense") -> TrainedModel:
        if (config, trained_impl) not in self.trained:
            seed = self.options.seed
            model = self.new_model(config, trained_impl, seed)
            result = self.fit(model, make_optimizer(model, self.train_config(seed)), seed)
            self.keep(model, result, trained_impl, seed)
        return self.trained[(config, trained_impl)]

    def variant(self, config: ModelConfig, impl: str) -> PreparedVariant:
        """The impl's form of the dense model trained this session, with its own dev accuracy.

        All impls share those weights, so their accuracies differ only by what the impl changes (int8).
        """
        if (config, impl) not in self.variants:
            trained = self.model_for(config, "dense")
            dev = self.features(config.vocab_size).dev
            variant = make_variant(impl, trained.model, dev)
            with self.measuring_memory():
                held, shipped = footprint.model_bytes(variant.module), footprint.file_bytes(variant.module)
            self.variants[(config, impl)] = PreparedVariant(
                variant, accuracy(variant, dev, self.dev_labels), effective_flops(impl, trained.model, dev), held, shipped)
        return self.variants[(config, impl)]

    def quiet_gate(self, forward, inputs: CyclingInputs) -> QuietGate:
        """`setup` for the rounds of `forward` on the cycled inputs: waits while the machine is slow, and after a
        long round that ran slow until an untimed call on the same inputs runs at its pace (sst2mlp.canary)."""
        if self.canary.best is None:
            self.canary.calibrate()
        return QuietGate(self.canary, inputs.next, self.options.quiet_wait, quiet_speed=self.options.quiet_speed,
                         probe=lambda: forward(*inputs.current()), probe_key=lambda: inputs.position)

    def peak_memory_of(self, variant: Variant, inputs: tuple) -> int | None:
        """Resident memory one forward pass adds at its peak (outside every timed region)."""
        with self.measuring_memory():
            start = self.memory.start()
            with torch.inference_mode():
                variant(*inputs)
            return self.memory.added_since(start)

    def describe(self, config: ModelConfig, threads: int, impl: str, trained: TrainedModel,
                 model_accuracy: float, impl_flops: float | None = None) -> dict:
        """The extra_info every benchmark carries: configuration, costs, and which model its accuracy is of.

        `impl_flops` defaults to the report's dense count (an impl that executes every multiply-add).
        """
        with torch.device("meta"):  # shapes only: nothing is allocated
            shapes = MLP.from_config(config)
        flops = count_flops(shapes)
        return {
            "num_layers": config.num_layers,
            "hidden_size": config.hidden_size,
            "vocab_size": config.vocab_size,
            "threads": threads,
            "impl": impl,
            "flops": flops,
            "effective_flops": float(flops) if impl_flops is None else impl_flops,
            "params": count_params(shapes),
            "trained_impl": trained.trained_impl,
            "seed": trained.seed,
            "accuracy": model_accuracy,
            "train_accuracy": trained.result.train_accuracy,
            "final_loss": trained.result.final_loss,
            "train_examples": len(self.data.train),
            "dev_examples": len(self.data.dev),
        }

    def extra_info(self, config: ModelConfig, impl: str, threads: int, group: str) -> dict:
        """A training benchmark describes the model it trained; the others the impl's variant of the dense model.

        Accuracies over seeds: a training benchmark carries its configuration's, an approximate impl (int8)
        its own, measured on each seed's dense-trained model.
        """
        if group == "training":
            trained = self.model_for(config, impl)
            flops = effective_flops(impl, trained.model, self.features(config.vocab_size).dev)
            info = self.describe(config, threads, impl, trained, trained.accuracy, flops)
            seeds = self.seed_accuracies.get((config, impl))
            return {**info, **(seeds.extra_info() if seeds else {})}
        prepared = self.variant(config, impl)
        info = self.describe(config, threads, impl, self.model_for(config, "dense"), prepared.accuracy, prepared.effective_flops)
        info.update(model_bytes=prepared.model_bytes, file_bytes=prepared.file_bytes)
        seeds = self.seed_accuracies.get((config, "dense"))
        if seeds and impl in seeds.approximate:
            summary = stats.mean_interval(seeds.approximate[impl])
            info.update(seeds=seeds.seeds, accuracy_seeds=seeds.approximate[impl], accuracy_mean=summary["mean"],
                        accuracy_std=summary["std"], accuracy_ci95=summary["ci95"], reference_accuracy_seeds=seeds.dev)
        return info

    def evaluate_seeds(self, config: ModelConfig, trained_impl: str, models: list[MLP], results: list[TrainResult],
                       seeds: list[int], extra_seeds: bool = True) -> SeedAccuracies:
        """Dev accuracy of every seed's model (and of each approximate impl made from it), adding untimed sparse
        trainings until `options.seed_count` seeds are recorded (if `extra_seeds`). Never inside a timed region."""
        start = time.perf_counter()
        approximate = [i.name for i in REGISTRY if not i.exact and i.name in self.options.impls] if trained_impl == "dense" else []
        evaluated = [self._evaluate(config, model, result, approximate) for model, result in zip(models, results)]
        trained_by = [trained_impl] * len(models)
        for offset in range(len(models), self.options.seed_count if extra_seeds else 0):
            seed = self.options.seed + offset
            evaluated.append(self._extra_seed(config, seed, approximate))
            seeds = [*seeds, seed]
            trained_by.append("sparse")
        record = SeedAccuracies(
            seeds=list(seeds),
            trained_by=trained_by,
            dev=[e["dev"] for e in evaluated],
            train=[e["train"] for e in evaluated],
            approximate={name: [e[name] for e in evaluated] for name in approximate},
        )
        self.seed_accuracies[(config, trained_impl)] = record
        self.seconds_evaluating += time.perf_counter() - start
        return record

    def _evaluate(self, config: ModelConfig, model: MLP, result: TrainResult, approximate: list[str]) -> dict:
        dev = self.features(config.vocab_size).dev
        return {"dev": accuracy(model, dev, self.dev_labels), "train": result.train_accuracy,
                **{name: accuracy(make_variant(name, model, dev), dev, self.dev_labels) for name in approximate}}

    def _extra_seed(self, config: ModelConfig, seed: int, approximate: list[str]) -> dict:
        """An untimed training for accuracy only, with the fastest exact trainer (the sparse input layer computes
        the same function as dense); one per configuration and seed, whichever training benchmark asks first."""
        key = (config, seed)
        if key not in self._extra_seeds:  # evaluated for every approximate impl of the run, whoever asks first
            model = self.new_model(config, "sparse", seed)
            result = self.fit(model, make_optimizer(model, self.train_config(seed)), seed)
            names = [i.name for i in REGISTRY if not i.exact and i.name in self.options.impls]
            self._extra_seeds[key] = self._evaluate(config, model, result, names)
        return self._extra_seeds[key]


class FirstRoundPeak:
    """Peak resident memory of one full training (weights, gradients, Adam state, batches): the first, untimed round
    of a pedantic training benchmark, read when the next round's setup begins or after the rounds."""

    def __init__(self, suite: Suite, config: ModelConfig, trained_impl: str):
        self.suite, self.config, self.trained_impl = suite, config, trained_impl
        self.start: int | None = None
        self.bytes: int | None = None

    def before_round(self, round_index: int) -> None:
        if round_index == 0:
            self.suite.warm_up_training(self.trained_impl, self.config.vocab_size)
            with self.suite.measuring_memory():
                self.start = self.suite.memory.start()
        elif round_index == 1:  # the first training is over: read its peak before anything else is allocated
            self.bytes = self.suite.memory.added_since(self.start)

    def after_rounds(self, rounds_run: int) -> None:
        if rounds_run == 1:
            self.bytes = self.suite.memory.added_since(self.start)


class TrainingRuns:
    """setup/target for benchmark.pedantic: round r trains a fresh model with seed `options.seed + r` on the whole
    train split (the same work every round, so timings compare).

    Only `run` is timed; `setup` builds the model and optimizer. After pedantic, `finish` keeps the
    first round's model and records every round's accuracy (pedantic skips teardown under --benchmark-disable).
    """

    def __init__(self, suite: Suite, config: ModelConfig, trained_impl: str):
        self.suite, self.config, self.trained_impl = suite, config, trained_impl
        self.suite.features(config.vocab_size)  # featurize before any timing
        self.models: list[MLP] = []
        self.results: list[TrainResult] = []
        self.peak = FirstRoundPeak(suite, config, trained_impl)

    def seed(self, round_index: int) -> int:
        return self.suite.options.seed + round_index

    def setup(self):
        self.peak.before_round(len(self.models))
        if self.suite.progress is not None:
            self.suite.progress.training_round(len(self.models), self.suite.options.trained_rounds)
        seed = self.seed(len(self.models))
        model = self.suite.new_model(self.config, self.trained_impl, seed)
        self.models.append(model)
        return (model, make_optimizer(model, self.suite.train_config(seed))), {}

    def run(self, model: MLP, optimizer: torch.optim.Optimizer) -> TrainResult:
        self.results.append(self.suite.fit(model, optimizer, self.seed(len(self.results))))
        return self.results[-1]

    def finish(self, extra_seeds: bool = True) -> TrainedModel:
        """`extra_seeds=False` (an untimed --benchmark-disable run) records only the rounds that ran."""
        self.peak.after_rounds(len(self.models))
        kept = self.suite.keep(self.models[0], self.results[0], self.trained_impl, self.seed(0))
        seeds = [self.seed(r) for r in range(len(self.models))]
        self.suite.evaluate_seeds(self.config, self.trained_impl, self.models, self.results, seeds, extra_seeds)
        self.models.clear()
        return kept


class CyclingInputs:
    """Model inputs for consecutive row blocks of the dev set, built before timing; `next` cycles through them.

    batch_size 1 gives single-example latency; rows that do not fill a last block are left out.
    """

    def __init__(self, variant: Variant, dev: BagOfWords, batch_size: int):
        if batch_size > len(dev):
            raise ValueError(f"batch size {batch_size} exceeds the {len(dev)} dev examples")
        self.batch_size = batch_size
        starts = range(0, len(dev) - batch_size + 1, batch_size)
        self.inputs = [variant.inputs(dev.rows(start, start + batch_size)) for start in starts]
        self.position = -1

    def next(self):
        self.position = (self.position + 1) % len(self.inputs)
        return self.inputs[self.position], {}

    def current(self) -> tuple:
        """The inputs `next` gave last (for the quiet gate's untimed calls, which must not warm the next round's)."""
        return self.inputs[max(self.position, 0)]


CALIBRATION_CALLS = 50
MAX_ROUNDS = 300_000


def calibrated_rounds(forward, setup, min_rounds: int, min_time: float) -> int:
    """At least `min_rounds`, and enough rounds to time for `min_time` seconds at the speed of a few untimed calls
    (the fastest of them: a call slowed by the machine would make the measurement too short)."""
    seconds = []
    for _ in range(CALIBRATION_CALLS):
        args, _ = setup()
        start = time.perf_counter()
        forward(*args)
        seconds.append(time.perf_counter() - start)
    per_call = float(np.percentile(seconds, 10))
    return int(min(MAX_ROUNDS, max(min_rounds, np.ceil(min_time / max(per_call, 1e-9)))))


def time_forward(benchmark, suite: Suite, forward, inputs: CyclingInputs, min_rounds: int, warmup_rounds: int) -> list[float] | None:
    """Time `forward` on the cycled inputs for at least `min_rounds` rounds and `options.min_time` seconds, each
    round at full machine speed as far as the quiet gate can tell; record the gate's and the stability verdict."""
    gate = suite.quiet_gate(forward, inputs)
    with torch.inference_mode():
        rounds = calibrated_rounds(forward, gate, min_rounds, suite.options.min_time)
        benchmark.pedantic(forward, setup=gate, warmup_rounds=warmup_rounds, rounds=rounds)
    seconds = round_seconds(benchmark)
    benchmark.extra_info.update(gate.info())
    benchmark.extra_info.update(timing_info(benchmark.name, seconds, suite))
    return seconds


def round_seconds(benchmark) -> list[float] | None:
    """The timed rounds of a finished pedantic benchmark, or None when pytest-benchmark did not time it
    (--benchmark-disable, or under xdist, where it disables itself)."""
    return None if benchmark.stats is None else list(benchmark.stats.stats.data)


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.percentile(np.asarray(seconds), PERCENTILES)
    return {f"p{p}": float(v) for p, v in zip(PERCENTILES, values)}


def timing_info(name: str, seconds: list[float] | None, suite: Suite) -> dict:
    """The stability verdict of a timed benchmark; an unstable one is also listed for the end of the run."""
    if seconds is None:
        return {}
    verdict = stats.spread(seconds)
    if verdict["unstable"]:
        suite.unstable.append(f"{name}: IQR/median {verdict['iqr_over_median']:.0%}")
    return {**verdict, "samples": stats.block_medians(seconds)}


def check_extra_info(group: str, info: dict) -> dict:
    missing = [name for name in contract.extra_info_fields(group) if name not in info]
    if missing:
        raise RuntimeError(f"the suite left out extra_info fields of the {group} group: {', '.join(missing)}")
    return info
