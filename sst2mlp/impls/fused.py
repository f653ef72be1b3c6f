"""`fused` and `fused-int8`: the sparse model's whole forward pass as one C++ call (sst2mlp.kernel), skipping the
hidden units the ReLU zeroed; `fused-int8` keeps its input table in int8 with a float scale per row (an on-device
embedding layout). They ship as the kernel's tensors; a cold process loads the library built earlier."""
from __future__ import annotations

from pathlib import Path

import torch

from .. import kernel
from .base import Impl, RuntimeSettings

KERNEL_FILE = "fused.pt"


def build(int8_table: bool):
    return lambda trained, _example, _settings: kernel.fused_mlp(trained, int8_table=int8_table)  # copies the weights


def held_bytes(fused) -> int:
    return fused.nbytes  # its tensors and its float output bias, counted by the kernel


def save(fused, folder: Path) -> None:
    """Its tensors in the kernel's order, the output bias and the layer count: what kernel.fused_from_saved reads."""
    torch.save({"state": list(fused.state()), "output_bias": fused.output_bias, "num_layers": fused.num_layers},
               folder / KERNEL_FILE)


def load(folder: Path, _config: dict) -> dict:
    kernel.load_extension()  # the library built earlier, from torch's extension cache
    return torch.load(folder / KERNEL_FILE)


def prepare(saved: dict, _settings: RuntimeSettings, _inputs: tuple):
    return kernel.fused_from_saved(saved)


def _fused(name: str, summary: str, rank: int, int8_table: bool) -> Impl:
    return Impl(name, summary, rank, input_form="bags", exact=not int8_table, skips_inactive_units=True,
                build=build(int8_table), held_bytes=held_bytes, files=(KERNEL_FILE,), save=save, load=load,
                prepare=prepare, compiles_kernel=True, scales_input_rows=int8_table, table_weight_bytes=1 if int8_table else 4)


IMPLS = (
    _fused("fused", "the sparse model's whole forward pass as one C++ call (kernel.py)", 40, int8_table=False),
    _fused("fused-int8", "fused, its input table in int8 with a float scale per row (on-device embedding layout)", 60,
           int8_table=True),
)
