"""CPU training time, batch-1 latency, batched throughput and cold start over layers x width x vocabulary x impl.

Training runs first so that the dense training's warm-up round provides the model
that every impl's latency and throughput use: no configuration is trained more
than its rounds need. Under --benchmark-disable each body runs once, untimed.
"""
import math

import pytest
import torch

from sst2mlp.coldstart import ROUNDS_WARMUP
from sst2mlp.timing import CyclingInputs, time_forward
from sst2mlp.trained import trainer_of
from sst2mlp.training import TrainConfig

LATENCY_WARMUP_EXAMPLES = 100
THROUGHPUT_PASSES = 4  # passes over the dev set per throughput benchmark (at least 20 rounds)


def batch_id(size):
    return f"B{size}"


@pytest.mark.benchmark(group="training")
@pytest.mark.parametrize("batch_size", [TrainConfig.batch_size], ids=batch_id)
def test_training(benchmark, case, batch_size):
    runs = case.suite.training_runs(case.config, trainer_of(case.impl), timed=benchmark.enabled)
    benchmark.pedantic(runs.run, setup=runs.setup, warmup_rounds=1, rounds=case.suite.options.train_rounds)
    case.suite.write(benchmark, case.training(runs, benchmark), timed=benchmark.stats is not None)


def timed(benchmark, case, inputs: CyclingInputs, min_rounds: int, warmup_rounds: int):
    forward = case.variant.variant.module
    return time_forward(benchmark, forward, inputs, lambda: case.suite.quiet_gate(forward, inputs), min_rounds,
                        warmup_rounds, case.suite.options.min_time)


@pytest.mark.benchmark(group="inference")
@pytest.mark.parametrize("batch_size", [1], ids=batch_id)
def test_inference(benchmark, case, batch_size):
    examples = CyclingInputs(case.variant.variant, case.dev, batch_size)
    timing = timed(benchmark, case, examples, case.suite.options.latency_rounds, LATENCY_WARMUP_EXAMPLES)
    case.suite.write(benchmark, case.inference(timing), timed=timing.timed)


@pytest.mark.benchmark(group="throughput")
@pytest.mark.parametrize("batch_size", [64, "dev"], ids=batch_id)
def test_throughput(benchmark, case, batch_size):
    dev = case.dev
    if batch_size != "dev" and batch_size > len(dev):
        pytest.skip(f"batch size {batch_size} exceeds the {len(dev)} dev examples")
    batches = CyclingInputs(case.variant.variant, dev, len(dev) if batch_size == "dev" else batch_size)
    timing = timed(benchmark, case, batches, max(20, math.ceil(THROUGHPUT_PASSES * len(dev) / batches.batch_size)), 2)
    peak = whole_dev_peak(case, batches.inputs[0]) if batch_size == "dev" else None  # untimed: one more pass
    case.suite.write(benchmark, case.throughput(batches, timing, peak), timed=timing.timed)


@pytest.mark.benchmark(group="coldstart")
@pytest.mark.parametrize("batch_size", [1], ids=batch_id)
def test_coldstart(benchmark, case, batch_size):
    """Rounds are processes: from starting one to its first prediction (sst2mlp.coldstart)."""
    runs = case.coldstart_runs()
    benchmark.pedantic(runs.run, setup=runs.setup, rounds=case.suite.options.coldstart_rounds,
                       warmup_rounds=ROUNDS_WARMUP)
    runs.finish()
    timed = benchmark.stats is not None
    case.suite.write(benchmark, case.coldstart(runs, timed), timed=timed)


def whole_dev_peak(case, inputs) -> int | None:
    with torch.inference_mode():
        return case.suite.memory.peak_of(lambda: case.variant.variant(*inputs))
