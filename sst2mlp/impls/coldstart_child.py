"""The child side of a cold start (sst2mlp.suite.coldstart): a fresh Python process that loads an impl from the files it
ships and makes its first prediction.

The parent saves an impl (Variant.save), one example's inputs and the configuration into a folder, starts
`python -m sst2mlp.impls.coldstart_child MODULE IMPL FOLDER THREADS DENORMALS` and reads one JSON line back. The
child imports only the impl's module and what its record names (an ONNX Runtime or OpenVINO child never imports
torch's Python package), through the same record's load and prepare steps the suite's own variant shares, and stamps
each phase with CLOCK_MONOTONIC, which is the same clock in every process of the machine, so the parent can split the
time since it started the process (sst2mlp.contract.COLDSTART_PHASES):

    interpreter  process start to the first line of this module (Python itself, and `python -m`'s imports)
    imports      the impl's module and its runtime (torch, the runtime, the suite's model or kernel module)
    load         reading the shipped files into the runtime's objects (state_dict into a module, TorchScript file,
                 ONNX bytes, OpenVINO IR, .pte program, AOTInductor package; for fused also loading the already-built
                 kernel library)
    prepare      what a runtime does before it can answer: session creation, compilation (for torch-compile the
                 call that compiles, on the same input), building the kernel object
    first        the first inference, on one example

This module imports nothing heavy at the top: it runs in the child before any timing starts.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import sys
import time
from pathlib import Path

INPUTS_FILE = "inputs.npz"
CONFIG_FILE = "config.json"


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def find_impl(module: str, name: str):
    """The record `name` of the impl family `module`."""
    for impl in importlib.import_module(module).IMPLS:
        if impl.name == name:
            return impl
    raise ValueError(f"module {module} defines no impl {name!r}")


def run_child(module: str, name: str, folder: Path, threads: int, flush: bool, started: float) -> dict:
    """In the fresh process: the phases' end times and the first prediction's logit."""
    stamps = {"started": started}
    impl = find_impl(module, name)
    for imported in impl.coldstart_imports:
        importlib.import_module(imported)
    from .base import RuntimeSettings

    settings = RuntimeSettings(threads, flush)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(threads)
        torch.set_flush_denormal(flush)
    stamps["imports"] = now()
    loaded = impl.load(folder, json.loads((folder / CONFIG_FILE).read_text()))
    stamps["load"] = now()
    import numpy as np

    with np.load(folder / INPUTS_FILE) as arrays:
        inputs = [arrays[f"arg{i}"] for i in range(len(arrays.files))]
    grad_off = contextlib.nullcontext()
    if impl.torch_inputs:
        torch = sys.modules["torch"]
        inputs, grad_off = [torch.from_numpy(array) for array in inputs], torch.no_grad()
    with grad_off:  # as a deployed PyTorch model runs (torch.compile's compiling call included)
        forward = impl.prepare(loaded, settings, tuple(inputs))
        stamps["prepare"] = now()
        logits = forward(*inputs)
        stamps["first"] = now()
    return {**stamps, "logit": float(np.asarray(logits).reshape(-1)[0])}


def main(argv: list[str]) -> None:
    started = now()
    import os

    module, name, folder, threads, denormals = argv
    result = run_child(module, name, Path(folder), int(threads), denormals == "flush", started)
    print(json.dumps({**result, "pid": os.getpid()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
