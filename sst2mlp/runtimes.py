"""Deployment runtimes as impls: the trained model exported once and run by ONNX Runtime (float and dynamic int8),
OpenVINO and ExecuTorch (XNNPACK), or compiled by torch.compile. Each is built from the same trained weights as the
suite's own impls, with the suite's thread count and denormal mode, and keeps what its users would ship.

The runtimes other than torch.compile run `GatheredMLP`: its input layer is a gather of the table rows of the words
present, weighted by their counts and summed (`BagOfWords.padded`), in ops each of them has. Exported with a dense
count vector instead, the same runtimes were 4-7x slower at batch 1 (docs/runtimes.md).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import importlib.util
import io
import logging
import multiprocessing
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .features import BagOfWords
from .model import MLP, convert
from .sessions import ONNX_INPUTS, ONNX_OUTPUT, RuntimeSettings, openvino_config, session_options

MODEL_FILE = "model.onnx"


class GatheredMLP(nn.Module):
    """The trained MLP's function on (ids, weights) of shape (rows, words): rows of the input table gathered, scaled
    by the counts and summed, then the hidden and output layers as in MLP. A pad (id 0, weight 0) adds zero."""

    def __init__(self, trained: MLP):
        super().__init__()
        source = convert(trained, sparse=True)
        self.table = nn.Parameter(source.input.bag.weight.detach().clone())  # (vocab, hidden)
        self.bias = nn.Parameter(source.input.bias.detach().clone())
        self.hidden, self.output = source.hidden, source.output

    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # F.embedding exports as ONNX Gather, which onnxruntime's int8 quantization covers (an indexing GatherND not)
        h = torch.relu((nn.functional.embedding(ids, self.table) * weights.unsqueeze(-1)).sum(1) + self.bias)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.output(h).flatten()  # flatten, not squeeze: XNNPACK reshapes only one dynamic dimension


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@contextlib.contextmanager
def _quiet_export():
    """torch.onnx and onnxruntime.quantization print progress and advice on stdout and the root logger."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def export_onnx(trained: MLP) -> bytes:
    """The GatheredMLP of `trained` as an ONNX model: torch.onnx's export of its shape, with its weights put in."""
    config = trained.config
    return with_weights(_exported_shape(config.num_layers, config.hidden_size, config.vocab_size), GatheredMLP(trained))


@functools.lru_cache(maxsize=2)
def _exported_shape(num_layers: int, hidden_size: int, vocab_size: int) -> bytes:
    """torch.onnx's (torch.export-based) export of a GatheredMLP of this shape, rows and words dynamic. It takes a few
    seconds where putting other weights in takes milliseconds, so every seed's model of a configuration (the int8
    runtime is made from each) shares one export."""
    module = GatheredMLP(MLP(num_layers, hidden_size, vocab_size).eval()).eval()
    example = (torch.zeros(3, 4, dtype=torch.int64), torch.ones(3, 4))  # sizes above 1: export keeps them dynamic
    rows, words = torch.export.Dim("rows"), torch.export.Dim("words")
    with _quiet_export(), torch.inference_mode(False), torch.no_grad(), tempfile.TemporaryDirectory() as folder:
        program = torch.onnx.export(module, example, input_names=list(ONNX_INPUTS), output_names=[ONNX_OUTPUT],
                                    dynamic_shapes=({0: rows, 1: words}, {0: rows, 1: words}), dynamo=True, verbose=False)
        path = Path(folder) / MODEL_FILE
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

    with _quiet_export(), tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "float.onnx", Path(folder) / MODEL_FILE
        source.write_bytes(model)
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        return target.read_bytes()


def initializer_bytes(model: bytes) -> int:
    """Bytes of the ONNX model's initializers: the weights a session keeps (it may add repacked copies of its own)."""
    import onnx

    proto = onnx.load_from_string(model)
    return sum(onnx.numpy_helper.to_array(tensor).nbytes for tensor in proto.graph.initializer)


class OnnxRuntimeForward:
    """An onnxruntime InferenceSession (CPU provider, all graph optimizations) on the exported model: (ids, weights)
    as numpy arrays -> logits."""

    def __init__(self, model: bytes, settings: RuntimeSettings):
        import onnxruntime

        self.model = model
        self.session = onnxruntime.InferenceSession(model, session_options(settings), providers=["CPUExecutionProvider"])
        self._run, self._outputs = self.session.run, [ONNX_OUTPUT]

    def __call__(self, ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return self._run(self._outputs, {"ids": ids, "weights": weights})[0]

    def held_bytes(self) -> int:
        return initializer_bytes(self.model)

    def save(self, folder: Path) -> None:
        (folder / MODEL_FILE).write_bytes(self.model)


class OpenVinoForward:
    """The exported model read by OpenVINO and compiled for its CPU device; one infer request, inputs shared (no copy)."""

    def __init__(self, model: bytes, settings: RuntimeSettings):
        import openvino

        core = openvino.Core()
        self.model = _read_openvino(core, model)
        self.compiled = core.compile_model(self.model, "CPU", openvino_config(settings))
        self.request = self.compiled.create_infer_request()
        self._infer, self._output = self.request.infer, self.request.get_output_tensor

    def __call__(self, ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
        self._infer((ids, weights), share_inputs=True)
        return self._output(0).data  # a view of the request's buffer: the next call overwrites it

    def held_bytes(self) -> int:
        """Bytes of the model's constants (its weights), as OpenVINO read them."""
        return sum(op.get_byte_size() for op in self.model.get_ops() if op.get_type_name() == "Constant")

    def save(self, folder: Path) -> None:
        """OpenVINO's IR: model.xml and model.bin, float32 kept (save_model would compress the weights to fp16)."""
        import openvino

        openvino.save_model(self.model, str(folder / "model.xml"), compress_to_fp16=False)


def _read_openvino(core, model: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / MODEL_FILE
        path.write_bytes(model)
        return core.read_model(str(path))


def make_room_for_compiled_graphs(graphs: int) -> None:
    """Let dynamo keep `graphs` more compiled graphs, and fail rather than run eagerly when a call finds no room.

    Every compiled model adds its graphs to the one code object all the suite's models share (their forward), and
    dynamo's default limit (8 graphs per code object) is full after two models: it then runs every later model
    eagerly, with a warning, so a grid's torch.compile benchmarks after its second configuration measured eager
    PyTorch (and the full run at fc9e3a9 did)."""
    config = torch._dynamo.config
    config.recompile_limit += graphs
    config.accumulated_recompile_limit += graphs
    config.fail_on_recompile_limit_hit = True


class CompiledForward:
    """The sparse model through torch.compile (inductor, mode "default"); compiled at build time on a batch of one
    and a batch of several rows, under no_grad (inductor cannot compile under inference mode) and then under
    inference mode, the mode it is timed in, so that no compilation happens inside a timing."""

    def __init__(self, trained: MLP, example: BagOfWords):
        self.model = convert(trained, sparse=True).eval()
        self.compiled = torch.compile(self.model, mode="default")
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

    def held_bytes(self) -> int:
        from .footprint import storage_bytes

        return storage_bytes([*self.model.parameters(), *self.model.buffers()])

    def save(self, folder: Path) -> None:
        """A compiled model is not saved: its users ship the state_dict and compile at load (the coldstart group
        times that)."""
        torch.save(self.model.state_dict(), folder / "model.pt")


class ExecuTorchForward:
    """The GatheredMLP lowered to ExecuTorch with the XNNPACK backend, run by ExecuTorch's Python runtime. XNNPACK
    takes one dynamic dimension, so the words axis is fixed at the longest row of the example rows (the dev set)."""

    def __init__(self, trained: MLP, example: BagOfWords, settings: RuntimeSettings):
        with _quiet_export():  # importing executorch loads torchao, which logs warnings about kernels this CPU lacks
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime

        self.words = int(example.nnz_per_row.max()) if len(example) else 1
        self.program = lower_to_executorch(GatheredMLP(trained).eval(), self.padded(example.rows(0, min(3, len(example)))),
                                           max_rows=max(3, len(example)))
        portable_lib._unsafe_reset_threadpool(settings.threads)
        self.method = Runtime.get().load_program(self.program).load_method("forward")
        self._execute = self.method.execute

    def padded(self, bags: BagOfWords) -> tuple[torch.Tensor, torch.Tensor]:
        ids, weights = bags.padded()
        if ids.shape[1] > self.words:
            raise ValueError(f"a row has {ids.shape[1]} words; the ExecuTorch program takes at most {self.words}")
        pad = (0, self.words - ids.shape[1])
        return nn.functional.pad(ids, pad), nn.functional.pad(weights, pad)

    def __call__(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self._execute((ids, weights))[0]

    def held_bytes(self) -> int:
        """The program buffer the runtime keeps: its weights are in it."""
        return len(self.program)

    def save(self, folder: Path) -> None:
        (folder / "model.pte").write_bytes(self.program)


def lower_to_executorch(module: nn.Module, example: tuple[torch.Tensor, torch.Tensor], max_rows: int) -> bytes:
    """The ExecuTorch program of `module`, lowered in a process of its own: torch.export and ExecuTorch's lowering
    keep about two copies of the weights for the life of the process that lowers (25 MB more after each lowering of
    a 3 M-parameter model, measured), which a run lowering every configuration of a grid cannot afford."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of the parent's torch state
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_lower_here, module, example, max_rows).result()


def _lower_here(module: nn.Module, example: tuple[torch.Tensor, torch.Tensor], max_rows: int) -> bytes:
    """ExecuTorch plans its memory for the largest batch: `max_rows` (the whole dev set), not an arbitrary bound."""
    rows = torch.export.Dim("rows", max=max_rows)
    with _quiet_export(), torch.inference_mode(False), torch.no_grad():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        exported = torch.export.export(module, example, dynamic_shapes=({0: rows}, {0: rows}))
        return to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


def padded_numpy(_forward, bags: BagOfWords) -> tuple[np.ndarray, ...]:
    """ONNX Runtime and OpenVINO take numpy arrays: views of the tensors, no copy."""
    return tuple(tensor.numpy() for tensor in bags.padded())


def build_onnxruntime(trained: MLP, _example: BagOfWords, settings: RuntimeSettings) -> OnnxRuntimeForward:
    return OnnxRuntimeForward(export_onnx(trained), settings)


def build_onnxruntime_int8(trained: MLP, _example: BagOfWords, settings: RuntimeSettings) -> OnnxRuntimeForward:
    return OnnxRuntimeForward(quantize_onnx(export_onnx(trained)), settings)


def build_openvino(trained: MLP, _example: BagOfWords, settings: RuntimeSettings) -> OpenVinoForward:
    return OpenVinoForward(export_onnx(trained), settings)


def build_torch_compile(trained: MLP, example: BagOfWords, _settings: RuntimeSettings) -> CompiledForward:
    return CompiledForward(trained, example)  # torch's own threads, pinned by the suite


def build_executorch(trained: MLP, example: BagOfWords, settings: RuntimeSettings) -> ExecuTorchForward:
    return ExecuTorchForward(trained, example, settings)
