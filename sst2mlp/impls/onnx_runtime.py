"""The ONNX Runtime impls, each an InferenceSession on its CPU provider:

- `onnxruntime`: chosen by batch size, the faster exact form at each (docs/runtimes.md): below CSR_FROM_ROWS rows
  the GatheredMLP (sst2mlp.impls.gathered) with the "bmm" input layer (one batched MatMul) on padded word ids; from
  CSR_FROM_ROWS rows on, the CSR model, whose input layer is onnxruntime's `com.microsoft.SparseToDenseMatMul` of the
  batch's count rows (a SparseTensor in CSR form) with the input table. It holds both sessions and ships both files.
- `onnxruntime-int8`: onnxruntime's dynamic quantization of the "sum" export (its accuracy checked on that form).
- By name only: `onnxruntime-bmm` and `onnxruntime-csr`, each form at every batch size; `onnxruntime-sum`, the form
  before (multiply and sum over the words; slower at batch 1, 64 and the dev set).

Free of torch at import: a cold process loads the files with onnxruntime and numpy only."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Impl, RuntimeSettings, padded_arrays

ONNX_FILE = "model.onnx"  # the name gathered.ONNX_FILE gives the export (not imported: it needs torch)
CSR_FILE = "model-csr.onnx"
ONNX_OUTPUT = "logits"
CSR_INPUT = "counts"
# From this many rows on, `onnxruntime` runs the CSR model: the two forms cross between 512 and 576 rows at the
# baseline on the Zen 4 VM (interleaved, docs/runtimes.md, "Each runtime at its own best").
CSR_FROM_ROWS = 544
# SparseToDenseMatMul (onnxruntime 1.32, Eigen) is 1.7-5x slower when the rows are a multiple of 64 (at the baseline:
# 28.9 us a row at 512 rows, 5.5 with one more row); such a batch is given one more row, without words.
SLOW_ROWS_MULTIPLE = 64
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
    """An InferenceSession on an ONNX model of padded inputs: (ids, weights) as numpy arrays -> logits."""

    def __init__(self, model: bytes, settings: RuntimeSettings):
        import onnxruntime

        self.model = model
        self.session = onnxruntime.InferenceSession(model, session_options(settings), providers=["CPUExecutionProvider"])
        self._run, self._outputs = self.session.run, [ONNX_OUTPUT]

    file_name = ONNX_FILE

    @property
    def files(self) -> dict[str, bytes]:
        """What it ships: file name -> ONNX model."""
        return {self.file_name: self.model}

    def __call__(self, ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return self._run(self._outputs, {"ids": ids, "weights": weights})[0]


class CsrForward(OnnxRuntimeForward):
    """An InferenceSession on the CSR model: (counts, word ids, row starts, rows) as numpy arrays -> the batch's
    logits. The arrays become one SparseTensor OrtValue in the call, as run() turns numpy arrays into OrtValues in
    its call (a sparse input goes only through run_with_ort_values); the matrix may have one more row than the batch
    (`csr_counts`)."""

    file_name = CSR_FILE

    def __init__(self, model: bytes, settings: RuntimeSettings):
        import onnxruntime

        super().__init__(model, settings)
        self._run = self.session.run_with_ort_values
        self._vocab_size = self.session.get_inputs()[0].shape[1]
        self._sparse, self._value = onnxruntime.SparseTensor.sparse_csr_from_numpy, onnxruntime.OrtValue.ort_value_from_sparse_tensor
        self._cpu = onnxruntime.OrtDevice.make("cpu", 0)

    def __call__(self, counts: np.ndarray, ids: np.ndarray, starts: np.ndarray, rows: np.ndarray) -> np.ndarray:
        shape = np.array([len(starts) - 1, self._vocab_size], dtype=np.int64)
        matrix = self._value(self._sparse(shape, counts, ids, starts, self._cpu))  # views of the arrays, no copy
        return self._run(self._outputs, {CSR_INPUT: matrix})[0].numpy()[: int(rows)]


class ByBatchSize:
    """`onnxruntime`: the padded (bmm) session below CSR_FROM_ROWS rows, the CSR session from there on. Its inputs
    say which: (ids, weights) or (counts, ids, starts, rows), as `inputs_by_batch_size` made them for the batch."""

    def __init__(self, padded: OnnxRuntimeForward, csr: CsrForward):
        self.padded, self.csr = padded, csr

    @property
    def files(self) -> dict[str, bytes]:
        return self.padded.files | self.csr.files

    def __call__(self, *inputs) -> np.ndarray:
        return self.padded(*inputs) if len(inputs) == 2 else self.csr(*inputs)


def csr_onnx(layers: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """The MLP as an ONNX model of a CSR count matrix (rows, vocab): SparseToDenseMatMul with the input table
    (vocab, hidden), then bias and ReLU; each hidden layer a Gemm and a ReLU; the output layer a Gemm, flattened.
    `layers`: (weight, bias) per layer as torch's nn.Linear holds them (out, in), the input table as (vocab, hidden)."""
    from onnx import TensorProto, helper, numpy_helper

    initializers, nodes = [], []

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    (table, input_bias), *hidden, (output_weight, output_bias) = layers
    nodes += [helper.make_node("SparseToDenseMatMul", [CSR_INPUT, constant("table", table)], ["input"],
                               domain="com.microsoft"),
              helper.make_node("Add", ["input", constant("input_bias", input_bias)], ["input_biased"]),
              helper.make_node("Relu", ["input_biased"], ["h0"])]
    for i, (weight, bias) in enumerate(hidden, start=1):
        nodes += [helper.make_node("Gemm", [f"h{i - 1}", constant(f"weight{i}", weight), constant(f"bias{i}", bias)],
                                   [f"linear{i}"], transB=1),
                  helper.make_node("Relu", [f"linear{i}"], [f"h{i}"])]
    nodes += [helper.make_node("Gemm", [f"h{len(hidden)}", constant("output_weight", output_weight),
                                        constant("output_bias", output_bias)], ["output"], transB=1),
              helper.make_node("Reshape", ["output", constant("flat", np.array([-1], dtype=np.int64))], [ONNX_OUTPUT])]
    vocab_size = table.shape[0]
    inputs = [helper.make_sparse_tensor_value_info(CSR_INPUT, TensorProto.FLOAT, ["rows", vocab_size])]
    outputs = [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, ["rows"])]
    graph = helper.make_graph(nodes, "csr_mlp", inputs, outputs, initializer=initializers)
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def csr_layers(trained) -> list[tuple[np.ndarray, np.ndarray]]:
    """The trained MLP's layers as csr_onnx takes them."""
    from sst2mlp.reference.model import convert

    source = convert(trained, sparse=True)
    layers = [source.input.bag.weight, source.input.bias]
    for layer in [*source.hidden, source.output]:
        layers += [layer.weight, layer.bias]
    arrays = [tensor.detach().numpy() for tensor in layers]
    return list(zip(arrays[::2], arrays[1::2]))


def csr_counts(_forward, bags) -> tuple[np.ndarray, ...]:
    """(counts, word ids, row starts, rows): the batch's count rows in CSR form (views where it can), with one more
    row, without words, when the rows are a multiple of SLOW_ROWS_MULTIPLE."""
    counts, ids, starts = bags.counts.numpy(), bags.indices.numpy(), bags.offsets.numpy()
    if len(ids) == 0:  # onnxruntime refuses a CSR matrix without entries: one explicit zero, which adds 0
        counts, ids = np.zeros(1, dtype=np.float32), np.zeros(1, dtype=np.int64)
        starts = np.minimum(np.arange(len(bags) + 1, dtype=np.int64), 1)
    if len(bags) % SLOW_ROWS_MULTIPLE == 0:
        starts = np.append(starts, starts[-1])
    return counts, ids, starts, np.array(len(bags), dtype=np.int64)


def inputs_by_batch_size(forward: ByBatchSize, bags) -> tuple:
    return csr_counts(forward, bags) if len(bags) >= CSR_FROM_ROWS else padded_arrays(forward, bags)


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


def build(form: str, int8: bool = False):
    """`form`: an input layer of the GatheredMLP export ("sum", "bmm"), "csr", or "by batch size" (bmm and csr)."""
    def build(trained, _example, settings: RuntimeSettings):
        from .gathered import export_onnx, quantize_onnx

        if form == "csr":
            return CsrForward(csr_onnx(csr_layers(trained)), settings)
        if form == "by batch size":
            return ByBatchSize(OnnxRuntimeForward(export_onnx(trained, "bmm"), settings),
                               CsrForward(csr_onnx(csr_layers(trained)), settings))
        model = export_onnx(trained, form)
        return OnnxRuntimeForward(quantize_onnx(model) if int8 else model, settings)
    return build


def held_bytes(forward: OnnxRuntimeForward | ByBatchSize) -> int:
    return sum(initializer_bytes(model) for model in forward.files.values())


def files_of(form: str) -> tuple[str, ...]:
    return {"csr": (CSR_FILE,), "by batch size": (ONNX_FILE, CSR_FILE)}.get(form, (ONNX_FILE,))


def save(forward: OnnxRuntimeForward | ByBatchSize, folder: Path) -> None:
    for name, model in forward.files.items():
        (folder / name).write_bytes(model)


def load(folder: Path, _config: dict) -> dict[str, bytes]:
    """The model files the folder holds, by name."""
    return {name: (folder / name).read_bytes() for name in (ONNX_FILE, CSR_FILE) if (folder / name).exists()}


def prepare(models: dict[str, bytes], settings: RuntimeSettings, _inputs: tuple):
    if len(models) == 2:
        return ByBatchSize(OnnxRuntimeForward(models[ONNX_FILE], settings), CsrForward(models[CSR_FILE], settings))
    if CSR_FILE in models:
        return CsrForward(models[CSR_FILE], settings)
    return OnnxRuntimeForward(models[ONNX_FILE], settings)


INPUT_FORMS = {"csr": ("csr", csr_counts), "by batch size": ("padded or csr", inputs_by_batch_size)}


def _onnxruntime(name: str, rank: int, form: str, int8: bool = False, in_default_run: bool = True) -> Impl:
    input_form, model_inputs = INPUT_FORMS.get(form, ("padded", padded_arrays))
    return Impl(name, rank, input_form=input_form, exact=not int8, skips_inactive_units=False, build=build(form, int8),
                in_default_run=in_default_run,
                held_bytes=held_bytes, files=files_of(form), save=save, load=load, prepare=prepare, peer=True,
                runtime="onnxruntime", pinning=PINNING, coldstart_imports=("onnxruntime",), torch_inputs=False,
                model_inputs=model_inputs, table_weight_bytes=1 if int8 else 4, int8_products=int8,
                weight_copies=len(files_of(form)), empty_model=empty_model)  # each file holds the weights


IMPLS = (
    _onnxruntime("onnxruntime", 70, "by batch size"),
    _onnxruntime("onnxruntime-bmm", 71, "bmm", in_default_run=False),
    _onnxruntime("onnxruntime-csr", 72, "csr", in_default_run=False),
    _onnxruntime("onnxruntime-sum", 75, "sum", in_default_run=False),
    _onnxruntime("onnxruntime-int8", 80, "sum", int8=True),
)
