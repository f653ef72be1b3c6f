"""The reference report's straightforward training loop, timed beside the suite's (not in the default run).

Dense rows built one example at a time by a torch Dataset, collated by a
DataLoader (batch 64, shuffled), the default Adam: what the report timed. Run it
in the same session as the suite so the speed-up is a ratio from one run:

    pytest benchmarks/bench_mlp.py benchmarks/reference_loop.py --sst2-layers=2 --sst2-widths=256 --sst2-vocabs=10000

Its benchmarks carry impl="reference-loop" in the training group.
"""
import time

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from sst2mlp.features import BagOfWords
from sst2mlp.model import MLP
from sst2mlp.suite import FirstRoundPeak, TrainedModel, check_extra_info, round_seconds, timing_info
from sst2mlp.training import TrainConfig, TrainResult, accuracy

IMPL = "reference-loop"


class DenseRows(Dataset):
    def __init__(self, bags: BagOfWords, labels: torch.Tensor):
        self.bags, self.labels = bags, labels.float()

    def __len__(self):
        return len(self.bags)

    def __getitem__(self, i):
        return self.bags.rows(i, i + 1).dense()[0], self.labels[i]


def reference_training(model: MLP, bags: BagOfWords, labels: torch.Tensor, config: TrainConfig) -> TrainResult:
    loader = DataLoader(DenseRows(bags, labels), batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    model.train()
    epoch_seconds, epoch_losses = [], []
    for _ in range(config.epochs):
        start, correct, loss_sum = time.perf_counter(), 0, 0.0
        for rows, targets in loader:
            logits = model(rows)
            loss = F.binary_cross_entropy_with_logits(logits, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += ((logits > 0) == (targets > 0.5)).sum().item()
            loss_sum += loss.item()
        epoch_seconds.append(time.perf_counter() - start)
        epoch_losses.append(loss_sum / len(loader))
    model.eval()
    return TrainResult(epoch_seconds, epoch_losses, correct / len(bags))


@pytest.mark.benchmark(group="training")
@pytest.mark.parametrize("batch_size", [TrainConfig.batch_size], ids=lambda b: f"B{b}")
@pytest.mark.parametrize("impl", [IMPL])
def test_training(benchmark, suite, sst2, model_config, pinned_threads, impl, batch_size, pytestconfig):
    features = suite.features(model_config.vocab_size)
    models, results, peak = [], [], FirstRoundPeak(suite, model_config, "dense")

    def fresh_model():  # round r: seed base + r, as the suite's trainings
        peak.before_round(len(models))
        seed = suite.options.seed + len(models)
        models.append(suite.new_model(model_config, "dense", seed))
        return (models[-1], features.train, suite.train_labels, suite.train_config(seed)), {}

    def train_and_record(*args):
        results.append(reference_training(*args))

    benchmark.pedantic(train_and_record, setup=fresh_model, warmup_rounds=1,
                       rounds=pytestconfig.sst2_options.train_rounds)
    peak.after_rounds(len(models))
    seed = suite.options.seed
    trained = TrainedModel(models[0], results[0], accuracy(models[0], features.dev, suite.dev_labels), IMPL, seed)
    seeds = suite.evaluate_seeds(model_config, IMPL, models, results, [seed + r for r in range(len(models))],
                                 extra_seeds=benchmark.enabled)
    benchmark.extra_info.update(
        suite.describe(model_config, pinned_threads, impl, trained, trained.accuracy),
        epoch_seconds=[r.epoch_seconds for r in results[1:]],
        peak_rss_bytes=peak.bytes,
        **seeds.extra_info(),
        **timing_info(benchmark.name, round_seconds(benchmark), suite),
    )
    if benchmark.stats is not None:
        check_extra_info("training", benchmark.extra_info)
