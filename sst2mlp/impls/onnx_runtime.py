"""`onnxruntime` and `onnxruntime-int8`: the GatheredMLP exported to ONNX (sst2mlp.impls.gathered), run by an ONNX
Runtime InferenceSession on its CPU provider: the float form with the "bmm" input layer (one batched MatMul), the int8
form through onnxruntime's dynamic quantization of the "sum" export (its accuracy checked on that form). By name only,
`onnxruntime-sum`: the float "sum" export, the form before (slower at batch 1, 64 and the dev set: docs/runtimes.md).
They ship as model.onnx. Free of torch at import: a cold process loads the file with onnxruntime and numpy only."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Impl, RuntimeSettings, padded_arrays

ONNX_FILE = "model.onnx"  # the name gathered.ONNX_FILE gives the export (not imported: it needs torch)
ONNX_OUTPUT = "logits"
PINNING = {"thread_setting": "intra_op_num_threads=T, inter_op_num_threads=1",
           "denormal_setting": "session config session.set_denormal_as_zero"}


def session_options(settings: RuntimeSettings):
    """The thread count for its intra-op pool, one inter-op thread (the model is a chain of ops), every graph
    optimization, denormals as zero when the suite flushes them."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.set_denormal_as_zero", "1" if settings.flush_denormals else "0")
    return options


def initializer_bytes(model: bytes) -> int:
    """Bytes of the ONNX model's initializers: the weights a session keeps (it may add repacked copies of its own)."""
    import onnx

    proto = onnx.load_from_string(model)
    return sum(onnx.numpy_helper.to_array(tensor).nbytes for tensor in proto.graph.initializer)


class OnnxRuntimeForward:
    """An InferenceSession on the ONNX model: (ids, weights) as numpy arrays -> logits."""

    def __init__(self, model: bytes, settings: RuntimeSettings):
        import onnxruntime

        self.model = model
        self.session = onnxruntime.InferenceSession(model, session_options(settings), providers=["CPUExecutionProvider"])
        self._run, self._outputs = self.session.run, [ONNX_OUTPUT]

    def __call__(self, ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return self._run(self._outputs, {"ids": ids, "weights": weights})[0]


def empty_onnx() -> bytes:
    """An ONNX model with the exported model's inputs and output that only sums each row's weights: a call through
    the same path that does no model work (the runtime's call floor)."""
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, ["rows", "words"]),
              helper.make_tensor_value_info("weights", TensorProto.FLOAT, ["rows", "words"])]
    output = helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, ["rows"])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    node = helper.make_node("ReduceSum", ["weights", "axes"], [ONNX_OUTPUT], keepdims=0)
    graph = helper.make_graph([node], "empty", inputs, [output], initializer=[axes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def empty_inputs(words: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """One row of `words` words, as the runtimes take it (a dev example has about 14)."""
    return np.arange(words, dtype=np.int64)[None, :], np.ones((1, words), dtype=np.float32)


def empty_model(settings: RuntimeSettings) -> tuple[OnnxRuntimeForward, tuple]:
    return OnnxRuntimeForward(empty_onnx(), settings), empty_inputs()


def build(input_layer: str, int8: bool):
    def build(trained, _example, settings: RuntimeSettings) -> OnnxRuntimeForward:
        from .gathered import export_onnx, quantize_onnx

        model = export_onnx(trained, input_layer)
        return OnnxRuntimeForward(quantize_onnx(model) if int8 else model, settings)
    return build


def held_bytes(forward: OnnxRuntimeForward) -> int:
    return initializer_bytes(forward.model)


def save(forward: OnnxRuntimeForward, folder: Path) -> None:
    (folder / ONNX_FILE).write_bytes(forward.model)


def load(folder: Path, _config: dict) -> bytes:
    return (folder / ONNX_FILE).read_bytes()


def prepare(model: bytes, settings: RuntimeSettings, _inputs: tuple) -> OnnxRuntimeForward:
    return OnnxRuntimeForward(model, settings)


def _onnxruntime(name: str, rank: int, input_layer: str, int8: bool = False, in_default_run: bool = True) -> Impl:
    return Impl(name, rank, input_form="padded", exact=not int8, skips_inactive_units=False, build=build(input_layer, int8),
                in_default_run=in_default_run,
                held_bytes=held_bytes, files=(ONNX_FILE,), save=save, load=load, prepare=prepare, peer=True,
                runtime="onnxruntime", pinning=PINNING, coldstart_imports=("onnxruntime",), torch_inputs=False,
                model_inputs=padded_arrays, table_weight_bytes=1 if int8 else 4, int8_products=int8,
                empty_model=empty_model)


IMPLS = (
    _onnxruntime("onnxruntime", 70, "bmm"),
    _onnxruntime("onnxruntime-sum", 75, "sum", in_default_run=False),
    _onnxruntime("onnxruntime-int8", 80, "sum", int8=True),
)
