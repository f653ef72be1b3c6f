"""`openvino`: the BaggedMLP (sst2mlp.impls.gathered) converted by OpenVINO's PyTorch frontend, its input layer one
EmbeddingBagOffsets op on the words present (no padding), compiled for the CPU device. By name only,
`openvino-padded`: the GatheredMLP's ONNX export read by OpenVINO (the padded form before; 1.3-3.4x slower,
docs/runtimes.md). Both ship as OpenVINO's IR (model.xml, model.bin). Free of torch at import: a cold process loads
the IR with openvino and numpy only."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .base import EXTRA_INSTALL, Impl, RuntimeSettings, padded_arrays

INPUT_NAMES = ("indices", "starts")  # the bag form's

IR_FILES = ("model.xml", "model.bin")
PINNING = {"thread_setting": "INFERENCE_NUM_THREADS=T, PERFORMANCE_HINT=LATENCY",
           "denormal_setting": "CPU_DENORMALS_OPTIMIZATION", "precision_setting": "INFERENCE_PRECISION_HINT=f32"}


def compile_config(settings: RuntimeSettings) -> dict:
    """Latency hint (one stream), the suite's threads, float32 (on CPUs with bf16 OpenVINO would otherwise compute in
    bf16, which is not the model), and FTZ/DAZ as --sst2-denormals says."""
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": settings.threads, "INFERENCE_PRECISION_HINT": "f32",
            "CPU_DENORMALS_OPTIMIZATION": settings.flush_denormals}


class OpenVinoForward:
    """An OpenVINO model compiled for the CPU device; one infer request, inputs and outputs shared (no copy; OpenVINO's
    "Shared Memory" mode of its Python API's advanced inference guide)."""

    def __init__(self, core, model, settings: RuntimeSettings):
        self.model = model
        self.compiled = core.compile_model(model, "CPU", compile_config(settings))
        self.request = self.compiled.create_infer_request()
        self._infer, self._output = self.request.infer, self.request.get_output_tensor

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        self._infer(inputs, share_inputs=True, share_outputs=True)
        return self._output(0).data  # a view of the request's buffer: the next call overwrites it


def build_bagged(trained, _example, settings: RuntimeSettings) -> OpenVinoForward:
    """OpenVINO's conversion of the BaggedMLP, both inputs 1-D and dynamic (its example: two rows of five words)."""
    import openvino
    import torch

    from .base import quiet_export
    from .gathered import BaggedMLP

    example = (torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 2]))
    inputs = [(name, openvino.PartialShape([-1]), openvino.Type.i64) for name in INPUT_NAMES]
    with quiet_export(), torch.inference_mode(False), torch.no_grad():
        model = openvino.convert_model(BaggedMLP(trained).eval(), example_input=example, input=inputs)
    return OpenVinoForward(openvino.Core(), model, settings)


def build_padded(trained, _example, settings: RuntimeSettings) -> OpenVinoForward:
    import openvino

    from .gathered import ONNX_FILE, export_onnx

    core = openvino.Core()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ONNX_FILE
        path.write_bytes(export_onnx(trained))
        return OpenVinoForward(core, core.read_model(str(path)), settings)


def repeated_words(_forward, bags) -> tuple[np.ndarray, np.ndarray]:
    """(indices, starts): each row's word ids, a word present k times listed k times, and where each row starts; for
    a batch without any word, the zero row's id (BaggedMLP)."""
    indices, offsets, counts = bags.indices.numpy(), bags.offsets.numpy(), bags.counts.numpy()
    if len(indices) == 0:
        return np.array([bags.vocab_size], dtype=np.int64), offsets[:-1]
    repeats = counts.astype(np.int64)
    if np.all(repeats == 1):  # the common case (most rows have no repeated word): no copy
        return indices, offsets[:-1]
    ends = np.concatenate([[0], np.cumsum(repeats)])[offsets]
    return np.repeat(indices, repeats), ends[:-1]


def empty_model(settings: RuntimeSettings) -> tuple[OpenVinoForward, tuple]:
    """The runtime's call floor: the empty ONNX model of onnx_runtime.empty_onnx compiled as the model is."""
    import openvino

    from .onnx_runtime import empty_inputs, empty_onnx

    core = openvino.Core()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "empty.onnx"
        path.write_bytes(empty_onnx())
        return OpenVinoForward(core, core.read_model(str(path)), settings), empty_inputs()


def held_bytes(forward: OpenVinoForward) -> int:
    """Bytes of the model's constants (its weights), as OpenVINO read them."""
    return sum(op.get_byte_size() for op in forward.model.get_ops() if op.get_type_name() == "Constant")


def save(forward: OpenVinoForward, folder: Path) -> None:
    """float32 kept (save_model would compress the weights to fp16)."""
    import openvino

    openvino.save_model(forward.model, str(folder / IR_FILES[0]), compress_to_fp16=False)


def load(folder: Path, _config: dict) -> tuple:
    import openvino

    core = openvino.Core()
    return core, core.read_model(str(folder / IR_FILES[0]))


def prepare(loaded: tuple, settings: RuntimeSettings, _inputs: tuple) -> OpenVinoForward:
    core, model = loaded
    return OpenVinoForward(core, model, settings)


def _openvino(name: str, rank: int, input_form: str, build, model_inputs, in_default_run: bool = True) -> Impl:
    return Impl(name, rank, input_form=input_form, exact=True, skips_inactive_units=False, build=build,
                held_bytes=held_bytes, files=IR_FILES, save=save, load=load, prepare=prepare, peer=True,
                runtime="openvino", pinning=PINNING, coldstart_imports=("openvino",), torch_inputs=False,
                model_inputs=model_inputs, empty_model=empty_model, in_default_run=in_default_run,
                requires="openvino", install=EXTRA_INSTALL.format("openvino"))


IMPLS = (
    _openvino("openvino", 90, "repeated", build_bagged, repeated_words),
    _openvino("openvino-padded", 95, "padded", build_padded, padded_arrays, in_default_run=False),
)
