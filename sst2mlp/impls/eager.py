"""The report's model in eager PyTorch: `dense` (nn.Linear on count vectors, as the report trains it) and `sparse`
(its input layer an EmbeddingBag over the words present). Both are trainable; they ship as a state_dict."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from sst2mlp.reference.model import MLP, convert

from .base import Impl, as_is
from .cost import storage_bytes

STATE_FILE = "model.pt"


def build(sparse: bool) -> Callable:
    return lambda trained, _example, _settings: convert(trained, sparse=sparse).eval()


def module_bytes(module: nn.Module) -> int:
    return storage_bytes([*module.parameters(), *module.buffers()])


def save_state_dict(module: nn.Module, folder: Path) -> None:
    torch.save(module.state_dict(), folder / STATE_FILE)


def load_state_dict(sparse: bool) -> Callable[[Path, dict], MLP]:
    def load(folder: Path, config: dict) -> MLP:
        model = MLP(config["num_layers"], config["hidden_size"], config["vocab_size"], sparse=sparse)
        model.load_state_dict(torch.load(folder / STATE_FILE))
        return model.eval()
    return load


def _eager(name: str, rank: int, sparse: bool) -> Impl:
    return Impl(name, rank, input_form="bags" if sparse else "dense", trainable=True, exact=True,
                skips_inactive_units=False, build=build(sparse), held_bytes=module_bytes, files=(STATE_FILE,),
                save=save_state_dict, load=load_state_dict(sparse), prepare=as_is)


IMPLS = (
    _eager("dense", 10, sparse=False),  # the report's model: nn.Linear on dense count vectors
    _eager("sparse", 20, sparse=True),  # the input layer an EmbeddingBag over the words present
)
