"""CPU training time, batch-1 latency and batched throughput over layers x width x vocabulary x impl.

Training runs first so that the dense training's warm-up round provides the model
that every impl's latency and throughput use: no configuration is trained more
than its rounds need. Under --benchmark-disable each body runs once, untimed.
"""
import math
import statistics

import pytest

from sst2mlp.suite import LATENCY_WARMUP_EXAMPLES, CyclingInputs, percentiles, round_seconds, time_forward, timing_info
from sst2mlp.training import TrainConfig

THROUGHPUT_PASSES = 4  # passes over the dev set per throughput benchmark (at least 20 rounds)


def batch_id(size):
    return f"B{size}"


@pytest.mark.benchmark(group="training")
@pytest.mark.parametrize("batch_size", [TrainConfig.batch_size], ids=batch_id)
def test_training(described_benchmark, training_runs, suite, pytestconfig, batch_size):
    described_benchmark.pedantic(
        training_runs.run,
        setup=training_runs.setup,
        warmup_rounds=1,
        rounds=pytestconfig.sst2_options.train_rounds,
    )
    training_runs.finish(extra_seeds=described_benchmark.enabled)
    described_benchmark.extra_info["epoch_seconds"] = [r.epoch_seconds for r in training_runs.results[1:]]
    described_benchmark.extra_info["peak_rss_bytes"] = training_runs.peak.bytes
    described_benchmark.extra_info.update(timing_info(described_benchmark.name, round_seconds(described_benchmark), suite))


@pytest.mark.benchmark(group="inference")
@pytest.mark.parametrize("batch_size", [1], ids=batch_id)
def test_inference(described_benchmark, variant, suite, model_config, pytestconfig, batch_size):
    options = pytestconfig.sst2_options
    examples = CyclingInputs(variant, suite.features(model_config.vocab_size).dev, batch_size)
    seconds = time_forward(described_benchmark, suite, variant.module, examples, options.latency_rounds,
                           warmup_rounds=LATENCY_WARMUP_EXAMPLES)
    if seconds is not None:
        described_benchmark.extra_info.update(percentiles(seconds))


@pytest.mark.benchmark(group="throughput")
@pytest.mark.parametrize("batch_size", [64, "dev"], ids=batch_id)
def test_throughput(described_benchmark, variant, suite, model_config, pytestconfig, batch_size):
    dev = suite.features(model_config.vocab_size).dev
    if batch_size != "dev" and batch_size > len(dev):
        pytest.skip(f"batch size {batch_size} exceeds the {len(dev)} dev examples")
    batches = CyclingInputs(variant, dev, len(dev) if batch_size == "dev" else batch_size)
    min_rounds = max(20, math.ceil(THROUGHPUT_PASSES * len(dev) / batches.batch_size))
    seconds = time_forward(described_benchmark, suite, variant.module, batches, min_rounds, warmup_rounds=2)
    described_benchmark.extra_info["batch_examples"] = batches.batch_size
    described_benchmark.extra_info["peak_rss_bytes"] = (
        suite.peak_memory_of(variant, batches.inputs[0]) if batch_size == "dev" else None)  # untimed: one more pass
    if seconds is not None:
        described_benchmark.extra_info["examples_per_second"] = batches.batch_size / statistics.median(seconds)
