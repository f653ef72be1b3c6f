"""What a saved benchmark carries: typed records whose fields are the contract the suite writes, the report reads
and the tests check.

Each group's extra_info is one record (`TrainingInfo`, `InferenceInfo`, `ThroughputInfo`) made of parts; `flatten`
turns a record into the saved dict, and `extra_info_fields` lists the fields from the same classes, so there is no
second list to keep in step. Kept free of torch so that the report can import it without loading PyTorch.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields

from . import stats

GROUPS = ("training", "inference", "throughput", "coldstart")

# Every benchmark's params, so that any of them works with --group-by=param:NAME.
PARAMS = ("num_layers", "hidden_size", "vocab_size", "threads", "impl", "batch_size")

# The least a benchmark needs for the report to place it; runs saved by every version of the suite have these.
SCHEMA_VERSION = 4  # the layout of a saved run, machine_info["sst2mlp_schema"]; older runs: sst2mlp.report.schema
READABLE_EXTRA_INFO = ("num_layers", "hidden_size", "vocab_size", "flops", "params", "accuracy", "threads")

BASELINE = {"num_layers": 2, "hidden_size": 256, "vocab_size": 10_000}  # the reference report's baseline model


def nearest_to_baseline(configs: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """The (layers, width, vocabulary) nearest to BASELINE: the least sum of |log ratio| of layers + 1, width and
    vocabulary size."""
    baseline = (BASELINE["num_layers"] + 1, BASELINE["hidden_size"], BASELINE["vocab_size"])
    return min(configs, key=lambda c: sum(abs(math.log(a / b)) for a, b in zip((c[0] + 1, c[1], c[2]), baseline)))
SST2_DEV_EXAMPLES = 872  # GLUE SST-2's dev split: `dev_examples` of runs saved before they recorded it

# When a record holds a part or field: always; only when the rounds were timed (not under --benchmark-disable); only
# for an approximate impl; or "optional", a field added after runs that the report still reads strictly (or, like
# kernel_build_seconds, one that only some impls have).
ALWAYS, TIMED, APPROXIMATE, OPTIONAL = None, "timed", "approximate", "optional"


def part(cls, when: str | None = ALWAYS):
    """A field holding a part: a record of its own whose fields are saved side by side with the others."""
    return field(default=MISSING if when is ALWAYS else None, metadata={"part": cls, "when": when})


def optional(default):
    return field(default=default, metadata={"when": OPTIONAL})


@dataclass(frozen=True)
class ModelInfo:
    """The configuration, its costs, and which model the accuracy is of."""

    num_layers: int
    hidden_size: int
    vocab_size: int
    threads: int
    impl: str
    flops: int  # the report's dense count per example
    effective_flops: float  # what the impl executes per example, averaged over the dev set
    params: int
    trained_impl: str  # the training impl of the model whose weights this benchmark ran and whose accuracy it records
    seed: int
    accuracy: float  # on dev
    train_accuracy: float
    final_loss: float
    train_examples: int
    dev_examples: int
    exact: bool = optional(True)  # same logits as dense within float32 rounding (not int8)
    peer_runtime: bool = optional(False)  # a deployment runtime (ONNX Runtime, OpenVINO, ...), not the suite's own


@dataclass(frozen=True)
class Stability:
    """How stable the timed rounds were; `samples` is what the regression gate compares."""

    iqr_over_median: float
    range_over_median: float
    unstable: bool  # IQR/median above stats.UNSTABLE_SPREAD
    samples: list[float]  # medians of 20 consecutive blocks of rounds (training: the rounds)


@dataclass(frozen=True)
class QuietGateInfo:
    """The quiet gate (sst2mlp.measure.quiet_gate): the machine's speed while the rounds ran, the share of them measured in a slow
    phase (the waiting budget ran out), how long the benchmark waited, after how many long rounds it probed."""

    machine_speed: float | None
    measured_while_slow: float | None
    waited_for_quiet_seconds: float
    slow_rounds: int = optional(0)
    quiet_speed: float | None = optional(None)


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p90: float
    p99: float


@dataclass(frozen=True)
class Footprint:
    model_bytes: int  # what the impl holds for its weights once loaded
    file_bytes: int  # the impl saved as its users would ship it


@dataclass(frozen=True)
class Parity:
    """An impl's dev-set logits against the model it was made from (dense)."""

    agreement_with_dense: float  # share of dev examples with the same prediction
    max_logit_difference: float  # largest |logit - dense logit| over the dev set


@dataclass(frozen=True)
class Roofline:
    """A timed call against what the machine can do (sst2mlp.measure.limits): its FLOP rate, the time per call the machine
    could not beat (the larger of FLOPs at the peak rate and bytes read at the read bandwidth, plus the call
    floor), floor / median, and the call floor it counted (the impl's runtime's empty call, else the extension's)."""

    achieved_gflops: float
    floor_seconds: float
    fraction_of_floor: float
    call_floor_seconds: float

    @classmethod
    def of(cls, flops: float, floor_seconds: float, median: float, call_floor_seconds: float) -> Roofline:
        return cls(achieved_gflops=flops / median / 1e9, floor_seconds=floor_seconds, fraction_of_floor=floor_seconds / median,
                   call_floor_seconds=call_floor_seconds)


@dataclass(frozen=True)
class AccuracyOverSeeds:
    """Dev accuracy of models over seeds, in seed order, with its mean, standard deviation and 95% t-interval."""

    seeds: list[int]
    accuracy_seeds: list[float]
    accuracy_mean: float
    accuracy_std: float | None  # None for one seed
    accuracy_ci95: list[float] | None

    @classmethod
    def of(cls, seeds: list[int], accuracies: list[float]) -> AccuracyOverSeeds:
        summary = stats.mean_interval(accuracies)
        return cls(list(seeds), list(accuracies), summary["mean"], summary["std"], summary["ci95"])


@dataclass(frozen=True)
class SeedAccuracies:
    """A configuration's models over seeds: the training rounds, then the untimed extra seeds."""

    accuracy: AccuracyOverSeeds = part(AccuracyOverSeeds)
    seed_trained_impls: list[str]  # the training impl of each seed's model (extra seeds use the sparse trainer)
    train_accuracy_seeds: list[float]


@dataclass(frozen=True)
class ApproximateSeeds:
    """An approximate impl's own dev accuracy on every seed's dense-trained model, beside the float models'."""

    accuracy: AccuracyOverSeeds = part(AccuracyOverSeeds)
    reference_accuracy_seeds: list[float]


@dataclass(frozen=True)
class TrainingRoofline:
    """A training against what the machine can do (sst2mlp.measure.limits.training_floor_seconds): the Adam step the floor
    counts, its FLOP rate (sst2mlp.measure.limits.training_flops of the forward FLOPs of every example, with a sparse input
    layer), the floor and floor / median."""

    adam_step_seconds: float
    achieved_gflops: float
    floor_seconds: float
    fraction_of_floor: float

    @classmethod
    def of(cls, adam_step_seconds: float, flops: float, floor_seconds: float, median: float) -> TrainingRoofline:
        return cls(adam_step_seconds=adam_step_seconds, achieved_gflops=flops / median / 1e9, floor_seconds=floor_seconds,
                   fraction_of_floor=floor_seconds / median)


@dataclass(frozen=True)
class TrainingInfo:
    model: ModelInfo = part(ModelInfo)
    seeds: SeedAccuracies = part(SeedAccuracies)
    epoch_seconds: list[list[float]]  # per timed round
    peak_rss_bytes: int | None  # resident memory the first (untimed) training added at its peak
    roofline: TrainingRoofline | None = part(TrainingRoofline, OPTIONAL)
    stability: Stability | None = part(Stability, TIMED)


@dataclass(frozen=True)
class InferenceInfo:
    model: ModelInfo = part(ModelInfo)
    footprint: Footprint = part(Footprint)
    parity: Parity | None = part(Parity, OPTIONAL)
    roofline: Roofline | None = part(Roofline, OPTIONAL)
    percentiles: Percentiles | None = part(Percentiles, TIMED)
    gate: QuietGateInfo | None = part(QuietGateInfo, TIMED)
    stability: Stability | None = part(Stability, TIMED)
    approximate_seeds: ApproximateSeeds | None = part(ApproximateSeeds, APPROXIMATE)
    # per call, a batch's rows into what the impl takes (sst2mlp.measure.timing.input_preparation_seconds), untimed
    input_preparation_seconds: float | None = field(default=None, metadata={"when": TIMED})


@dataclass(frozen=True)
class ThroughputInfo:
    model: ModelInfo = part(ModelInfo)
    footprint: Footprint = part(Footprint)
    batch_examples: int
    peak_rss_bytes: int | None  # one whole-dev forward pass (None at batch 64)
    parity: Parity | None = part(Parity, OPTIONAL)
    roofline: Roofline | None = part(Roofline, OPTIONAL)
    examples_per_second: float | None = field(default=None, metadata={"when": TIMED})
    gate: QuietGateInfo | None = part(QuietGateInfo, TIMED)
    stability: Stability | None = part(Stability, TIMED)
    approximate_seeds: ApproximateSeeds | None = part(ApproximateSeeds, APPROXIMATE)
    input_preparation_seconds: float | None = field(default=None, metadata={"when": TIMED})


REFERENCE_LOOP = "reference-loop"  # the impl label of benchmarks/reference_loop.py's trainer (the report's own loop)

# A cold start's phases, in order: the child (sst2mlp.impls.coldstart_child) stamps the end of each after the first.
COLDSTART_PHASES = ("interpreter", "imports", "load", "prepare", "first")


@dataclass(frozen=True)
class ColdStartParts:
    """Medians over a coldstart benchmark's rounds (each a fresh process) of the phases from starting the process to
    its first prediction, in seconds (sst2mlp.impls.coldstart_child), and the total; the rounds' process ids."""

    coldstart_interpreter_seconds: float
    coldstart_imports_seconds: float
    coldstart_load_seconds: float
    coldstart_prepare_seconds: float
    coldstart_first_seconds: float
    coldstart_total_seconds: float
    coldstart_pids: list[int]

    @classmethod
    def of(cls, phase_seconds: dict[str, float], total_seconds: float, pids: list[int]) -> ColdStartParts:
        return cls(**{f"coldstart_{phase}_seconds": phase_seconds[phase] for phase in COLDSTART_PHASES},
                   coldstart_total_seconds=total_seconds, coldstart_pids=pids)


@dataclass(frozen=True)
class ColdStartInfo:
    model: ModelInfo = part(ModelInfo)
    footprint: Footprint = part(Footprint)
    coldstart: ColdStartParts | None = part(ColdStartParts, TIMED)
    stability: Stability | None = part(Stability, TIMED)
    kernel_build_seconds: float | None = optional(None)  # fused impls: the kernel built in an empty cache, once a session


RECORDS = {"training": TrainingInfo, "inference": InferenceInfo, "throughput": ThroughputInfo, "coldstart": ColdStartInfo}


def flatten(record) -> dict:
    """The saved extra_info of a record: its parts' fields side by side; a part that is None is left out."""
    info = {}
    for item in fields(record):
        value = getattr(record, item.name)
        if "part" not in item.metadata:
            info[item.name] = value
        elif value is not None:
            info.update(flatten(value))
    return info


def _field_names(cls, include_optional: bool) -> list[str]:
    names = []
    for item in fields(cls):
        if item.metadata.get("when") in (APPROXIMATE, OPTIONAL) and not include_optional:
            continue
        names += _field_names(item.metadata["part"], include_optional) if "part" in item.metadata else [item.name]
    return names


def extra_info_fields(group: str, include_optional: bool = False) -> tuple[str, ...]:
    """Every extra_info field the current suite writes for a timed benchmark of `group` (with `include_optional`, also
    those it writes only for approximate impls, and those that runs saved by earlier versions may lack)."""
    if group not in RECORDS:
        raise ValueError(f"unknown benchmark group {group!r}; expected one of {', '.join(GROUPS)}")
    return tuple(dict.fromkeys(_field_names(RECORDS[group], include_optional)))


def missing_fields(benchmark: dict) -> list[str]:
    """What a saved benchmark lacks of the contract: 'param X', 'X' (an extra_info field) or 'group ...'."""
    group = benchmark.get("group")
    if group not in RECORDS:
        return [f"group {group!r} (expected one of {', '.join(GROUPS)})"]
    params, info = benchmark.get("params") or {}, benchmark.get("extra_info") or {}
    return [f"param {p}" for p in PARAMS if p not in params] + [f for f in extra_info_fields(group) if f not in info]


