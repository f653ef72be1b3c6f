"""Implementations of one trained MLP: what each executes and how fast, at identical (or int8) weights.

- dense: the report's model, nn.Linear on dense count vectors.
- sparse: the same function, the input layer an EmbeddingBag over the words present.
- torchscript: the sparse model traced, frozen and optimized for inference (exact).
- int8: dynamic int8 quantization of the dense model's Linear layers (approximate).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .features import BagOfWords
from .model import MLP, ModelConfig, convert, linear_flops

IMPLS = ("dense", "sparse", "torchscript", "int8")
SPARSE_INPUT = {"dense": False, "sparse": True, "torchscript": True, "int8": False}
TRAINABLE = ("dense", "sparse")  # torchscript and int8 are made from a trained model


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


def effective_flops(impl: str, config: ModelConfig, bags: BagOfWords) -> float:
    """FLOPs per example the impl executes, averaged over `bags`: a sparse input layer does 2*nnz*H + H."""
    hidden, rest = config.hidden_size, config.num_layers * linear_flops(config.hidden_size, config.hidden_size)
    rest += linear_flops(hidden, 1)
    if not SPARSE_INPUT[impl]:
        return float(linear_flops(config.vocab_size, hidden) + rest)
    mean_nnz = bags.nnz_per_row.double().mean().item()
    return 2 * mean_nnz * hidden + hidden + rest
