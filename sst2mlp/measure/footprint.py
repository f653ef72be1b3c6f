"""What a model costs in memory: what a training would need, what the machine has, and the resident memory a piece
of work adds at its peak (Linux: the kernel's high-water mark, reset first)."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sst2mlp.reference.model import ModelConfig

PROC_STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (what can be allocated without swapping), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def training_bytes_estimate(config: ModelConfig, dev_examples: int, batch_size: int) -> int:
    """What training one configuration holds at once, in float32: weights, gradients and Adam's two moments
    (4 copies of the parameters), a dense batch, and the dense dev set the dense impl is timed on."""
    return 4 * (4 * config.params + batch_size * config.vocab_size + dev_examples * (config.vocab_size + config.hidden_size))


def _status_kib(field: str) -> int:
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{PROC_STATUS} has no {field} line")


def _malloc_trim():
    """glibc's malloc_trim, or None on a C library without it."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class PeakMemory:
    """Resident memory added at the peak of a region: hand freed heap memory back to the kernel (malloc_trim), reset
    the high-water mark (clear_refs 5), then VmHWM - VmRSS before.

    Without the trim a long session under-reports: memory freed by earlier work stays resident in malloc's free
    lists, and a new region reuses it without raising the resident size (a training read 0 bytes that way).
    `unavailable` says why the method cannot be used (not Linux, no permission, no malloc_trim); then
    `added_since` gives None, never a made-up number.
    """

    def __init__(self):
        self.trim = _malloc_trim()
        self.unavailable = self._check()
        self._high_water_kib = 0  # the process's own peak before the last reset of the high-water mark

    def process_peak_bytes(self) -> int:
        """The most resident memory this process has held so far (what /usr/bin/time -v reports at its end, but
        kept across the resets each reading makes, which lower the kernel's own record)."""
        kib = max(self._high_water_kib, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        if not self.unavailable:
            kib = max(kib, _status_kib("VmHWM"))
        return kib * 1024

    def release(self) -> int | None:
        """Hand memory freed by dropped objects back to the kernel (between configurations, outside any timing); the
        resident bytes left, where Linux says."""
        gc.collect()
        if self.trim is not None:
            self.trim(0)
        try:
            return _status_kib("VmRSS") * 1024
        except OSError:
            return None

    def _check(self) -> str | None:
        try:
            _status_kib("VmHWM")
            CLEAR_REFS.write_text("5")
        except OSError as error:
            return f"peak memory needs Linux's {CLEAR_REFS} and VmHWM in {PROC_STATUS} ({error})"
        if self.trim is None:
            return "peak memory needs glibc's malloc_trim to return freed memory before each reading"
        return None

    def start(self) -> int | None:
        if self.unavailable:
            return None
        gc.collect(0)  # the youngest objects only: a full collection takes 0.1 s with the data loaded
        self.trim(0)
        self._high_water_kib = max(self._high_water_kib, _status_kib("VmHWM"))
        CLEAR_REFS.write_text("5")  # the high-water mark restarts from the current resident size
        return _status_kib("VmRSS") * 1024

    def added_since(self, start: int | None) -> int | None:
        if self.unavailable or start is None:
            return None
        return max(0, _status_kib("VmHWM") * 1024 - start)


@dataclass
class MemoryMeter:
    """The session's peak-memory readings, and the untimed seconds they (and the byte counts) cost the run."""

    peak: PeakMemory = field(default_factory=PeakMemory)
    seconds: float = 0.0

    @contextmanager
    def measuring(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start

    def start(self) -> int | None:
        with self.measuring():
            return self.peak.start()

    def added_since(self, start: int | None) -> int | None:
        return self.peak.added_since(start)

    def peak_of(self, work: Callable[[], object]) -> int | None:
        """Resident memory `work` adds at its peak (outside every timed region)."""
        with self.measuring():
            start = self.peak.start()
            work()
            return self.peak.added_since(start)
