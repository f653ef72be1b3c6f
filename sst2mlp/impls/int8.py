"""`int8`: PyTorch's dynamic int8 quantization of the dense model's Linear layers (approximate); ships as the
quantized model's state_dict."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from sst2mlp.reference.features import BagOfWords
from sst2mlp.reference.model import MLP, convert

from .base import Impl, RuntimeSettings, as_is
from .cost import storage_bytes
from .eager import STATE_FILE, save_state_dict


def quantized(model: MLP) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        return torch.ao.quantization.quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8)


def build(trained: MLP, _example: BagOfWords, _settings: RuntimeSettings) -> nn.Module:
    return quantized(convert(trained, sparse=False))


def held_bytes(model: nn.Module) -> int:
    """A dynamic int8 Linear keeps its int8 weight with its scale and a float bias in packed params."""
    tensors = []
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            weight, bias = packed._weight_bias()
            tensors += [weight] + ([bias] if bias is not None else [])
        tensors += [*module.parameters(recurse=False), *module.buffers(recurse=False)]
    return storage_bytes(tensors)


def load(folder: Path, config: dict) -> nn.Module:
    """A dense model of the configuration quantized (its layers' int8 form), then the shipped values put in."""
    model = quantized(MLP(config["num_layers"], config["hidden_size"], config["vocab_size"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.load of packed int8 params goes through TypedStorage
        model.load_state_dict(torch.load(folder / STATE_FILE))
    return model


IMPLS = (Impl("int8", 50, input_form="dense",
              exact=False, skips_inactive_units=False, build=build, held_bytes=held_bytes, files=(STATE_FILE,),
              save=save_state_dict, load=load, prepare=as_is, int8_products=True),)
