"""Training and evaluation: Adam, batch 64, 2 epochs, binary cross-entropy on the logit."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from sst2mlp.native.kernel import KernelUnavailable, load_extension

from .features import BagOfWords


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    fused_adam: bool = True  # same update as default Adam, one kernel over all parameters

    def steps(self, examples: int) -> int:
        """Optimizer steps of a training on `examples` (the last batch of an epoch may be short)."""
        return self.epochs * math.ceil(examples / self.batch_size)


@dataclass(frozen=True)
class TrainResult:
    epoch_seconds: list[float]
    epoch_losses: list[float]  # mean batch loss of each epoch
    train_accuracy: float  # over the final epoch's batches, as the model saw them during training

    @property
    def seconds(self) -> float:
        return sum(self.epoch_seconds)

    @property
    def final_loss(self) -> float:
        return self.epoch_losses[-1]


class SparseRowsAdam(torch.optim.Adam):
    """torch.optim.Adam for a model whose input table gets a sparse gradient (the rows of the words in the batch).

    Adam is exact only if every row is updated every step (the moments of an untouched row decay and it still moves),
    so each step must read and write all parameters and moments. What it need not do is store, zero-fill and read a
    dense gradient of the table, zeros but for the batch's rows: with fused Adam, the extension's step over the table
    (csrc/sparse_rows_adam.cpp, fused Adam's arithmetic bit for bit) takes an untouched row's gradient as zero; the
    other parameters take torch's step. Without the compiled extension, or with unfused Adam, the table's dense
    gradient is one buffer kept across steps (the rows the previous step wrote zeroed, the batch's rows added) and
    torch's step runs on it: the same update, slower.
    """

    def __init__(self, params, **options):
        super().__init__(params, **options)
        for group in self.param_groups:
            if group["weight_decay"] or group["amsgrad"] or group["maximize"]:
                raise ValueError("SparseRowsAdam: weight_decay, amsgrad and maximize are not supported")
        self._dense_grads: dict[torch.Tensor, tuple[torch.Tensor, torch.Tensor]] = {}  # param -> (buffer, rows in it)

    @property
    def extension(self):
        """The compiled extension, or None where it cannot be built (then the dense-buffer path runs)."""
        try:
            return load_extension()
        except KernelUnavailable:
            return None

    @torch.no_grad()
    def step(self, closure=None):
        extension = self.extension
        table_steps = []
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None or not param.grad.is_sparse:
                    continue
                if extension is not None and group["fused"]:  # the extension's step is the fused Adam's arithmetic
                    table_steps.append((group, param, param.grad))
                    param.grad = None  # Adam's step below leaves it alone
                else:
                    param.grad = self._densify(param, param.grad)
        loss = super().step(closure)
        for group, param, grad in table_steps:
            self._table_step(extension, group, param, grad)
            param.grad = grad
        return loss

    def _table_step(self, extension, group: dict, param: torch.Tensor, grad: torch.Tensor) -> None:
        state = self.state[param]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        # uncoalesced: a row once per occurrence in the batch; the extension sums them
        extension.sparse_rows_adam_(param, state["exp_avg"], state["exp_avg_sq"], grad._indices()[0].contiguous(),
                                    grad._values().contiguous(), lr=float(group["lr"]), beta1=beta1, beta2=beta2,
                                    eps=group["eps"], step=int(state["step"].item()))

    def _densify(self, param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        buffer, written = self._dense_grads.get(param, (None, None))
        if buffer is None:
            buffer = torch.zeros_like(param)
        else:
            buffer.index_fill_(0, written, 0.0)
        rows = grad._indices()[0]  # uncoalesced: a row once per occurrence in the batch; index_add_ sums them
        buffer.index_add_(0, rows, grad._values())
        self._dense_grads[param] = (buffer, rows)
        return buffer


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    adam = SparseRowsAdam if getattr(model, "sparse", False) else torch.optim.Adam
    return adam(model.parameters(), lr=config.learning_rate, fused=config.fused_adam)


def train(
    model: nn.Module,
    bags: BagOfWords,
    labels: torch.Tensor,
    config: TrainConfig = TrainConfig(),
    optimizer: torch.optim.Optimizer | None = None,
) -> TrainResult:
    """Train in place; rows are shuffled each epoch by a generator seeded with `config.seed`."""
    if len(bags) != len(labels):
        raise ValueError(f"{len(bags)} feature rows but {len(labels)} labels")
    optimizer = optimizer or make_optimizer(model, config)
    shuffle = torch.Generator().manual_seed(config.seed)
    targets = labels.to(torch.float32)
    model.train()
    epoch_seconds, epoch_losses = [], []
    for _ in range(config.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(bags), generator=shuffle)
        epoch_bags, epoch_targets = bags.permute(order), targets[order]
        loss_sum, correct, num_batches = torch.zeros(()), torch.zeros((), dtype=torch.int64), 0
        for begin in range(0, len(bags), config.batch_size):
            end = min(begin + config.batch_size, len(bags))
            batch_targets = epoch_targets[begin:end]
            logits = model(*model.inputs(epoch_bags.rows(begin, end)))
            loss = F.binary_cross_entropy_with_logits(logits, batch_targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += loss.detach()
                correct += ((logits > 0) == (batch_targets > 0.5)).sum()
            num_batches += 1
        epoch_seconds.append(time.perf_counter() - start)
        epoch_losses.append(loss_sum.item() / num_batches)
    model.eval()
    return TrainResult(epoch_seconds, epoch_losses, correct.item() / len(bags))


@torch.inference_mode()
def predict_logits(model, bags: BagOfWords, batch_size: int = 1024) -> torch.Tensor:
    """Logits of a model in eval mode, or of any callable with an `inputs(bags)` method (an impl variant)."""
    chunks = [model(*model.inputs(bags.rows(b, min(b + batch_size, len(bags))))) for b in range(0, len(bags), batch_size)]
    return torch.cat(chunks)


def accuracy(model, bags: BagOfWords, labels: torch.Tensor) -> float:
    return logit_accuracy(predict_logits(model, bags), labels)


def logit_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows where sigmoid(logit) > 0.5 (that is, logit > 0) matches the 0/1 label."""
    return ((logits > 0) == labels.bool()).float().mean().item()
