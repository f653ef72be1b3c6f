"""The reference report's straightforward training loop, timed beside the suite's (not in the default run).

Dense rows built one example at a time by a torch Dataset, collated by a
DataLoader (batch 64, shuffled), the default Adam: what the report timed. Run it
in the same session as the suite so the speed-up is a ratio from one run:

    pytest benchmarks/bench_mlp.py benchmarks/reference_loop.py --sst2-layers=2 --sst2-widths=256 --sst2-vocabs=10000

Its benchmarks carry impl="reference-loop" in the training group. It plugs its loop into the suite's training
rounds (sst2mlp.suite.models), so seeds, memory and extra_info are those of every training benchmark.
"""
import time

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from sst2mlp import contract
from sst2mlp.reference.features import BagOfWords
from sst2mlp.reference.model import MLP
from sst2mlp.reference.training import TrainConfig, TrainResult
from sst2mlp.suite.models import Trainer


class DenseRows(Dataset):
    def __init__(self, bags: BagOfWords, labels: torch.Tensor):
        self.bags, self.labels = bags, labels.float()

    def __len__(self):
        return len(self.bags)

    def __getitem__(self, i):
        return self.bags.rows(i, i + 1).dense()[0], self.labels[i]


def reference_training(model: MLP, bags: BagOfWords, labels: torch.Tensor, config: TrainConfig,
                       optimizer: torch.optim.Optimizer) -> TrainResult:
    loader = DataLoader(DenseRows(bags, labels), batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
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


REFERENCE_LOOP = Trainer(contract.REFERENCE_LOOP, impl="dense", routine=reference_training, fused_adam=False)  # the default Adam


@pytest.mark.benchmark(group="training")
@pytest.mark.parametrize("batch_size", [TrainConfig.batch_size], ids=lambda b: f"B{b}")
@pytest.mark.parametrize("impl", [REFERENCE_LOOP.name])
def test_training(benchmark, case, impl, batch_size):
    runs = case.training_runs(timed=benchmark.enabled, trainer=REFERENCE_LOOP)
    benchmark.pedantic(runs.run, setup=runs.setup, warmup_rounds=1, rounds=case.train_rounds)
    case.write(benchmark, case.training(runs, benchmark), timed=benchmark.stats is not None)
