"""What this machine can do, measured once per session before the first timed benchmark: the floors against which
every benchmark's time is judged (its `floor_seconds` and `fraction_of_floor`).

- the float32 peak: the best of torch.mm at the shapes the hidden layers run at batch 64 (64 x H by H x H, for
  every width of the grid), one large square product (1024 x 1024 by 1024 x 1024), and the core's own limit, chains
  of vector FMAs held in registers on every thread (the extension's fma_peak): no float32 kernel can go faster, where
  one torch.mm shape's rate was beaten by dense and TorchScript on the whole dev set (a floor above the median);
- the int8 peak, for the impls whose matrix products run in int8: the best of torch's dynamic int8 Linear at the
  same shapes and the core's u8 x s8 multiply-add limit (VNNI, or AVX2's pmaddubsw + pmaddwd: the instructions of
  fbgemm and ONNX Runtime's int8 kernels), and never below the float32 peak;
- the read bandwidth (a sum over a buffer: the faster of torch.sum and the extension's loop of 8 vector accumulators)
  of each level at its most favourable size: half the L2 cache; twice the
  L2 cache, the smallest buffer that must come from the L3 (on a VM whose L3 is shared with other tenants, a larger
  one measures the neighbours); and 4 times the L3 cache (memory). A call's bytes are read in the most favourable
  placement, as many as the L2 holds at its rate, the next at the L3's, the rest at memory's (read_seconds: a
  cache-aware roofline whose floor no call can beat; a copy rate at half the L3, the first method, put the floor of
  dense and fused above their medians on a 2-core Xeon VM);
- the call floor: an extension function with the fused kernel's signature that returns at once, and one that only
  allocates the output; no one-call impl can answer faster. A deployment runtime's own call floor is an empty model
  (each row's weights summed) through the same call path as the impl's (its record's `empty_model`): a peer impl's
  floor adds that instead of the extension's.

A training's floor (`training_floor_seconds`) adds what exact Adam must do whatever the input layer: read the
parameters, gradients and both moments and write three of them every step (a fused torch.optim.Adam step timed on
the configuration's parameter count), and the forward and backward passes' FLOPs (3x the forward's) at the peak.

Each is the best of several timed repetitions in three rounds (a machine can be slowed, never sped up, by a
neighbour), at the session's thread counts.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .machine import torch_threads

LARGE_SQUARE = 1024
CACHE_FOLDER = Path("/sys/devices/system/cpu/cpu0/cache")
DEFAULT_CACHES = {"l2": 1 * 2**20, "l3": 32 * 2**20}  # when sysfs does not say (this VM's Zen 4 sizes)
REPEATS = 5
ROUNDS = 3
CALLS = 20_000
RUNTIME_CALLS = 2_000  # a runtime's empty call takes microseconds, not the extension's tenth of one
PEAK_ITERATIONS = 200_000  # of the peak loops: about 2 ms a call at 3 GHz


@dataclass(frozen=True)
class MachineLimits:
    threads: int
    matmul_gflops: dict[str, float]  # "MxK@KxN" -> best GFLOP/s
    peak_gflops: float  # the best of them and of fma_peak_gflops
    int8_peak_gflops: float | None  # torch's dynamic int8 Linear at the same shapes, the int8 instruction peak, at least peak_gflops
    read_gb_per_s: dict[str, float]  # level ("l2", "l3", "memory") -> bytes read per second / 1e9
    cache_bytes: dict[str, int]  # "l2", "l3" -> the cache's size
    call_floor_seconds: float | None  # an extension call with the fused kernel's arguments that returns at once
    allocation_floor_seconds: float | None  # one that allocates the output and returns it (None: no kernel here)
    fma_peak_gflops: float | None = None  # the core's vector FMA limit on every thread (None: no kernel here)
    int8_instruction_peak_gflops: float | None = None  # its u8 x s8 multiply-add limit, 2 operations each
    runtime_call_floor_seconds: dict[str, float] = field(default_factory=dict)  # impl -> its runtime's empty call

    def call_floor_of(self, impl: str) -> float:
        """The least time a call of `impl` takes with no model work: its runtime's, else the extension's."""
        return self.runtime_call_floor_seconds.get(impl, self.call_floor_seconds or 0.0)

    def as_info(self) -> dict:
        return asdict(self)


def best_seconds(work, repeats: int = REPEATS, min_seconds: float = 0.02) -> float:
    """The fastest of `repeats` timings of `work`, each repeated until it has run `min_seconds` (per call)."""
    work()  # warm: first-touch pages, MKL's buffers
    best = float("inf")
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            work()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / calls)
    return best


def matmul_gflops(m: int, k: int, n: int) -> float:
    a, b = torch.rand(m, k), torch.rand(k, n)
    out = torch.empty(m, n)
    seconds = best_seconds(lambda: torch.mm(a, b, out=out))
    return 2 * m * k * n / seconds / 1e9


def int8_matmul_gflops(m: int, k: int, n: int) -> float:
    """Multiply-adds x 2 per second of torch's dynamic int8 Linear (int8 weights, activations quantized per call)."""
    layer = torch.ao.nn.quantized.dynamic.Linear(k, n)
    x = torch.rand(m, k)
    with torch.inference_mode():
        seconds = best_seconds(lambda: layer(x))
    return 2 * m * k * n / seconds / 1e9


def read_gb_per_s(nbytes: int, extension=None) -> float:
    """Bytes per second (/ 1e9) at which a float32 buffer of `nbytes` is read: the faster of torch.sum and the
    extension's read loop (vector accumulators in registers), where there is one."""
    buffer = torch.ones(max(nbytes // 4, 16))  # the values do not matter, and filling 128 MB with random ones takes 0.2 s
    seconds = best_seconds(lambda: buffer.sum(), min_seconds=0.01)
    if extension is not None:
        seconds = min(seconds, best_seconds(lambda: extension.read_sum(buffer), min_seconds=0.01))
    return buffer.numel() * 4 / seconds / 1e9


def cache_sizes(folder: Path = CACHE_FOLDER) -> dict[str, int]:
    """The L2 and L3 sizes of CPU 0 from sysfs ("1024K"), else DEFAULT_CACHES."""
    sizes = dict(DEFAULT_CACHES)
    for index in folder.glob("index*") if folder.is_dir() else ():
        try:
            level, kind = (index / "level").read_text().strip(), (index / "type").read_text().strip()
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        if level in ("2", "3") and kind in ("Unified", "Data"):
            sizes[f"l{level}"] = int(text[:-1]) * {"K": 2**10, "M": 2**20}[text[-1]] if text[-1] in "KM" else int(text)
    return sizes


def bandwidths(caches: dict[str, int], extension=None) -> dict[str, float]:
    """Read rates of half the L2 cache, of twice the L2 cache (or half the L3 if that is smaller), and of 4 times the L3."""
    l3_size = min(2 * caches["l2"], caches["l3"] // 2)
    sizes = {"l2": caches["l2"] // 2, "l3": l3_size, "memory": 4 * caches["l3"]}
    return {level: read_gb_per_s(size, extension) for level, size in sizes.items()}


def call_floors(extension, inputs: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    """Per-call seconds of the kernel extension's do-nothing and allocate-only functions on `inputs`."""
    def per_call(function) -> float:
        def loop():
            for _ in range(CALLS):
                function(*inputs)
        return best_seconds(loop, min_seconds=0.0) / CALLS
    return per_call(extension.call_floor), per_call(extension.allocation_floor)


def instruction_peaks(extension) -> tuple[float, float | None]:
    """GFLOP/s of the extension's FMA loop and GOP/s of its int8 multiply-add loop (None on a CPU without one)."""
    def rate(loop) -> float | None:
        operations = loop(PEAK_ITERATIONS)
        return operations / best_seconds(lambda: loop(PEAK_ITERATIONS), min_seconds=0.0) / 1e9 if operations else None
    return rate(extension.fma_peak), rate(extension.int8_peak)


def runtime_call_floors(impls, settings) -> dict[str, float]:
    """Per-call seconds of each impl's empty model (its record's `empty_model`) through its runtime's call path, the
    best of `ROUNDS` timings; what the runtime keeps of it (compiled graphs) is forgotten afterwards."""
    floors = {}
    for impl in impls:
        forward, inputs = impl.empty_model(settings)

        def loop(forward=forward, inputs=inputs):
            for _ in range(RUNTIME_CALLS):
                forward(*inputs)
        with torch.inference_mode():
            floors[impl.name] = min(best_seconds(loop, min_seconds=0.0) for _ in range(ROUNDS)) / RUNTIME_CALLS
        del forward
        if impl.forget:
            impl.forget()
    return floors


def example_call_inputs(words: int = 14) -> tuple[torch.Tensor, ...]:
    """One bag of `words` words, as the fused kernel takes it (a dev example has about 14)."""
    return torch.arange(words), torch.tensor([0, words]), torch.ones(words)


def measure(hidden_sizes, threads: int, extension=None, rounds: int = ROUNDS) -> MachineLimits:
    """The limits at `threads` torch threads (restored afterwards); without the kernel's extension, no call floor.

    Each rate is the best of `rounds` rounds, each of every measurement in turn: a round takes about a second, and a
    neighbour on a shared VM can slow one second by half (the peak of one run on the 2-core Xeon VM came out 84
    GFLOP/s against 157 in the runs before and after it, which put dense's floor above its median)."""
    with torch_threads(threads):
        shapes = [(64, h, h) for h in sorted(set(hidden_sizes))] + [(LARGE_SQUARE,) * 3]
        caches = cache_sizes()
        measured = [_one_round(shapes, caches, extension) for _ in range(rounds)]
        rates = {name: max(m[0][name] for m in measured) for name in measured[0][0]}
        int8_peak = max(m[1] for m in measured)
        read = {level: max(m[2][level] for m in measured) for level in measured[0][2]}
        call, allocation = (min(m[3][0] for m in measured), min(m[3][1] for m in measured)) if extension is not None else (None, None)
        fma, int8_instructions = (_best(m[4][0] for m in measured), _best(m[4][1] for m in measured)) if extension is not None else (None, None)
        peak = max(max(rates.values()), fma or 0.0)
        return MachineLimits(threads, rates, peak, max(int8_peak, int8_instructions or 0.0, peak), read, caches, call,
                             allocation, fma, int8_instructions)


def _best(rates) -> float | None:
    known = [rate for rate in rates if rate is not None]
    return max(known) if known else None


def _one_round(shapes, caches: dict[str, int], extension):
    rates = {f"{m}x{k}@{k}x{n}": matmul_gflops(m, k, n) for m, k, n in shapes}
    int8_peak = max(int8_matmul_gflops(m, k, n) for m, k, n in shapes)
    floors = call_floors(extension, example_call_inputs()) if extension is not None else (None, None)
    peaks = instruction_peaks(extension) if extension is not None else (None, None)
    return rates, int8_peak, bandwidths(caches, extension), floors, peaks


def read_seconds(limits: MachineLimits, nbytes: float) -> float:
    """The least time in which a call reads `nbytes` that the calls before it read too: in the most favourable
    placement, as many as the L2 cache holds at its read rate, the next up to the L3's size at the L3's, the rest from
    memory. (Taking all of them at the rate of the smallest level that holds them all was beaten where they just
    overflow the L2: most of them still come from it.)"""
    l2, l3 = limits.cache_bytes["l2"], limits.cache_bytes["l3"]
    in_l2 = min(nbytes, l2)
    in_l3 = min(nbytes - in_l2, max(l3 - l2, 0))
    rates = limits.read_gb_per_s
    return (in_l2 / rates["l2"] + in_l3 / rates["l3"] + (nbytes - in_l2 - in_l3) / rates["memory"]) / 1e9


def floor_seconds(limits: MachineLimits, flops: float, bytes_read: float, int8: bool = False, impl: str | None = None) -> float:
    """The time per call this machine could not beat: the larger of the FLOPs at the peak rate (the int8 rate for an
    impl that multiplies in int8) and the bytes one call reads at the rates of the levels that can hold them
    (read_seconds), plus the call floor."""
    peak = limits.int8_peak_gflops or limits.peak_gflops if int8 else limits.peak_gflops
    compute = flops / (peak * 1e9)
    return max(compute, read_seconds(limits, bytes_read)) + limits.call_floor_of(impl)


def adam_step_seconds(params: int, threads: int) -> float:
    """One fused torch.optim.Adam step over `params` float32 parameters with their gradients, at `threads` threads."""
    with torch_threads(threads):
        weight = torch.nn.Parameter(torch.rand(params) - 0.5)
        weight.grad = (torch.rand(params) - 0.5) * 1e-2
        optimizer = torch.optim.Adam([weight], lr=1e-3, fused=True)
        return best_seconds(optimizer.step, min_seconds=0.02)


def call_floor_seconds(limits: MachineLimits, impl, model, model_bytes: int, dev, batch_size: int, flops: float) -> float:
    """The floor of one call of `impl` on `batch_size` rows doing `flops`: the bytes it must read averaged over the
    dev set's whole batches (the impl's record says what it reads), at the int8 rate where it multiplies in int8."""
    batches = [dev.rows(start, start + batch_size) for start in range(0, len(dev) - batch_size + 1, batch_size)]
    read = impl.bytes_read(model, model_bytes, batches)
    return floor_seconds(limits, flops, read, int8=impl.int8_products, impl=impl.name)


def training_flops(forward_flops: float) -> float:
    """A training's FLOPs: its examples' forward FLOPs three times over (forward, and backward's two products)."""
    return 3 * forward_flops


def training_floor_seconds(limits: MachineLimits, adam_step: float, steps: int, forward_flops: float) -> float:
    """A training this machine could not beat: every step's exact Adam update, and its FLOPs at the peak rate."""
    return steps * adam_step + training_flops(forward_flops) / (limits.peak_gflops * 1e9)
