"""CPU training time and batch-1 inference latency over layers x width x vocabulary.

Training runs first so that its warm-up round provides the model that the
accuracy and the inference benchmark use (one training per configuration less).
"""
import pytest
import torch

from sst2mlp.suite import LATENCY_WARMUP_EXAMPLES, SingleExamples, percentiles


@pytest.mark.benchmark(group="training")
def test_training(described_benchmark, training_runs, pytestconfig):
    described_benchmark.pedantic(
        training_runs.run,
        setup=training_runs.setup,
        teardown=training_runs.teardown,
        warmup_rounds=1,
        rounds=pytestconfig.sst2_options.train_rounds,
    )
    measured = training_runs.results[1:]
    described_benchmark.extra_info["epoch_seconds"] = [r.epoch_seconds for r in measured]


@pytest.mark.benchmark(group="inference")
def test_inference(described_benchmark, suite, model_config, pytestconfig):
    model = suite.model_for(model_config).model.eval()
    examples = SingleExamples(model, suite.features(model_config.vocab_size).dev)
    with torch.inference_mode():
        described_benchmark.pedantic(
            model,
            setup=examples.next,
            warmup_rounds=LATENCY_WARMUP_EXAMPLES,
            rounds=pytestconfig.sst2_options.latency_rounds,
        )
    described_benchmark.extra_info.update(percentiles(described_benchmark.stats.stats.data))
