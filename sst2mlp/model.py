"""The reference report's feed-forward classifier and its cost model."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


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


class MLP(nn.Module):
    """Input projection, `num_layers` hidden layers, one output logit; ReLU after all but the last."""

    def __init__(self, num_layers: int, hidden_size: int, vocab_size: int):
        super().__init__()
        self.config = ModelConfig(num_layers, hidden_size, vocab_size)
        self.input = nn.Linear(vocab_size, hidden_size)
        self.hidden = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(num_layers))
        self.output = nn.Linear(hidden_size, 1)

    @classmethod
    def from_config(cls, config: ModelConfig) -> "MLP":
        return cls(config.num_layers, config.hidden_size, config.vocab_size)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Everything after the input layer's affine map: the logits, shape (batch,)."""
        h = torch.relu(h)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.output(h).squeeze(-1)

    def forward(self, bags: torch.Tensor) -> torch.Tensor:
        return self.head(self.input(bags))


def linear_flops(in_features: int, out_features: int) -> int:
    """The report's count for one Linear layer on one example: 2mn multiply-adds plus n bias adds."""
    return 2 * in_features * out_features + out_features


def count_flops(model: nn.Module) -> int:
    """FLOPs per example as the report counts them: sum of 2mn + n over the Linear layers, ReLU ignored."""
    return sum(linear_flops(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
