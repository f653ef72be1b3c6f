"""`torchscript`: the sparse model traced, frozen and optimized for inference; ships as a TorchScript file."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from sst2mlp.reference.features import BagOfWords
from sst2mlp.reference.model import MLP, convert

from .base import Impl, RuntimeSettings, as_is
from .cost import storage_bytes

SCRIPT_FILE = "model.ts"


def build(trained: MLP, example: BagOfWords, _settings: RuntimeSettings) -> torch.jit.ScriptModule:
    model = convert(trained, sparse=True).eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but still the fastest exact path here
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # a shape check traced as constant: holds for every input
        traced = torch.jit.trace(model, model.inputs(example.rows(0, min(2, len(example)))))
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced))


def held_bytes(module: torch.jit.ScriptModule) -> int:
    """Frozen: the weights became graph constants."""
    constants = [t for t in module.code_with_constants[1].const_mapping.values() if isinstance(t, torch.Tensor)]
    return storage_bytes([*constants, *module.parameters(), *module.buffers()])


def save(module: torch.jit.ScriptModule, folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still how TorchScript ships
        torch.jit.save(module, str(folder / SCRIPT_FILE))


def load(folder: Path, _config: dict) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # as in save
        return torch.jit.load(str(folder / SCRIPT_FILE))


def forget_types() -> None:
    """Drop the types TorchScript registered for traced modules. Every trace adds a type to TorchScript's global
    compilation unit, and a frozen module's weights are constants of that type's graph: without this a run kept two
    copies of each configuration's weights to its end (27 MB a configuration at 3 M parameters, measured). What
    PyTorch's own test suite calls between tests (torch.testing._internal.jit_utils.clear_class_registry)."""
    torch._C._jit_clear_class_registry()
    torch.jit._recursive.concrete_type_store = torch.jit._recursive.ConcreteTypeStore()
    torch.jit._state._clear_class_state()


IMPLS = (Impl("torchscript", 30, input_form="bags",
              exact=True, skips_inactive_units=False, build=build, held_bytes=held_bytes, files=(SCRIPT_FILE,),
              save=save, load=load, prepare=as_is, forget=forget_types),)
