"""How the deployment runtimes are configured: the suite's thread count and denormal mode turned into each runtime's
settings. Free of torch, so that a cold-start process of ONNX Runtime or OpenVINO (sst2mlp.loaders) does not load it."""
from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

ONNX_INPUTS = ("ids", "weights")
ONNX_OUTPUT = "logits"


@dataclass(frozen=True)
class RuntimeSettings:
    """What a runtime is built with beside the weights: the suite's thread count and denormal mode."""

    threads: int = 1
    flush_denormals: bool = True


def session_options(settings: RuntimeSettings):
    """ONNX Runtime: the thread count for its intra-op pool, one inter-op thread (the model is a chain of ops), every
    graph optimization, denormals as zero when the suite flushes them."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.set_denormal_as_zero", "1" if settings.flush_denormals else "0")
    return options


def openvino_config(settings: RuntimeSettings) -> dict:
    """OpenVINO's CPU device: latency hint (one stream), the suite's threads, float32 (on CPUs with bf16 OpenVINO
    would otherwise compute in bf16, which is not the model), and FTZ/DAZ as --sst2-denormals says."""
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": settings.threads, "INFERENCE_PRECISION_HINT": "f32",
            "CPU_DENORMALS_OPTIMIZATION": settings.flush_denormals}


# How each runtime is pinned to the suite's thread count T and denormal mode, as recorded in machine_info.
RUNTIME_SETTINGS = {
    "torch": {"thread_setting": "torch.set_num_threads(T)", "denormal_setting": "torch.set_flush_denormal (FTZ/DAZ of the threads)"},
    "onnxruntime": {"thread_setting": "intra_op_num_threads=T, inter_op_num_threads=1",
                    "denormal_setting": "session config session.set_denormal_as_zero"},
    "openvino": {"thread_setting": "INFERENCE_NUM_THREADS=T, PERFORMANCE_HINT=LATENCY",
                 "denormal_setting": "CPU_DENORMALS_OPTIMIZATION", "precision_setting": "INFERENCE_PRECISION_HINT=f32"},
    "executorch": {"thread_setting": "XNNPACK threadpool reset to T",
                   "denormal_setting": "none of its own: runs on the calling thread at T=1, which torch set"},
}


def runtime_info(runtimes: list[str], threads: tuple[int, ...], flush_denormals: bool) -> dict:
    """machine_info's record of the runtimes a run uses: version, thread counts and how they were set."""
    info = {}
    for runtime in runtimes:
        try:
            installed = version(runtime)
        except PackageNotFoundError:
            installed = None
        info[runtime] = {"version": installed, "threads": list(threads), "flush_denormals": flush_denormals,
                         **RUNTIME_SETTINGS[runtime]}
    return info
