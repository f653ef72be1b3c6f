"""Accuracy over seeds: the dev accuracy of every seed's model of a configuration (the timed training rounds, then
untimed extra trainings up to --sst2-seeds), and of each approximate impl made from each seed's model."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from sst2mlp.contract import AccuracyOverSeeds, ApproximateSeeds, SeedAccuracies
from sst2mlp.impls.registry import make_variant
from sst2mlp.reference.model import MLP, ModelConfig
from sst2mlp.reference.training import TrainResult, accuracy

from .corpus import Corpus
from .models import Models, trainer_of

EXTRA_SEED_TRAINER = trainer_of("sparse")  # the fastest exact trainer: the same function as dense


@dataclass(frozen=True)
class SeedResult:
    dev: float
    train: float
    approximate: dict[str, float]  # the dev accuracy of each approximate impl made from this seed's model


@dataclass
class SeedRecorder:
    """Never inside a timed region; `seconds` is what the run's wall time pays for it."""

    corpus: Corpus
    models: Models
    seed_count: int  # seeds whose accuracy each configuration records
    approximate: list[str]  # the approximate impls of the run
    source: str = "sparse"  # the trainer whose models every impl is made from
    records: dict[tuple[ModelConfig, str], SeedAccuracies] = field(default_factory=dict)  # key: (config, trainer)
    _approximate: dict[ModelConfig, dict[str, list[float]]] = field(default_factory=dict)  # of the source trainer's models
    _extra: dict[tuple[ModelConfig, int], SeedResult] = field(default_factory=dict)
    seconds: float = 0.0

    def evaluate(self, config: ModelConfig, trainer: str, models: list[MLP], results: list[TrainResult], seeds: list[int],
                 extra_seeds: bool = True) -> SeedAccuracies:
        """Every seed's model, adding untimed sparse trainings until `seed_count` seeds are recorded (if `extra_seeds`).
        The approximate impls are made from the source trainer's models, the ones every impl is made from."""
        start = time.perf_counter()
        approximate = self.approximate if trainer == self.source else []
        evaluated = [self._evaluate(model, result, approximate) for model, result in zip(models, results)]
        seeds, trained_by = list(seeds), [trainer] * len(models)
        for seed in range(seeds[-1] + 1, seeds[0] + self.seed_count) if extra_seeds else ():
            evaluated.append(self._extra_seed(config, seed))
            seeds.append(seed)
            trained_by.append(EXTRA_SEED_TRAINER.name)
        dev = [e.dev for e in evaluated]
        record = SeedAccuracies(accuracy=AccuracyOverSeeds.of(seeds, dev), seed_trained_impls=trained_by,
                                train_accuracy_seeds=[e.train for e in evaluated])
        self.records[(config, trainer)] = record
        if approximate:
            self._approximate[config] = {name: [e.approximate[name] for e in evaluated] for name in approximate}
        self.seconds += time.perf_counter() - start
        return record

    def approximate_seeds(self, config: ModelConfig, impl: str) -> ApproximateSeeds | None:
        """An approximate impl's accuracies over the source trainer's seeds, once its training benchmark recorded them."""
        values = self._approximate.get(config, {}).get(impl)
        if values is None:
            return None
        reference = self.records[(config, self.source)]
        return ApproximateSeeds(accuracy=AccuracyOverSeeds.of(reference.accuracy.seeds, values),
                                reference_accuracy_seeds=reference.accuracy.accuracy_seeds)

    def _evaluate(self, model: MLP, result: TrainResult, approximate: list[str]) -> SeedResult:
        dev, labels = self.corpus.features(model.config.vocab_size).dev, self.corpus.dev_labels
        return SeedResult(accuracy(model, dev, labels), result.train_accuracy,
                          {name: accuracy(make_variant(name, model, dev), dev, labels) for name in approximate})

    def _extra_seed(self, config: ModelConfig, seed: int) -> SeedResult:
        """One untimed training per configuration and seed, whichever trainer asks first; evaluated for every approximate
        impl of the run, so that a later trainer's record finds them."""
        if (config, seed) not in self._extra:
            model, result = self.models.train(config, EXTRA_SEED_TRAINER, seed)
            self._extra[(config, seed)] = self._evaluate(model, result, self.approximate)
        return self._extra[(config, seed)]
