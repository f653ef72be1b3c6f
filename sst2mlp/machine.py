"""What decides the timings besides the code: CPU, torch build, threads. Recorded in pytest-benchmark's machine_info."""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import torch

from . import kernel

_BUILD_PATTERNS = {
    "blas": r"BLAS_INFO=(\w+)",
    "mkl": r"Math Kernel Library Version ([^\n]+?) for",
    "onednn": r"MKL-DNN (v[\d.]+)",
    "cpu_capability": r"CPU capability usage: (\w+)",
    "parallel_backend": r"ATen parallel backend: (\w+)",
}


def torch_build_info() -> dict[str, str]:
    text = torch.__config__.show() + torch.__config__.parallel_info()
    found = {name: re.search(pattern, text) for name, pattern in _BUILD_PATTERNS.items()}
    return {name: match.group(1).strip() for name, match in found.items() if match}


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def update_machine_info(machine_info: dict, threads: tuple[int, ...], impls: tuple[str, ...]) -> None:
    """Record what decides the timings; drop the momentary clock speed so runs on one machine compare cleanly."""
    cpu = machine_info.get("cpu", {})
    for key in [k for k in cpu if k.startswith("hz_actual")]:
        del cpu[key]
    machine_info["torch"] = {
        "version": torch.__version__,
        "threads": list(threads),
        "interop_threads": torch.get_num_interop_threads(),
        **torch_build_info(),
    }
    if "fused" in impls:
        machine_info["fused_kernel"] = kernel.build_info()
    machine_info["cpu_model"] = cpu_model()
    machine_info["cpu_count"] = os.cpu_count()
    if hasattr(os, "getloadavg"):
        machine_info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
