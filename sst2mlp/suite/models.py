"""Making and fitting models: the one place that builds a model for a configuration, trainer and seed and trains it
(the training benchmarks, the extra seeds, the reference loop and the memory warm-up all use it), the models a
session keeps, and the rounds of a timed training benchmark."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sst2mlp.impls.registry import get_impl
from sst2mlp.measure.footprint import MemoryMeter
from sst2mlp.reference.features import BagOfWords
from sst2mlp.reference.model import MLP, ModelConfig
from sst2mlp.reference.training import TrainConfig, TrainResult, accuracy, make_optimizer, train

from .corpus import Corpus

Routine = Callable[[MLP, BagOfWords, torch.Tensor, TrainConfig, torch.optim.Optimizer], TrainResult]
WARM_UP_EXAMPLES = 2048  # rows of the small untimed training that precedes a session's first peak-memory reading


@dataclass(frozen=True)
class Trainer:
    """How a training benchmark trains: the label its benchmarks carry, the impl whose model it trains (its input
    layer and its cost), the training loop and whether Adam runs fused."""

    name: str
    impl: str
    routine: Routine = train
    fused_adam: bool = True

    @property
    def sparse(self) -> bool:
        return get_impl(self.impl).sparse_input

    def train_config(self, seed: int, epochs: int = TrainConfig.epochs) -> TrainConfig:
        return TrainConfig(seed=seed, epochs=epochs, fused_adam=self.fused_adam)


def trainer_of(impl: str) -> Trainer:
    """The suite's own trainer for a trainable impl (dense, sparse)."""
    return Trainer(impl, impl)


@dataclass
class TrainedModel:
    model: MLP
    result: TrainResult
    accuracy: float  # on dev
    trained_impl: str
    seed: int


@dataclass
class Models:
    """Builds and fits models on the corpus, and keeps one per configuration and trainer: seed `seed`'s, whose weights
    every impl's latency and throughput benchmarks run."""

    corpus: Corpus
    seed: int
    kept: dict[tuple[ModelConfig, str], TrainedModel] = field(default_factory=dict)
    trainings: int = 0  # full trainings run, to check none is wasted

    def prepare(self, config: ModelConfig, trainer: Trainer, seed: int) -> tuple[MLP, torch.optim.Optimizer]:
        torch.manual_seed(seed)
        model = MLP.from_config(config, sparse=trainer.sparse)
        return model, make_optimizer(model, trainer.train_config(seed))

    def fit(self, model: MLP, optimizer: torch.optim.Optimizer, trainer: Trainer, seed: int) -> TrainResult:
        """A full training on the whole (possibly limited) training split."""
        features = self.corpus.features(model.config.vocab_size)
        self.trainings += 1
        return trainer.routine(model, features.train, self.corpus.train_labels, trainer.train_config(seed), optimizer)

    def train(self, config: ModelConfig, trainer: Trainer, seed: int) -> tuple[MLP, TrainResult]:
        model, optimizer = self.prepare(config, trainer, seed)
        return model, self.fit(model, optimizer, trainer, seed)

    def train_small(self, sparse: bool, vocab_size: int) -> None:
        """One epoch of a small model on the first rows: pages in torch's training code and its one-off buffers."""
        trainer = trainer_of("sparse" if sparse else "dense")
        train_rows = self.corpus.features(vocab_size).train
        rows = min(WARM_UP_EXAMPLES, len(train_rows))
        model, optimizer = self.prepare(ModelConfig(1, 16, vocab_size), trainer, self.seed)
        trainer.routine(model, train_rows.rows(0, rows), self.corpus.train_labels[:rows],
                        trainer.train_config(self.seed, epochs=1), optimizer)

    def evaluated(self, model: MLP, result: TrainResult, trainer: Trainer, seed: int) -> TrainedModel:
        dev = self.corpus.features(model.config.vocab_size).dev
        return TrainedModel(model, result, accuracy(model, dev, self.corpus.dev_labels), trainer.name, seed)

    def keep(self, trained: TrainedModel) -> None:
        """Keep a seed-`seed` model unless one is kept for its configuration and trainer already (the first stays:
        benchmarks have run on it)."""
        if trained.seed != self.seed:
            raise ValueError(f"only seed {self.seed}'s models are kept, got seed {trained.seed}")
        self.kept.setdefault((trained.model.config, trained.trained_impl), trained)

    def release(self, config: ModelConfig) -> None:
        """Forget the kept models of `config` (after its last benchmark)."""
        for key in [key for key in self.kept if key[0] == config]:
            del self.kept[key]

    def model_for(self, config: ModelConfig, trainer: Trainer) -> TrainedModel:
        """The kept model, trained now if no benchmark has trained it yet."""
        if (config, trainer.name) not in self.kept:
            self.keep(self.evaluated(*self.train(config, trainer, self.seed), trainer, self.seed))
        return self.kept[(config, trainer.name)]


@dataclass
class FirstRoundPeak:
    """Peak resident memory of one full training (weights, gradients, Adam state, batches): the first, untimed round
    of a pedantic training benchmark, read when the second round's setup begins or after the rounds."""

    memory: MemoryMeter
    warm_up: Callable[[], None]  # a small untimed training, once per session and input-layer kind
    start: int | None = None
    bytes: int | None = None

    def before_round(self, index: int) -> None:
        if index == 0:
            self.warm_up()
            self.start = self.memory.start()
        elif index == 1:  # the first training is over: read its peak before anything else is allocated
            self.bytes = self.memory.added_since(self.start)

    def after_rounds(self, rounds_run: int) -> None:
        if rounds_run == 1:
            self.bytes = self.memory.added_since(self.start)


@dataclass
class TrainingRuns:
    """setup/target for benchmark.pedantic: round r trains a fresh model with seed `seed + r` on the whole train split
    (the same work every round, so timings compare). Only `run` is timed; `setup` builds the model and optimizer.

    Rounds beyond `rounds` (the profiling round that --benchmark-cprofile adds) train but are not recorded."""

    models: Models
    config: ModelConfig
    trainer: Trainer
    rounds: int  # warm-up and timed rounds that pedantic will run
    peak: FirstRoundPeak
    on_round: Callable[[int], None] = lambda index: None  # the progress display, between rounds
    started: int = 0  # setups so far: the index of the next round
    trained: list[MLP] = field(default_factory=list)
    results: list[TrainResult] = field(default_factory=list)

    def seed(self, index: int) -> int:
        return self.models.seed + index

    def setup(self):
        index, self.started = self.started, self.started + 1
        self.peak.before_round(index)
        self.on_round(index)
        model, optimizer = self.models.prepare(self.config, self.trainer, self.seed(index))
        if index < self.rounds:
            self.trained.append(model)
        return (model, optimizer, index), {}

    def run(self, model: MLP, optimizer: torch.optim.Optimizer, index: int) -> TrainResult:
        result = self.models.fit(model, optimizer, self.trainer, self.seed(index))
        if index < self.rounds:
            self.results.append(result)
        return result

    def first_model(self) -> TrainedModel:
        """Round 0's model (seed `seed`), which this benchmark describes; kept for the impls unless one is already."""
        self.peak.after_rounds(len(self.trained))
        first = self.models.evaluated(self.trained[0], self.results[0], self.trainer, self.seed(0))
        self.models.keep(first)
        return first

    @property
    def seeds(self) -> list[int]:
        return [self.seed(index) for index in range(len(self.results))]
