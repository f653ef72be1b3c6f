"""Implementations of one trained MLP: what each executes and how fast, at identical (or int8) weights.

- dense: the report's model, nn.Linear on dense count vectors.
- sparse: the same function, the input layer an EmbeddingBag over the words present.
- torchscript: the sparse model traced, frozen and optimized for inference (exact).
- fused: the sparse model's whole forward pass as one compiled C++ call (exact; see kernel.py).
- int8: dynamic int8 quantization of the dense model's Linear layers (approximate).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .features import BagOfWords
from .kernel import fused_mlp
from .model import MLP, convert, linear_flops

IMPLS = ("dense", "sparse", "torchscript", "fused", "int8")
SPARSE_INPUT = {"dense": False, "sparse": True, "torchscript": True, "fused": True, "int8": False}
TRAINABLE = ("dense", "sparse")  # the others are made from a trained model


def check_impls(names, allowed=IMPLS) -> tuple[str, ...]:
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(f"unknown impl {', '.join(map(repr, unknown))}; expected some of {', '.join(allowed)}")
    return tuple(names)


@dataclass
class Variant:
    """A callable model plus how it reads bag-of-words rows; `module` is what latency benchmarks time."""

    impl: str
    module: Callable[..., torch.Tensor]

    def inputs(self, bags: BagOfWords) -> tuple[torch.Tensor, ...]:
        return (bags.indices, bags.offsets, bags.counts) if SPARSE_INPUT[self.impl] else (bags.dense(),)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module(*inputs)


def make_variant(impl: str, trained: MLP, example: BagOfWords) -> Variant:
    """The `impl` form of a trained model; `example` rows serve as tracing inputs for torchscript."""
    if impl == "fused":
        return Variant(impl, fused_mlp(trained))  # copies the parameters into its own layout
    model = convert(trained, sparse=SPARSE_INPUT[impl]).eval()
    if impl == "torchscript":
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but still the fastest exact path here
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # a shape check traced as constant: holds for every input
            traced = torch.jit.trace(model, model.inputs(example.rows(0, min(2, len(example)))))
            return Variant(impl, torch.jit.optimize_for_inference(torch.jit.freeze(traced)))
    if impl == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
            return Variant(impl, torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8))
    return Variant(impl, model)


def effective_flops(impl: str, model: MLP, bags: BagOfWords) -> float:
    """FLOPs per example the impl executes, averaged over `bags`.

    A sparse input layer does 2*nnz*H + H; fused's hidden layers also skip the units
    the ReLU zeroed, 2*active*H + H. Everything else is the report's 2mn + n.
    """
    config = model.config
    hidden = config.hidden_size
    if SPARSE_INPUT[impl]:
        input_flops = 2 * bags.nnz_per_row.double().mean().item() * hidden + hidden
    else:
        input_flops = linear_flops(config.vocab_size, hidden)
    if impl == "fused":
        hidden_flops = sum(2 * active * hidden + hidden for active in mean_active_inputs(model, bags))
    else:
        hidden_flops = config.num_layers * linear_flops(hidden, hidden)
    return float(input_flops + hidden_flops + linear_flops(hidden, 1))


def mean_active_inputs(model: MLP, bags: BagOfWords) -> list[float]:
    """For each hidden layer, how many of its inputs are non-zero after the ReLU, averaged over `bags`."""
    active = []
    with torch.no_grad():
        h = torch.relu(model.input(*model.inputs(bags)))
        for layer in model.hidden:
            active.append((h > 0).sum(1).double().mean().item())
            h = torch.relu(layer(h))
    return active
