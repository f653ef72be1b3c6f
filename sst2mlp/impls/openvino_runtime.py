"""`openvino`: the GatheredMLP's ONNX export (sst2mlp.impls.gathered) read by OpenVINO and compiled for its CPU
device; ships as OpenVINO's IR (model.xml, model.bin). Free of torch at import: a cold process loads the IR with
openvino and numpy only."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .base import EXTRA_INSTALL, Impl, RuntimeSettings, padded_arrays

IR_FILES = ("model.xml", "model.bin")
PINNING = {"thread_setting": "INFERENCE_NUM_THREADS=T, PERFORMANCE_HINT=LATENCY",
           "denormal_setting": "CPU_DENORMALS_OPTIMIZATION", "precision_setting": "INFERENCE_PRECISION_HINT=f32"}


def compile_config(settings: RuntimeSettings) -> dict:
    """Latency hint (one stream), the suite's threads, float32 (on CPUs with bf16 OpenVINO would otherwise compute in
    bf16, which is not the model), and FTZ/DAZ as --sst2-denormals says."""
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": settings.threads, "INFERENCE_PRECISION_HINT": "f32",
            "CPU_DENORMALS_OPTIMIZATION": settings.flush_denormals}


class OpenVinoForward:
    """An OpenVINO model compiled for the CPU device; one infer request, inputs shared (no copy)."""

    def __init__(self, core, model, settings: RuntimeSettings):
        self.model = model
        self.compiled = core.compile_model(model, "CPU", compile_config(settings))
        self.request = self.compiled.create_infer_request()
        self._infer, self._output = self.request.infer, self.request.get_output_tensor

    def __call__(self, ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
        self._infer((ids, weights), share_inputs=True)
        return self._output(0).data  # a view of the request's buffer: the next call overwrites it


def build(trained, _example, settings: RuntimeSettings) -> OpenVinoForward:
    import openvino

    from .gathered import ONNX_FILE, export_onnx

    core = openvino.Core()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ONNX_FILE
        path.write_bytes(export_onnx(trained))
        return OpenVinoForward(core, core.read_model(str(path)), settings)


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


IMPLS = (Impl("openvino", 90, input_form="padded", exact=True, skips_inactive_units=False, build=build, held_bytes=held_bytes,
              files=IR_FILES, save=save, load=load, prepare=prepare, peer=True, runtime="openvino", pinning=PINNING,
              coldstart_imports=("openvino",), torch_inputs=False, model_inputs=padded_arrays, empty_model=empty_model,
              requires="openvino",
              install=EXTRA_INSTALL.format("openvino")),)
