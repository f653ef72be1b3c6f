"""CPU training time, batch-1 latency, batched throughput and cold start over layers x width x vocabulary x impl.

Training runs first so that the dense training's warm-up round provides the model
that every impl's latency and throughput use: no configuration is trained more
than its rounds need. Under --benchmark-disable each body runs once, untimed.
"""
import math

import pytest

from sst2mlp.reference.training import TrainConfig
from sst2mlp.suite.coldstart import ROUNDS_WARMUP

LATENCY_WARMUP_EXAMPLES = 100
THROUGHPUT_PASSES = 4  # passes over the dev set per throughput benchmark (at least 20 rounds)


def batch_id(size):
    return f"B{size}"


@pytest.mark.benchmark(group="training")
@pytest.mark.parametrize("batch_size", [TrainConfig.batch_size], ids=batch_id)
def test_training(benchmark, case, batch_size):
    runs = case.training_runs(timed=benchmark.enabled)
    benchmark.pedantic(runs.run, setup=runs.setup, warmup_rounds=1, rounds=case.train_rounds)
    case.write(benchmark, case.training(runs, benchmark), timed=benchmark.stats is not None)


@pytest.mark.benchmark(group="inference")
@pytest.mark.parametrize("batch_size", [1], ids=batch_id)
def test_inference(benchmark, case, batch_size):
    batches = case.batches(batch_size)
    timing = case.time(benchmark, batches, case.latency_rounds, LATENCY_WARMUP_EXAMPLES)
    case.write(benchmark, case.inference(batches, timing), timed=timing.timed)


@pytest.mark.benchmark(group="throughput")
@pytest.mark.parametrize("batch_size", [64, "dev"], ids=batch_id)
def test_throughput(benchmark, case, batch_size):
    dev = case.dev
    if batch_size != "dev" and batch_size > len(dev):
        pytest.skip(f"batch size {batch_size} exceeds the {len(dev)} dev examples")
    batches = case.batches(len(dev) if batch_size == "dev" else batch_size)
    timing = case.time(benchmark, batches, max(20, math.ceil(THROUGHPUT_PASSES * len(dev) / batches.batch_size)), 2)
    peak = case.peak_rss_of_one_pass(batches.inputs[0]) if batch_size == "dev" else None  # untimed: one more pass
    case.write(benchmark, case.throughput(batches, timing, peak), timed=timing.timed)


@pytest.mark.benchmark(group="coldstart")
@pytest.mark.parametrize("batch_size", [1], ids=batch_id)
def test_coldstart(benchmark, case, batch_size):
    """Rounds are processes: from starting one to its first prediction (sst2mlp.suite.coldstart)."""
    runs = case.coldstart_runs()
    benchmark.pedantic(runs.run, setup=runs.setup, rounds=case.coldstart_rounds, warmup_rounds=ROUNDS_WARMUP)
    runs.finish()
    timed = benchmark.stats is not None
    case.write(benchmark, case.coldstart(runs, timed), timed=timed)
