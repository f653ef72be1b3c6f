"""The reference report's feed-forward classifier and its cost model."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .features import BagOfWords

# What one element of the input table costs a training, against one weight of a hidden layer: a dense input layer
# multiplies every element (1.0); the sparse trainer touches only the rows of the words present, and a least-squares
# fit of the 27 trainings of a full default run (2-core Zen 4 VM) put its table at 0.08 of a hidden weight. The
# report's FLOPs weigh the table fully, which put a sparse run's progress estimates 30% low.
INPUT_TABLE_COST = {False: 1.0, True: 0.08}


@dataclass(frozen=True)
class ModelConfig:
    num_layers: int  # hidden -> hidden layers, between the input and output projections
    hidden_size: int
    vocab_size: int

    def __post_init__(self):
        for name in ("num_layers", "hidden_size", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "num_layers" else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'num_layers' else 'positive'} integer, got {value!r}")

    @property
    def id(self) -> str:
        return f"L{self.num_layers}-H{self.hidden_size}-V{self.vocab_size}"

    def _layers(self) -> list[tuple[int, int]]:
        """(in_features, out_features) of every Linear layer: input projection, hidden layers, output logit."""
        hidden = self.hidden_size
        return [(self.vocab_size, hidden), *[(hidden, hidden)] * self.num_layers, (hidden, 1)]

    @property
    def flops(self) -> int:
        """FLOPs per example as the report counts them (count_flops gives the same from a module)."""
        return sum(linear_flops(m, n) for m, n in self._layers())

    def relative_work(self, sparse_input: bool = True) -> float:
        """How a benchmark's wall time grows with the configuration (the progress estimate's and the run order's
        measure): the hidden layers' weights plus the input table at its cost relative to a hidden weight."""
        return self.num_layers * self.hidden_size ** 2 + INPUT_TABLE_COST[sparse_input] * self.vocab_size * self.hidden_size

    @property
    def params(self) -> int:
        """Weights and biases (count_params gives the same from a module)."""
        return sum((m + 1) * n for m, n in self._layers())


class SparseLinear(nn.Module):
    """x @ W.T + b for count vectors given as (indices, offsets, counts): nn.EmbeddingBag(mode="sum") plus a bias.

    Same function and same initial distribution as nn.Linear(in_features, out_features)
    (uniform within 1/sqrt(in_features)), but it touches only the words present, in the backward pass too: the
    table's gradient is sparse, the rows of the batch's words (training.SparseRowsAdam turns it into exact Adam).
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bag = nn.EmbeddingBag(in_features, out_features, mode="sum", include_last_offset=True, sparse=True)
        self.bias = nn.Parameter(torch.empty(out_features))
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.bag.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self.bag(indices, offsets, per_sample_weights=counts) + self.bias


class MLP(nn.Module):
    """Input projection, `num_layers` hidden layers, one output logit; ReLU after all but the last.

    `sparse=True` computes the same function with a SparseLinear input layer fed word indices.
    """

    def __init__(self, num_layers: int, hidden_size: int, vocab_size: int, sparse: bool = False):
        super().__init__()
        self.config = ModelConfig(num_layers, hidden_size, vocab_size)
        self.sparse = sparse
        self.input = SparseLinear(vocab_size, hidden_size) if sparse else nn.Linear(vocab_size, hidden_size)
        self.hidden = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(num_layers))
        self.output = nn.Linear(hidden_size, 1)

    @classmethod
    def from_config(cls, config: ModelConfig, sparse: bool = False) -> MLP:
        return cls(config.num_layers, config.hidden_size, config.vocab_size, sparse=sparse)

    def inputs(self, bags: BagOfWords) -> tuple[torch.Tensor, ...]:
        return bags.inputs(self.sparse)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.input(*inputs))
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.output(h).squeeze(-1)


def convert(model: MLP, sparse: bool) -> MLP:
    """A copy of `model` with a dense or a sparse input layer and the same parameters."""
    state = dict(model.state_dict())
    weight = state.pop("input.bag.weight").T if model.sparse else state.pop("input.weight")  # (hidden, vocab)
    state["input.bag.weight" if sparse else "input.weight"] = (weight.T if sparse else weight).contiguous()
    copy = MLP.from_config(model.config, sparse=sparse)
    copy.load_state_dict(state)
    return copy.train(model.training)


def linear_flops(in_features: int, out_features: int) -> int:
    """The report's count for one Linear layer on one example: 2mn multiply-adds plus n bias adds."""
    return 2 * in_features * out_features + out_features


def count_flops(model: nn.Module) -> int:
    """FLOPs per example as the report counts them: sum of 2mn + n over the Linear layers, ReLU ignored."""
    layers = (m for m in model.modules() if isinstance(m, (nn.Linear, SparseLinear)))
    return sum(linear_flops(m.in_features, m.out_features) for m in layers)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
