"""The model the deployment runtimes run (ONNX Runtime, ExecuTorch): `GatheredMLP`, whose input layer is a gather of
the table rows of the words present, weighted by their counts and summed (`BagOfWords.padded`), in ops each of them
has; and its ONNX export. Exported with a dense count vector instead, the same runtimes were 4-7x slower at batch 1
(docs/runtimes.md). The weighted sum is either a multiply and a sum over the words (`"sum"`) or a batched matrix
product of each row's weights with its gathered rows (`"bmm"`), which ONNX Runtime and XNNPACK run as one MatMul
without the (rows, words, width) product in between: faster at every batch size (docs/runtimes.md)."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import torch
from torch import nn

from sst2mlp.reference.model import MLP, convert

from .base import quiet_export

ONNX_INPUTS = ("ids", "weights")
ONNX_OUTPUT = "logits"
ONNX_FILE = "model.onnx"
INPUT_LAYERS = ("sum", "bmm")


class GatheredMLP(nn.Module):
    """The trained MLP's function on (ids, weights) of shape (rows, words): rows of the input table gathered, scaled
    by the counts and summed, then the hidden and output layers as in MLP. A pad (id 0, weight 0) adds zero."""

    def __init__(self, trained: MLP, input_layer: str = "sum"):
        super().__init__()
        if input_layer not in INPUT_LAYERS:
            raise ValueError(f"input_layer {input_layer!r}: expected one of {INPUT_LAYERS}")
        self.input_layer = input_layer
        source = convert(trained, sparse=True)
        self.table = nn.Parameter(source.input.bag.weight.detach().clone())  # (vocab, hidden)
        self.bias = nn.Parameter(source.input.bias.detach().clone())
        self.hidden, self.output = source.hidden, source.output

    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # F.embedding exports as ONNX Gather, which onnxruntime's int8 quantization covers (an indexing GatherND not)
        rows = nn.functional.embedding(ids, self.table)  # (rows, words, width)
        if self.input_layer == "bmm":
            summed = torch.bmm(weights.unsqueeze(1), rows).squeeze(1)
        else:
            summed = (rows * weights.unsqueeze(-1)).sum(1)
        h = torch.relu(summed + self.bias)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.output(h).flatten()  # flatten, not squeeze: XNNPACK reshapes only one dynamic dimension


def export_onnx(trained: MLP, input_layer: str = "sum") -> bytes:
    """The GatheredMLP of `trained` as an ONNX model: torch.onnx's export of its shape, with its weights put in."""
    config = trained.config
    exported = _exported_shape(config.num_layers, config.hidden_size, config.vocab_size, input_layer)
    return with_weights(exported, GatheredMLP(trained, input_layer))


@functools.lru_cache(maxsize=4)
def _exported_shape(num_layers: int, hidden_size: int, vocab_size: int, input_layer: str) -> bytes:
    """torch.onnx's (torch.export-based) export of a GatheredMLP of this shape, rows and words dynamic. It takes a few
    seconds where putting other weights in takes milliseconds, so every seed's model of a configuration (the int8
    runtime is made from each) shares one export."""
    module = GatheredMLP(MLP(num_layers, hidden_size, vocab_size).eval(), input_layer).eval()
    example = (torch.zeros(3, 4, dtype=torch.int64), torch.ones(3, 4))  # sizes above 1: export keeps them dynamic
    rows, words = torch.export.Dim("rows"), torch.export.Dim("words")
    with quiet_export(), torch.inference_mode(False), torch.no_grad(), tempfile.TemporaryDirectory() as folder:
        program = torch.onnx.export(module, example, input_names=list(ONNX_INPUTS), output_names=[ONNX_OUTPUT],
                                    dynamic_shapes=({0: rows, 1: words}, {0: rows, 1: words}), dynamo=True, verbose=False)
        path = Path(folder) / ONNX_FILE
        program.save(str(path))
        return path.read_bytes()


def with_weights(exported: bytes, module: GatheredMLP) -> bytes:
    """The exported model with `module`'s parameters as its initializers: each found by its parameter's name, the
    input table (which the exporter folds into a constant of its own name) by its shape."""
    import onnx

    proto = onnx.load_from_string(exported)
    parameters = {name: value.detach().numpy() for name, value in module.state_dict().items()}
    table = parameters.pop("table")
    by_shape = [init for init in proto.graph.initializer if init.name not in parameters and tuple(init.dims) == table.shape]
    if len(by_shape) != 1 or any(name not in {i.name for i in proto.graph.initializer} for name in parameters):
        raise RuntimeError("the ONNX export's initializers do not match the model's parameters: unknown exporter layout")
    for init in proto.graph.initializer:
        value = table if init is by_shape[0] else parameters.get(init.name)
        if value is not None:
            init.CopyFrom(onnx.numpy_helper.from_array(value, init.name))
    return proto.SerializeToString()


def quantize_onnx(model: bytes) -> bytes:
    """onnxruntime's dynamic int8 quantization: int8 weights (the gathered table included) with float scales."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_export(), tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "float.onnx", Path(folder) / ONNX_FILE
        source.write_bytes(model)
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        return target.read_bytes()


class BaggedMLP(GatheredMLP):
    """The trained MLP's function on (indices, starts): each row the sum of the table rows of its words, a word
    present k times listed k times, rows starting at `starts` (no padding). F.embedding_bag in "sum" mode, which
    OpenVINO's PyTorch frontend turns into its EmbeddingBagOffsets op. No per-sample weights: OpenVINO 2026.4's CPU
    plugin refuses that op with weights on dynamic shapes ("to_shape was called on a dynamic shape"), and a count is
    a small integer, so repeating the word is the same sum. The table has one more row, of zeros, at id `vocab_size`:
    a batch whose rows hold no word at all is given that one id (OpenVINO returns garbage for no indices at all)."""

    def __init__(self, trained: MLP):
        super().__init__(trained)
        self.table = nn.Parameter(torch.cat([self.table.detach(), self.table.new_zeros(1, self.table.shape[1])]))

    def forward(self, indices: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        h = torch.relu(nn.functional.embedding_bag(indices, self.table, starts, mode="sum") + self.bias)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.output(h).flatten()
