"""`executorch`: the GatheredMLP (sst2mlp.impls.gathered) with the "bmm" input layer, exported with both axes
dynamic (rows up to the dev set's, words up to its longest row), lowered to ExecuTorch's XNNPACK backend (which takes
the batched MatMul and the layers; the gather runs in ExecuTorch's portable kernel) and run by its Python runtime;
each batch padded to its own longest row. By name only, `executorch-padded`: the "sum" input layer with the words
axis fixed at the dev set's longest row, every batch padded to it (the form before; slower at batch 1, 64 and the
dev set: docs/runtimes.md). Both ship as model.pte."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
from pathlib import Path

import torch
from torch import nn

from sst2mlp.reference.features import BagOfWords
from sst2mlp.reference.model import MLP

from .base import EXTRA_INSTALL, Impl, RuntimeSettings, quiet_export

PROGRAM_FILE = "model.pte"
PINNING = {"thread_setting": "XNNPACK threadpool reset to T",
           "denormal_setting": "none of its own: runs on the calling thread at T=1, which torch set"}


class ExecuTorchForward:
    """A loaded program's forward method; `words`, the longest row the program takes (the dev set's), and whether
    every batch is padded to it (a fixed words axis) or to its own longest row."""

    def __init__(self, program: bytes, settings: RuntimeSettings, words: int | None = None, fixed_words: bool = False):
        with quiet_export():  # importing executorch loads torchao, which logs warnings about kernels this CPU lacks
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime

        self.program, self.words, self.fixed_words = program, words, fixed_words
        portable_lib._unsafe_reset_threadpool(settings.threads)
        self.method = Runtime.get().load_program(program).load_method("forward")
        self._execute = self.method.execute

    def padded(self, bags: BagOfWords) -> tuple[torch.Tensor, torch.Tensor]:
        return padded_to(bags, self.words, self.fixed_words)

    def __call__(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self._execute((ids, weights))[0]


def padded_to(bags: BagOfWords, words: int | None, fixed: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, weights) padded to `words` per row (a fixed words axis) or to the batch's longest row; a row longer than
    `words`, which the program cannot take, refused (None: no bound known, as in a cold process)."""
    ids, weights = bags.padded()
    if words is not None and ids.shape[1] > words:
        raise ValueError(f"a row has {ids.shape[1]} words; the ExecuTorch program takes at most {words}")
    if not fixed or words is None:
        return ids, weights
    pad = (0, words - ids.shape[1])
    return nn.functional.pad(ids, pad), nn.functional.pad(weights, pad)


def build(input_layer: str, fixed_words: bool):
    def build(trained: MLP, example: BagOfWords, settings: RuntimeSettings) -> ExecuTorchForward:
        from .gathered import GatheredMLP

        words = max(2, int(example.nnz_per_row.max())) if len(example) else 2
        sample = padded_to(example.rows(0, min(3, len(example))), words, fixed=True)  # 3 rows, `words` wide
        program = lower(GatheredMLP(trained, input_layer).eval(), sample, max_rows=max(3, len(example)),
                        max_words=None if fixed_words else words)
        return ExecuTorchForward(program, settings, words, fixed_words)
    return build


def lower(module: nn.Module, example: tuple[torch.Tensor, torch.Tensor], max_rows: int, max_words: int | None = None) -> bytes:
    """The ExecuTorch program of `module`, lowered in a process of its own: torch.export and ExecuTorch's lowering
    keep about two copies of the weights for the life of the process that lowers (25 MB more after each lowering of
    a 3 M-parameter model, measured), which a run lowering every configuration of a grid cannot afford."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of the parent's torch state
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_lower_here, module, example, max_rows, max_words).result()


def _lower_here(module: nn.Module, example: tuple[torch.Tensor, torch.Tensor], max_rows: int, max_words: int | None) -> bytes:
    """ExecuTorch plans its memory for the largest batch: `max_rows` (the whole dev set) and `max_words` (its longest
    row; None: the words axis fixed at the example's), not an arbitrary bound."""
    axes = {0: torch.export.Dim("rows", max=max_rows)}
    if max_words is not None:
        axes[1] = torch.export.Dim("words", max=max_words)
    with quiet_export(), torch.inference_mode(False), torch.no_grad():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        exported = torch.export.export(module, example, dynamic_shapes=(axes, axes))
        return to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


class RowSums(nn.Module):
    """The empty model of the runtime's call floor: each row's weights summed, no model work."""

    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return weights.sum(1)


def empty_model(settings: RuntimeSettings) -> tuple[ExecuTorchForward, tuple]:
    words = 14  # a dev example has about 14 words
    example = (torch.zeros(3, words, dtype=torch.int64), torch.ones(3, words))
    program = lower(RowSums().eval(), example, max_rows=3, max_words=words)
    return ExecuTorchForward(program, settings, words), (example[0][:1], example[1][:1])


def held_bytes(forward: ExecuTorchForward) -> int:
    """The program buffer the runtime keeps: its weights are in it."""
    return len(forward.program)


def save(forward: ExecuTorchForward, folder: Path) -> None:
    (folder / PROGRAM_FILE).write_bytes(forward.program)


def load(folder: Path, _config: dict) -> bytes:
    return (folder / PROGRAM_FILE).read_bytes()


def prepare(program: bytes, settings: RuntimeSettings, _inputs: tuple) -> ExecuTorchForward:
    return ExecuTorchForward(program, settings)


def _executorch(name: str, rank: int, input_layer: str, fixed_words: bool, in_default_run: bool = True) -> Impl:
    return Impl(name, rank, input_form="padded", exact=True, skips_inactive_units=False,
                build=build(input_layer, fixed_words), held_bytes=held_bytes, files=(PROGRAM_FILE,), save=save, load=load,
                prepare=prepare, peer=True, runtime="executorch", pinning=PINNING,
                coldstart_imports=("executorch.runtime",), empty_model=empty_model, in_default_run=in_default_run,
                model_inputs=lambda forward, bags: forward.padded(bags), requires="executorch",
                install=EXTRA_INSTALL.format("executorch"))


IMPLS = (
    _executorch("executorch", 110, "bmm", fixed_words=False),
    _executorch("executorch-padded", 115, "sum", fixed_words=True, in_default_run=False),
)
