"""One benchmark's subject (a configuration, an impl, a thread count, in a session): what its body runs and times,
and the record of each group that its benchmark saves as extra_info (sst2mlp.contract), one builder per group. The
benchmark bodies (benchmarks/) call the case and nothing behind it."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from sst2mlp.contract import ColdStartInfo, InferenceInfo, ModelInfo, Roofline, ThroughputInfo, TrainingInfo, TrainingRoofline
from sst2mlp.impls.registry import IMPLS
from sst2mlp.measure.limits import call_floor_seconds, training_floor_seconds, training_flops
from sst2mlp.measure.timing import CyclingInputs, Timing, input_preparation_seconds, round_seconds, stability, time_forward
from sst2mlp.reference.features import BagOfWords
from sst2mlp.reference.model import ModelConfig
from sst2mlp.reference.training import TrainConfig

from .coldstart import ColdStartRuns
from .models import TrainedModel, Trainer, TrainingRuns, trainer_of
from .session import Suite
from .variants import PreparedVariant


@dataclass(frozen=True)
class BenchmarkCase:
    suite: Suite
    config: ModelConfig
    impl: str  # the impl timed, or the trainer's name for a training benchmark
    threads: int

    @property
    def dev(self) -> BagOfWords:
        return self.suite.corpus.features(self.config.vocab_size).dev

    @cached_property
    def variant(self) -> PreparedVariant:
        return self.suite.variants.get(self.config, self.impl, self.threads)

    # What the bodies run: the rounds each group takes, its inputs, its timing, its record written.
    @property
    def train_rounds(self) -> int:
        return self.suite.options.train_rounds

    @property
    def coldstart_rounds(self) -> int:
        return self.suite.options.coldstart_rounds

    @property
    def latency_rounds(self) -> int:
        return self.suite.options.latency_rounds

    def training_runs(self, timed: bool, trainer: Trainer | None = None) -> TrainingRuns:
        """The rounds of its training benchmark, by its impl's trainer or by `trainer`."""
        return self.suite.training_runs(self.config, trainer or trainer_of(self.impl), timed)

    def batches(self, batch_size: int) -> CyclingInputs:
        """The variant's inputs for batches of `batch_size` dev rows, made before any timing."""
        return CyclingInputs(self.variant.variant, self.dev, batch_size)

    def time(self, benchmark, inputs: CyclingInputs, min_rounds: int, warmup_rounds: int) -> Timing:
        """The variant's forward on the cycled inputs, timed behind the session's quiet gate."""
        forward = self.variant.variant.module
        return time_forward(benchmark, forward, inputs, lambda: self.suite.quiet_gate(forward, inputs), min_rounds,
                            warmup_rounds, self.suite.options.min_time)

    def peak_rss_of_one_pass(self, inputs: tuple) -> int | None:
        """The resident memory one untimed forward pass on `inputs` adds at its peak."""
        with torch.inference_mode():
            return self.suite.memory.peak_of(lambda: self.variant.variant(*inputs))

    def coldstart_runs(self) -> ColdStartRuns:
        return self.suite.coldstarts.runs(self.variant, self.config, self.threads, self.dev.rows(0, 1))

    def write(self, benchmark, record, timed: bool) -> None:
        self.suite.write(benchmark, record, timed)

    # The records.
    def model_info(self, trained: TrainedModel, accuracy: float, flops: float) -> ModelInfo:
        corpus = self.suite.corpus
        impl = IMPLS.get(self.impl)  # None for the reference loop, a trainer of its own
        return ModelInfo(
            num_layers=self.config.num_layers, hidden_size=self.config.hidden_size, vocab_size=self.config.vocab_size,
            threads=self.threads, impl=self.impl, flops=self.config.flops, effective_flops=flops, params=self.config.params,
            trained_impl=trained.trained_impl, seed=trained.seed, accuracy=accuracy,
            train_accuracy=trained.result.train_accuracy, final_loss=trained.result.final_loss,
            train_examples=len(corpus.data.train), dev_examples=len(corpus.data.dev),
            exact=impl.exact if impl else True, peer_runtime=impl.peer if impl else False)

    def training(self, runs: TrainingRuns, benchmark) -> TrainingInfo:
        """After pedantic: the first round's model, every round's accuracy (and, when timed, the extra seeds')."""
        trainer = runs.trainer
        first = runs.first_model()
        seeds = self.suite.seeds.evaluate(self.config, trainer.name, runs.trained, runs.results, runs.seeds,
                                          extra_seeds=benchmark.enabled)
        runs.trained.clear()  # the kept model stays in the session; the other rounds' weights are no longer needed
        seconds = round_seconds(benchmark)
        median = None if seconds is None else float(np.median(seconds))
        return TrainingInfo(
            model=self.model_info(first, first.accuracy, IMPLS[trainer.impl].effective_flops(first.model, self.dev)),
            seeds=seeds, epoch_seconds=[r.epoch_seconds for r in runs.results[1:]], peak_rss_bytes=runs.peak.bytes,
            roofline=None if median is None else self.training_roofline(first, trainer.train_config(first.seed), median),
            stability=None if seconds is None else stability(seconds))

    def training_roofline(self, trained: TrainedModel, config: TrainConfig, median: float) -> TrainingRoofline | None:
        """A training's median against the floor of its configuration (the same for every trainer: the least work
        exact Adam and a sparse input layer need)."""
        machine = self.suite.limits.get(self.threads)
        if machine is None:
            return None
        train = self.suite.corpus.features(self.config.vocab_size).train
        flops = IMPLS["sparse"].effective_flops(trained.model, train) * len(train) * config.epochs
        adam_step = self.suite.adam_step_seconds(self.config.params, self.threads)
        floor = training_floor_seconds(machine, adam_step, config.steps(len(train)), flops)
        return TrainingRoofline.of(adam_step, training_flops(flops), floor, median)

    def _variant_model(self) -> ModelInfo:
        prepared = self.variant
        return self.model_info(prepared.source, prepared.accuracy, prepared.effective_flops)

    def roofline(self, timing: Timing, batch_size: int) -> Roofline | None:
        """The timed call against the session's machine limits at this thread count (None untimed or unmeasured)."""
        machine, median = self.suite.limits.get(self.threads), timing.median()
        if machine is None or median is None:
            return None
        prepared = self.variant
        flops = prepared.effective_flops * batch_size
        floor = call_floor_seconds(machine, prepared.variant.impl, prepared.source.model, prepared.footprint.model_bytes,
                                   self.dev, batch_size, flops)
        return Roofline.of(flops, floor, median, machine.call_floor_of(self.impl))

    def input_preparation(self, batches: CyclingInputs, timing: Timing) -> float | None:
        """After a timed benchmark's rounds: seconds per call of making its inputs from the rows (untimed by it)."""
        return input_preparation_seconds(batches, self.threads) if timing.timed else None

    def inference(self, batches: CyclingInputs, timing: Timing) -> InferenceInfo:
        return InferenceInfo(model=self._variant_model(), footprint=self.variant.footprint, parity=self.variant.parity,
                             roofline=self.roofline(timing, 1), percentiles=timing.percentiles(),
                             gate=timing.gate, stability=timing.stability(),
                             approximate_seeds=self.suite.seeds.approximate_seeds(self.config, self.impl),
                             input_preparation_seconds=self.input_preparation(batches, timing))

    def throughput(self, batches: CyclingInputs, timing: Timing, peak_rss_bytes: int | None) -> ThroughputInfo:
        median = timing.median()
        return ThroughputInfo(
            model=self._variant_model(), footprint=self.variant.footprint, parity=self.variant.parity,
            roofline=self.roofline(timing, batches.batch_size), batch_examples=batches.batch_size,
            peak_rss_bytes=peak_rss_bytes, examples_per_second=None if median is None else batches.batch_size / median,
            gate=timing.gate, stability=timing.stability(),
            approximate_seeds=self.suite.seeds.approximate_seeds(self.config, self.impl),
            input_preparation_seconds=self.input_preparation(batches, timing))

    def coldstart(self, runs: ColdStartRuns, timed: bool) -> ColdStartInfo:
        """After pedantic; for an impl that runs the suite's C++ kernel also the kernel's first build (once a
        session, timed runs only)."""
        build = self.suite.coldstarts.kernel_build_seconds() if timed and IMPLS[self.impl].compiles_kernel else None
        return ColdStartInfo(model=self._variant_model(), footprint=self.variant.footprint,
                             coldstart=runs.parts() if timed else None,
                             stability=stability([r.total for r in runs.timed()]) if timed else None,
                             kernel_build_seconds=build)
