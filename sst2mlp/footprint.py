"""What a model costs in memory: the bytes its weights take once loaded, the bytes of the file a user would ship,
and the resident memory a piece of work adds at its peak (Linux: the kernel's high-water mark, reset first).

Bytes are measured from the objects an implementation keeps (tensor storages, int8 packed weights and
their scales, the fused kernel's own copies), never computed from the parameter count.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import io
import warnings
from pathlib import Path

import torch
from torch import nn

PROC_STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors` (a tensor and its views count once)."""
    seen, total = set(), 0
    for tensor in tensors:
        if tensor.is_quantized:
            total += tensor.numel() * tensor.element_size() + _quantization_bytes(tensor)
            continue
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total


def _quantization_bytes(tensor: torch.Tensor) -> int:
    if tensor.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        return _storage_bytes([tensor.q_per_channel_scales(), tensor.q_per_channel_zero_points()])
    return 16  # one float64 scale and one int64 zero point


def held_tensors(forward) -> list[torch.Tensor]:
    """The tensors an implementation keeps for its weights."""
    if hasattr(forward, "state") and not isinstance(forward, nn.Module):  # the fused kernel
        return list(forward.state())
    if isinstance(forward, torch.jit.ScriptModule):  # frozen: the weights became graph constants
        constants = [t for t in forward.code_with_constants[1].const_mapping.values() if isinstance(t, torch.Tensor)]
        return constants + list(forward.parameters()) + list(forward.buffers())
    tensors = []
    for module in forward.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):  # dynamic int8 Linear: int8 weight, its scale, float bias
            weight, bias = packed._weight_bias()
            tensors += [weight] + ([bias] if bias is not None else [])
        tensors += list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
    return tensors


def model_bytes(forward) -> int:
    extra = 4 if hasattr(forward, "nbytes") and not isinstance(forward, nn.Module) else 0  # the kernel's float output bias
    return _storage_bytes(held_tensors(forward)) + extra


def file_bytes(forward) -> int:
    """Size of the implementation saved as its users would ship it: torch.jit.save for TorchScript, a state_dict via
    torch.save for eager modules (int8 ones included), the fused kernel's tensors via torch.save."""
    buffer = io.BytesIO()
    if isinstance(forward, torch.jit.ScriptModule):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still how TorchScript ships
            torch.jit.save(forward, buffer)
    elif isinstance(forward, nn.Module):
        torch.save(forward.state_dict(), buffer)
    else:
        torch.save(list(forward.state()), buffer)
    return buffer.getbuffer().nbytes


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (what can be allocated without swapping), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def training_bytes_estimate(num_layers: int, hidden: int, vocab: int, dev_examples: int, batch: int = 64) -> int:
    """What training one configuration holds at once, in float32: weights, gradients and Adam's two moments
    (4 copies of the parameters), a dense batch, and the dense dev set the dense impl is timed on."""
    parameters = (vocab + 1) * hidden + num_layers * (hidden + 1) * hidden + hidden + 1
    return 4 * (4 * parameters + batch * vocab + dev_examples * (vocab + hidden))


def _status_kib(field: str) -> int:
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{PROC_STATUS} has no {field} line")


def _malloc_trim():
    """glibc's malloc_trim, or None on a C library without it."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class PeakMemory:
    """Resident memory added at the peak of a region: hand freed heap memory back to the kernel (malloc_trim), reset
    the high-water mark (clear_refs 5), then VmHWM - VmRSS before.

    Without the trim a long session under-reports: memory freed by earlier work stays resident in malloc's free
    lists, and a new region reuses it without raising the resident size (a training read 0 bytes that way).
    `unavailable` says why the method cannot be used (not Linux, no permission, no malloc_trim); then
    `added_since` gives None, never a made-up number.
    """

    def __init__(self):
        self.trim = _malloc_trim()
        self.unavailable = self._check()

    def _check(self) -> str | None:
        try:
            _status_kib("VmHWM")
            CLEAR_REFS.write_text("5")
        except OSError as error:
            return f"peak memory needs Linux's {CLEAR_REFS} and VmHWM in {PROC_STATUS} ({error})"
        if self.trim is None:
            return "peak memory needs glibc's malloc_trim to return freed memory before each reading"
        return None

    def start(self) -> int | None:
        if self.unavailable:
            return None
        gc.collect(0)  # the youngest objects only: a full collection takes 0.1 s with the data loaded
        self.trim(0)
        CLEAR_REFS.write_text("5")  # the high-water mark restarts from the current resident size
        return _status_kib("VmRSS") * 1024

    def added_since(self, start: int | None) -> int | None:
        if self.unavailable or start is None:
            return None
        return max(0, _status_kib("VmHWM") * 1024 - start)
