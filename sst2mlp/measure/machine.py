"""What decides the timings besides the code: CPU, torch build, threads. Recorded in pytest-benchmark's machine_info."""
from __future__ import annotations

import os
import platform
import re
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from sst2mlp.impls.registry import runtime_info
from sst2mlp.native import kernel

_BUILD_PATTERNS = {
    "blas": r"BLAS_INFO=(\w+)",
    "mkl": r"Math Kernel Library Version ([^\n]+?) for",
    "onednn": r"MKL-DNN (v[\d.]+)",
    "cpu_capability": r"CPU capability usage: (\w+)",
    "parallel_backend": r"ATen parallel backend: (\w+)",
}


@contextmanager
def torch_threads(threads: int):
    """torch at `threads` threads, the previous count restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def torch_build_info() -> dict[str, str]:
    text = torch.__config__.show() + torch.__config__.parallel_info()
    found = {name: re.search(pattern, text) for name, pattern in _BUILD_PATTERNS.items()}
    return {name: match.group(1).strip() for name, match in found.items() if match}


# ARM's part numbers (/proc/cpuinfo's "CPU part" when "CPU implementer" is 0x41) of the cores of common boards
ARM_CORES = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
             "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd49": "Neoverse-N2",
             "0xd4f": "Neoverse-V2"}


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's name: x86's "model name"; on ARM, which reports none, the core's name from its part number; under an
    emulator, the emulated CPU and the host's."""
    fields = _cpuinfo_fields(cpuinfo)
    emulated = _emulator(platform.machine(), fields, os.environ)
    if emulated:
        return emulated
    if "model name" in fields:
        return fields["model name"]
    if fields.get("CPU implementer") == "0x41" and fields.get("CPU part") in ARM_CORES:
        return f"ARM {ARM_CORES[fields['CPU part']]}"
    return platform.processor() or platform.machine()


def _cpuinfo_fields(cpuinfo: Path) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty if there is none)."""
    fields = {}
    text = cpuinfo.read_text(errors="replace") if cpuinfo.exists() else ""
    for line in text.splitlines():
        name, separator, value = line.partition(":")
        if separator and name.strip() not in fields:
            fields[name.strip()] = value.strip()
    return fields


def emulator(machine: str | None = None, cpuinfo: Path = Path("/proc/cpuinfo"), environ=os.environ) -> str | None:
    """What emulates this process's CPU, or None when it runs natively. qemu-user runs an ARM program on an x86 host
    and passes the host's /proc/cpuinfo through (qemu 7.2): an aarch64 process that reads an x86 CPU's fields is
    emulated, and timings under emulation say nothing about either CPU."""
    return _emulator(machine or platform.machine(), _cpuinfo_fields(cpuinfo), environ)


def _emulator(machine: str, fields: dict[str, str], environ) -> str | None:
    machine = machine.lower()
    x86_host = "vendor_id" in fields or ("model name" in fields and "CPU implementer" not in fields)
    if not (machine.startswith(("aarch64", "arm")) and x86_host):
        return None
    emulated = environ.get("QEMU_CPU", "qemu's default CPU")
    return f"{machine} {emulated} emulated (qemu-user) on {fields.get('model name', 'an x86 CPU')}"


DENORMAL_MODES = ("flush", "keep")


def set_denormals(mode: str) -> bool:
    """'flush': treat denormal floats as zero (FTZ/DAZ), 'keep': IEEE behaviour. True if the CPU honours 'flush'.

    Adam's first moments of rarely seen words decay by 0.9 per step into the denormal range, where
    arithmetic is many times slower on many x86 cores: kept, they make the second training epoch up
    to 3x slower than the first on an Intel Xeon, so timings measure the CPU's denormal handling.
    The setting is per thread; torch's worker threads are created later by this thread and inherit it.
    """
    if mode not in DENORMAL_MODES:
        raise ValueError(f"denormal mode must be one of {', '.join(DENORMAL_MODES)}, got {mode!r}")
    return torch.set_flush_denormal(mode == "flush")


def flushing_denormals() -> bool:
    """Whether this thread treats denormal floats as zero now: a quarter of the smallest normal float32 (a denormal)
    times one reads as zero only then."""
    return torch.tensor([torch.finfo(torch.float32).tiny]).div(4).mul(1.0).item() == 0.0


@contextmanager
def denormals(mode: str):
    """Run a block under `mode`, then return to the mode this thread had before."""
    previous = "flush" if flushing_denormals() else "keep"
    set_denormals(mode)
    try:
        yield
    finally:
        set_denormals(previous)


def _cpu_times() -> list[int] | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    return [int(x) for x in fields[1:]] if fields and fields[0] == "cpu" else None


def machine_load(window_seconds: float = 0.5) -> dict:
    """The load average and the share of CPU time the hypervisor gave to other guests (steal) over a short window."""
    load = {"load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}
    before = _cpu_times()
    time.sleep(window_seconds)
    after = _cpu_times()
    if before is None or after is None or len(after) < 8:
        return {**load, "steal_percent": None, "busy_percent": None}
    delta = [b - a for a, b in zip(before, after)]
    total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal
    idle = delta[3] + delta[4]
    return {**load, "steal_percent": round(100 * delta[7] / total, 1), "busy_percent": round(100 * (total - idle) / total, 1)}


def busy_warning(load: dict, cores: int) -> str | None:
    """A sentence when the machine is not quiet enough for timings, else None."""
    problems = []
    # the 1-minute load average trails: a run started right after another still sees it, so only more than the
    # cores counts; what the CPUs do now is measured over the last half second (busy_percent)
    if load.get("load_average") and load["load_average"][0] > cores:
        problems.append(f"load average {load['load_average'][0]} over the last minute on {cores} core(s)")
    if (load.get("busy_percent") or 0) > 25:
        problems.append(f"{load['busy_percent']}% of the CPU time busy before the run started")
    if (load.get("steal_percent") or 0) > 5:
        problems.append(f"{load['steal_percent']}% of the CPU time stolen by the hypervisor")
    if not problems:
        return None
    return "the machine is busy (" + "; ".join(problems) + "): timings of this run may be noisy"


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def update_machine_info(machine_info: dict, threads: tuple[int, ...], impls: tuple[str, ...], denormals: dict,
                        load: dict | None = None) -> None:
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
    machine_info["runtimes"] = runtime_info(impls, threads, denormals.get("mode", "flush") == "flush")
    machine_info["denormals"] = denormals
    machine_info["cpu_model"] = cpu_model()
    machine_info["emulated"] = emulator()  # None natively; then the timings mean nothing
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["cores_available"] = available_cores()  # the process's CPU affinity
    if load is not None:
        machine_info["load_at_start"] = load
        machine_info["load_average_at_start"] = load["load_average"]
