"""A fixed reference workload timed before each latency and throughput benchmark, to catch slow phases of a shared machine.

On a shared VM the whole machine can run 1.5x slower for tens of seconds (another guest on the
same physical core, the host's frequency): every benchmark measured then is off by that factor,
however many rounds it takes. Before measuring, the suite times this canary and, while it is more
than `tolerance` slower than the fastest canary seen in the session, waits and tries again (up to
`max_wait` seconds). The benchmark then records how fast the machine was (`machine_speed`), so a
reader can see which numbers were measured in a slow phase. Nothing is rescaled.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

CANARY_SHAPE = (256, 256, 64)  # a matrix product about the size of a hidden layer at batch 64


def matmul_canary(repeats: int = 30) -> float:
    """Median seconds of one fixed (256 x 256) @ (256 x 64) float32 product."""
    m, k, n = CANARY_SHAPE
    a, b = torch.ones(m, k), torch.ones(k, n)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        seconds.append(time.perf_counter() - start)
    return sorted(seconds)[len(seconds) // 2]


@dataclass
class Canary:
    measure: Callable[[], float] = matmul_canary
    tolerance: float = 0.10
    max_wait: float = 3.0
    pause: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    best: float | None = field(default=None, init=False)

    def wait_until_quiet(self) -> dict:
        """Wait (up to max_wait) until the canary is within tolerance of the session's best; say how it went."""
        waited = 0.0
        while True:
            seconds = self.measure()
            self.best = seconds if self.best is None else min(self.best, seconds)
            speed = self.best / seconds
            if speed >= 1 / (1 + self.tolerance) or waited >= self.max_wait:
                return {"machine_speed": round(speed, 3), "waited_for_quiet_seconds": round(waited, 1)}
            self.sleep(self.pause)
            waited += self.pause
