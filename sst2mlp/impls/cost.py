"""What an impl costs, from the facts its record states (input form, skipping of inactive units, bytes per table
weight): effective FLOPs, the least bytes a call must read, and the bytes of the tensors a built impl keeps (measured
from the objects, never computed from the parameter count)."""
from __future__ import annotations

import numpy as np
import torch

from sst2mlp.reference.features import BagOfWords
from sst2mlp.reference.model import MLP, linear_flops

from .base import Impl


def effective_flops(impl: Impl, model: MLP, bags: BagOfWords) -> float:
    """FLOPs per example the impl executes, averaged over `bags`.

    A sparse input layer does 2*nnz*H + H (+ nnz scale multiplies for an int8 table); an impl that skips inactive units does
    2*active*H + H per hidden layer. Everything else is the report's 2mn + n.
    """
    config = model.config
    hidden = config.hidden_size
    if impl.sparse_input:
        nnz = bags.nnz_per_row.double().mean().item()
        input_flops = 2 * nnz * hidden + hidden + (nnz if impl.scales_input_rows else 0)
    else:
        input_flops = linear_flops(config.vocab_size, hidden)
    if impl.skips_inactive_units:
        hidden_flops = sum(2 * active * hidden + hidden for active in mean_active_inputs(model, bags))
    else:
        hidden_flops = config.num_layers * linear_flops(hidden, hidden)
    return float(input_flops + hidden_flops + linear_flops(hidden, 1))


def bytes_read(impl: Impl, model: MLP, model_bytes: int, batches: list[BagOfWords]) -> float:
    """The least bytes one call must read, averaged over `batches`. A dense input layer reads every weight the impl
    holds and the dense count rows. With the words present: the table rows of the batch's distinct words, the inputs
    (an int64 id and a float count per word), and the rest of the weights; an impl that skips inactive units reads
    only the rows of the hidden weights that some row of the batch has active. `model_bytes` is what the impl holds:
    of an impl that holds a copy of the weights per form, a call reads one."""
    model_bytes = model_bytes / impl.weight_copies
    config = model.config
    hidden, vocab = config.hidden_size, config.vocab_size
    table = vocab * hidden * impl.table_weight_bytes
    per_batch = []
    for bags in batches:
        if not impl.sparse_input:
            per_batch.append(model_bytes + 4 * len(bags) * vocab)
            continue
        rows = len(torch.unique(bags.indices)) if len(bags.indices) else 0
        others = model_bytes - table
        if impl.skips_inactive_units and config.num_layers:
            hidden_bytes = config.num_layers * hidden * hidden * 4
            active = sum(active_union(model, bags))  # rows of the hidden weights read, over all layers
            others -= hidden_bytes - active * hidden * 4
        per_batch.append(others + rows * hidden * impl.table_weight_bytes + 12 * len(bags.indices))
    return float(np.mean(per_batch))


def _hidden_inputs(model: MLP, bags: BagOfWords):
    """Each hidden layer's input after the ReLU, for every row of `bags`."""
    with torch.no_grad():
        h = torch.relu(model.input(*model.inputs(bags)))
        for layer in model.hidden:
            yield h
            h = torch.relu(layer(h))


def active_union(model: MLP, bags: BagOfWords) -> list[int]:
    """For each hidden layer, how many of its inputs are active (after the ReLU) in at least one row of `bags`."""
    return [int((h > 0).any(0).sum()) for h in _hidden_inputs(model, bags)]


def mean_active_inputs(model: MLP, bags: BagOfWords) -> list[float]:
    """For each hidden layer, how many of its inputs are non-zero after the ReLU, averaged over `bags`."""
    return [(h > 0).sum(1).double().mean().item() for h in _hidden_inputs(model, bags)]


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors` (a tensor and its views count once); a quantized tensor counts
    its int8 values and its scales and zero points."""
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
        return storage_bytes([tensor.q_per_channel_scales(), tensor.q_per_channel_zero_points()])
    return 16  # one float64 scale and one int64 zero point
