"""`torch-compile`: the sparse model through torch.compile (inductor, CPU, mode "default"). A compiled model is not
saved: its users ship the state_dict and compile at load, which the coldstart group times."""
from __future__ import annotations

import warnings

import torch

from sst2mlp.reference.features import BagOfWords
from sst2mlp.reference.model import MLP, convert

from .base import Impl, RuntimeSettings
from .cost import storage_bytes
from .eager import STATE_FILE, load_state_dict, save_state_dict

MODE = "default"
LIMITS = ("recompile_limit", "accumulated_recompile_limit", "fail_on_recompile_limit_hit")  # what the suite raises
_limits_before: dict | None = None  # dynamo's own values, while the suite's compiled models hold raised ones


def make_room_for_compiled_graphs(graphs: int) -> None:
    """Let dynamo keep `graphs` more compiled graphs, and fail rather than run eagerly when a call finds no room.

    Every compiled model adds its graphs to the one code object all the suite's models share (their forward), and
    dynamo's default limit (8 graphs per code object) is full after two models: it would then run every later model
    eagerly, with a warning, and its benchmarks would measure eager PyTorch. `forget_compiled_graphs` puts dynamo's
    values back once the models are gone."""
    global _limits_before
    config = torch._dynamo.config
    if _limits_before is None:
        _limits_before = {name: getattr(config, name) for name in LIMITS}
    config.recompile_limit += graphs
    config.accumulated_recompile_limit += graphs
    config.fail_on_recompile_limit_hit = True


def forget_compiled_graphs() -> None:
    """After a configuration's compiled models are dropped: dynamo's graphs and guards, which hold their weights,
    cleared, and its limits as they were before the suite raised them."""
    global _limits_before
    torch._dynamo.reset()
    if _limits_before is not None:
        for name, value in _limits_before.items():
            setattr(torch._dynamo.config, name, value)
        _limits_before = None


class CompiledForward:
    """Compiled at build time on a batch of one and a batch of several rows, under no_grad (inductor cannot compile
    under inference mode) and then under inference mode, the mode it is timed in, so that no compilation happens
    inside a timing."""

    def __init__(self, trained: MLP, example: BagOfWords):
        self.model = convert(trained, sparse=True).eval()
        self.compiled = torch.compile(self.model, mode=MODE)
        shapes = [example.rows(0, 1), example.rows(0, min(len(example), 64)), example.rows(1, min(len(example), 3))]
        make_room_for_compiled_graphs(2 * len(shapes))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for grad_mode in (torch.no_grad, torch.inference_mode):
                with torch.inference_mode(False), grad_mode():
                    for bags in shapes:
                        self.compiled(*self.model.inputs(bags))

    def __call__(self, indices: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self.compiled(indices, offsets, counts)


class RowCounts(torch.nn.Module):
    """The empty model of torch.compile's call floor: the sparse model's arguments, each row's first count back."""

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return counts[offsets[:-1]]


def empty_model(_settings: RuntimeSettings) -> tuple:
    words = 14
    inputs = (torch.arange(words), torch.tensor([0, words]), torch.ones(words))
    compiled = torch.compile(RowCounts(), mode=MODE)
    make_room_for_compiled_graphs(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for grad_mode in (torch.no_grad, torch.inference_mode):
            with torch.inference_mode(False), grad_mode():
                compiled(*inputs)  # compiled here, not in the timed calls
    return compiled, inputs


def build(trained: MLP, example: BagOfWords, _settings: RuntimeSettings) -> CompiledForward:
    return CompiledForward(trained, example)  # torch's own threads, pinned by the suite


def held_bytes(forward: CompiledForward) -> int:
    return storage_bytes([*forward.model.parameters(), *forward.model.buffers()])


def save(forward: CompiledForward, folder) -> None:
    save_state_dict(forward.model, folder)


def prepare(model: MLP, _settings: RuntimeSettings, inputs: tuple):
    """Compiles on the first inputs (the cold process runs under no_grad, as a deployed model does)."""
    compiled = torch.compile(model, mode=MODE)
    compiled(*inputs)
    return compiled


IMPLS = (Impl("torch-compile", 100, input_form="bags", exact=True, skips_inactive_units=False, build=build, held_bytes=held_bytes,
              files=(STATE_FILE,), save=save, load=load_state_dict(sparse=True), prepare=prepare, peer=True,
              empty_model=empty_model,
              forget=forget_compiled_graphs),)
