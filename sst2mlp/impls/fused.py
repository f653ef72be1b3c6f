"""`fused`, `fused-noskip` and `fused-int8`: the sparse model's whole forward pass as one C++ call
(sst2mlp.native.kernel). `fused` skips the hidden units the ReLU zeroed, which no runtime can do; `fused-noskip` reads
every unit, at the dense model's FLOPs, so that fused's lead over a runtime splits into what the skipping gives
(fused-noskip / fused) and the rest (the runtime / fused-noskip); `fused-int8` keeps its input table in int8 with a
float scale per row (an on-device embedding layout). They ship as the kernel's tensors; a cold process loads the
library built earlier."""
from __future__ import annotations

from pathlib import Path

import torch

from sst2mlp.native import kernel
from sst2mlp.reference.model import MLP

from .base import Impl, RuntimeSettings

KERNEL_FILE = "fused.pt"


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: weight[j] ~= scales[j] * q[j], q in [-127, 127], scales = max|weight[j]| / 127."""
    scales = weight.abs().amax(dim=1) / 127
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))  # an all-zero row stays zero with any scale
    q = torch.round(weight / scales[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scales.to(torch.float32).contiguous()


def fused_mlp(model: MLP, int8_table: bool = False, skip_inactive: bool = True):
    """A callable (indices, offsets, counts) -> logits computing `model`'s function in one C++ call.

    It holds copies of the parameters, laid out for the kernel: later changes to `model` do not reach it.
    `int8_table=True` stores the input table as int8 with a float scale per row (approximate); `skip_inactive=False`
    reads every hidden unit (the same logits, at the dense model's FLOPs).
    """
    extension = kernel.load_extension()
    with torch.no_grad():
        input_weight = model.input.bag.weight if model.sparse else model.input.weight.T  # (vocab, hidden)
        table, scales = quantize_rows(input_weight.detach()) if int8_table else (_copy(input_weight), None)
        return extension.FusedMLP(
            input_weight=table,
            input_bias=_copy(model.input.bias),
            hidden_weights_t=[_copy(layer.weight.T) for layer in model.hidden],
            hidden_biases=[_copy(layer.bias) for layer in model.hidden],
            output_weight=_copy(model.output.weight[0]),
            output_bias=float(model.output.bias.item()),
            input_scales=scales,
            skip_inactive=skip_inactive,
        )


def fused_from_saved(saved: dict):
    """The kernel again from what the fused impls save: its state() (input weight, input bias, output weight, the
    input scales of an int8 table, then the hidden weights, flat in the kernel's panels, and the hidden biases),
    output bias, layer count and whether it skips inactive units."""
    state, layers = list(saved["state"]), saved["num_layers"]
    input_weight, input_bias, output_weight = state[:3]
    scales = state[3] if len(state) == 3 + 2 * layers + 1 else None
    hidden = state[len(state) - 2 * layers:]
    return kernel.load_extension().FusedMLP(input_weight=input_weight, input_bias=input_bias, hidden_weights_t=hidden[:layers],
                                     hidden_biases=hidden[layers:], output_weight=output_weight,
                                     output_bias=saved["output_bias"], input_scales=scales,
                                     skip_inactive=saved["skip_inactive"])


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().clone(memory_format=torch.contiguous_format)


def build(int8_table: bool, skip_inactive: bool):
    return lambda trained, _example, _settings: fused_mlp(trained, int8_table, skip_inactive)  # copies the weights


def held_bytes(fused) -> int:
    return fused.nbytes  # its tensors and its float output bias, counted by the kernel


def save(fused, folder: Path) -> None:
    """Its tensors in the kernel's order, the output bias and the layer count: what fused_from_saved reads."""
    torch.save({"state": list(fused.state()), "output_bias": fused.output_bias, "num_layers": fused.num_layers,
                "skip_inactive": fused.skip_inactive}, folder / KERNEL_FILE)


def load(folder: Path, _config: dict) -> dict:
    kernel.load_extension()  # the library built earlier, from torch's extension cache
    return torch.load(folder / KERNEL_FILE)


def prepare(saved: dict, _settings: RuntimeSettings, _inputs: tuple):
    return fused_from_saved(saved)


def _fused(name: str, rank: int, int8_table: bool = False, skip_inactive: bool = True) -> Impl:
    # fused-noskip is run by name (--sst2-impls) until the shipped noise profile, which the regression gate judges
    # every default benchmark by, has A/A runs of it
    return Impl(name, rank, input_form="bags", exact=not int8_table, skips_inactive_units=skip_inactive,
                in_default_run=skip_inactive,
                build=build(int8_table, skip_inactive), held_bytes=held_bytes, files=(KERNEL_FILE,), save=save, load=load,
                prepare=prepare, compiles_kernel=True, scales_input_rows=int8_table, table_weight_bytes=1 if int8_table else 4)


IMPLS = (
    _fused("fused", 40),
    _fused("fused-noskip", 45, skip_inactive=False),
    _fused("fused-int8", 60, int8_table=True),
)
