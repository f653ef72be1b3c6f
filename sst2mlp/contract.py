"""What a saved benchmark carries: the one definition the suite writes, the report reads and the tests check.

Kept free of torch so that the report can import it without loading PyTorch.
"""
from __future__ import annotations

GROUPS = ("training", "inference", "throughput")

# Every benchmark's params, so that any of them works with --group-by=param:NAME.
PARAMS = ("num_layers", "hidden_size", "vocab_size", "threads", "impl", "batch_size")

# The least a benchmark needs for the report to place it; runs saved by every version of the suite have these.
READABLE_EXTRA_INFO = ("num_layers", "hidden_size", "vocab_size", "flops", "params", "accuracy", "threads")

# What the current suite writes in every group: the configuration, its costs, and which model the accuracy is of.
MODEL_EXTRA_INFO = (
    *READABLE_EXTRA_INFO,
    "impl",
    "effective_flops",
    "trained_impl",  # the training impl of the model whose weights this benchmark ran and whose accuracy it records
    "seed",
    "train_accuracy",
    "final_loss",
    "train_examples",
    "dev_examples",
    # how stable the timed rounds were: IQR/median, (max-min)/median, and unstable when IQR/median > 10%
    "iqr_over_median",
    "range_over_median",
    "unstable",
    "samples",  # what the regression gate compares: medians of 20 consecutive blocks of rounds (training: the rounds)
)
# the quiet gate (sst2mlp.canary): the machine's speed while the rounds ran, the share of them measured in a slow
# phase (the waiting budget ran out), and how long the benchmark waited for full speed
QUIET_GATE = ("machine_speed", "measured_while_slow", "waited_for_quiet_seconds")

GROUP_EXTRA_INFO = {
    "training": ("epoch_seconds", "peak_rss_bytes", "seeds", "seed_trained_impls", "accuracy_seeds", "accuracy_mean", "accuracy_std",
                 "accuracy_ci95", "train_accuracy_seeds"),
    "inference": ("p50", "p90", "p99", "model_bytes", "file_bytes", *QUIET_GATE),
    "throughput": ("batch_examples", "examples_per_second", "model_bytes", "file_bytes", *QUIET_GATE, "peak_rss_bytes"),
}


def extra_info_fields(group: str) -> tuple[str, ...]:
    """Every extra_info field the current suite writes for a benchmark of `group`."""
    if group not in GROUP_EXTRA_INFO:
        raise ValueError(f"unknown benchmark group {group!r}; expected one of {', '.join(GROUPS)}")
    return MODEL_EXTRA_INFO + GROUP_EXTRA_INFO[group]


def missing_fields(benchmark: dict) -> list[str]:
    """What a saved benchmark lacks of the contract: 'param X', 'X' (an extra_info field) or 'group ...'."""
    group = benchmark.get("group")
    if group not in GROUP_EXTRA_INFO:
        return [f"group {group!r} (expected one of {', '.join(GROUPS)})"]
    params, info = benchmark.get("params") or {}, benchmark.get("extra_info") or {}
    return [f"param {p}" for p in PARAMS if p not in params] + [f for f in extra_info_fields(group) if f not in info]


def model_trained_by(group: str, info: dict) -> str:
    """The training impl of the model a benchmark describes; runs saved before `trained_impl` existed are inferred:
    a training benchmark describes the model it trained, every other benchmark the dense-trained model."""
    if "trained_impl" in info:
        return info["trained_impl"]
    return info.get("impl", "dense") if group == "training" else "dense"
