"""The child side of a cold start (sst2mlp.coldstart): a fresh Python process that loads an impl from the files it
ships and makes its first prediction.

The parent saves an impl (Variant.save), one example's inputs and the configuration into a folder, starts
`python -m sst2mlp.loaders IMPL FOLDER THREADS DENORMALS` and reads one JSON line back. The child imports only what
its impl needs (ONNX Runtime, OpenVINO and ExecuTorch children never import torch's Python package unless their
runtime does), and stamps each phase with CLOCK_MONOTONIC, which is the same clock in every process of the machine, so
the parent can split the time since it started the process:

    interpreter  process start to the first line of this module (Python itself, and `python -m`'s imports)
    imports      the impl's imports (torch, the runtime, the suite's model or kernel module)
    load         reading the shipped files into the runtime's objects (state_dict into a module, TorchScript file,
                 ONNX bytes, OpenVINO IR, .pte program; for fused also loading the already-built kernel library)
    prepare      what a runtime does before it can answer: session creation, compilation (for torch-compile the
                 call that compiles, on the same input), building the kernel object
    first        the first inference, on one example

This module imports nothing heavy at the top: it runs in the child before any timing starts.
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PHASES = ("interpreter", "imports", "load", "prepare", "first")
INPUTS_FILE = "inputs.npz"
CONFIG_FILE = "config.json"


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


@dataclass(frozen=True)
class Loader:
    imports: tuple[str, ...]  # imported first, timed as 'imports'
    load: Callable[[Path, dict], Any]  # (folder, config) -> what was loaded from the shipped files
    prepare: Callable[[Any, dict], Callable]  # (loaded, run settings + inputs) -> a forward ready to answer
    torch_inputs: bool = True  # the forward takes tensors (else numpy arrays)


def _state_dict_model(sparse: bool) -> Callable[[Path, dict], Any]:
    def load(folder: Path, config: dict):
        import torch

        from sst2mlp.model import MLP

        model = MLP(config["num_layers"], config["hidden_size"], config["vocab_size"], sparse=sparse)
        model.load_state_dict(torch.load(folder / "model.pt"))
        return model.eval()
    return load


def _int8_model(folder: Path, config: dict):
    import warnings

    import torch

    from sst2mlp.model import MLP

    model = MLP(config["num_layers"], config["hidden_size"], config["vocab_size"]).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    quantized.load_state_dict(torch.load(folder / "model.pt"))
    return quantized


def _torchscript(folder: Path, _config: dict):
    import torch

    return torch.jit.load(str(folder / "model.ts"))


def _fused_weights(folder: Path, _config: dict):
    import torch

    from sst2mlp import kernel

    kernel.load_extension()  # the library built earlier, from torch's extension cache
    return torch.load(folder / "fused.pt")


def _fused(saved, _run: dict):
    from sst2mlp.kernel import fused_from_saved

    return fused_from_saved(saved)


def _as_is(loaded, _run: dict):
    return loaded


def _compiled(model, run: dict):
    import torch

    compiled = torch.compile(model, mode="default")
    compiled(*run["inputs"])  # compiles
    return compiled


def _onnx_bytes(folder: Path, _config: dict) -> bytes:
    return (folder / "model.onnx").read_bytes()


def _onnxruntime(model: bytes, run: dict):
    import onnxruntime

    from sst2mlp.sessions import ONNX_OUTPUT, RuntimeSettings, session_options

    session = onnxruntime.InferenceSession(model, session_options(RuntimeSettings(run["threads"], run["flush"])),
                                           providers=["CPUExecutionProvider"])
    return lambda ids, weights: session.run([ONNX_OUTPUT], {"ids": ids, "weights": weights})[0]


def _openvino_model(folder: Path, _config: dict):
    import openvino

    core = openvino.Core()
    return core, core.read_model(str(folder / "model.xml"))


def _openvino(loaded, run: dict):
    from sst2mlp.sessions import RuntimeSettings, openvino_config

    core, model = loaded
    request = core.compile_model(model, "CPU", openvino_config(RuntimeSettings(run["threads"], run["flush"]))).create_infer_request()

    def forward(ids, weights):
        request.infer((ids, weights), share_inputs=True)
        return request.get_output_tensor(0).data
    return forward


def _pte_bytes(folder: Path, _config: dict) -> bytes:
    return (folder / "model.pte").read_bytes()


def _executorch(program: bytes, run: dict):
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    portable_lib._unsafe_reset_threadpool(run["threads"])
    method = Runtime.get().load_program(program).load_method("forward")
    return lambda ids, weights: method.execute((ids, weights))[0]


_MODEL = ("torch", "sst2mlp.model")
_FUSED = Loader(("torch", "sst2mlp.kernel"), _fused_weights, _fused)
LOADERS = {
    "dense": Loader(_MODEL, _state_dict_model(sparse=False), _as_is),
    "sparse": Loader(_MODEL, _state_dict_model(sparse=True), _as_is),
    "torchscript": Loader(("torch",), _torchscript, _as_is),
    "fused": _FUSED,
    "int8": Loader(_MODEL, _int8_model, _as_is),
    "fused-int8": _FUSED,
    "onnxruntime": Loader(("numpy", "onnxruntime", "sst2mlp.sessions"), _onnx_bytes, _onnxruntime, torch_inputs=False),
    "onnxruntime-int8": Loader(("numpy", "onnxruntime", "sst2mlp.sessions"), _onnx_bytes, _onnxruntime,
                               torch_inputs=False),
    "openvino": Loader(("numpy", "openvino", "sst2mlp.sessions"), _openvino_model, _openvino, torch_inputs=False),
    "torch-compile": Loader(_MODEL, _state_dict_model(sparse=True), _compiled),
    "executorch": Loader(("torch", "executorch.runtime"), _pte_bytes, _executorch),
}


def run_child(impl: str, folder: Path, threads: int, flush: bool, started: float) -> dict:
    """In the fresh process: the phases' end times and the first prediction's logit."""
    import importlib

    loader = LOADERS[impl]
    stamps = {"started": started}
    for module in loader.imports:
        importlib.import_module(module)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(threads)
        torch.set_flush_denormal(flush)
    stamps["imports"] = now()
    loaded = loader.load(folder, json.loads((folder / CONFIG_FILE).read_text()))
    stamps["load"] = now()
    import numpy as np

    with np.load(folder / INPUTS_FILE) as arrays:
        inputs = [arrays[f"arg{i}"] for i in range(len(arrays.files))]
    grad_off = contextlib.nullcontext()
    if loader.torch_inputs:
        torch = sys.modules["torch"]
        inputs, grad_off = [torch.from_numpy(array) for array in inputs], torch.no_grad()
    with grad_off:  # as a deployed PyTorch model runs (torch.compile's compiling call included)
        forward = loader.prepare(loaded, {"threads": threads, "flush": flush, "inputs": inputs})
        stamps["prepare"] = now()
        logits = forward(*inputs)
        stamps["first"] = now()
    return {**stamps, "logit": float(np.asarray(logits).reshape(-1)[0])}


def main(argv: list[str]) -> None:
    started = now()
    import os

    impl, folder, threads, denormals = argv
    result = run_child(impl, Path(folder), int(threads), denormals == "flush", started)
    print(json.dumps({**result, "pid": os.getpid()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
