"""Tables from one pivot: a record per Key of a run holding every metric, from which the results,
speed-up and comparison tables select and derive their columns; CSV and Markdown renderers."""
from __future__ import annotations

import csv
from pathlib import Path

from sst2mlp import stats
from sst2mlp.contract import nearest_to_baseline

from .runs import REFERENCE_LOOP, Key, Run, accuracy_over_seeds, sorted_keys

KEY_COLUMNS = ("num_layers", "hidden_size", "vocab_size", "impl", "trained_impl", "threads")
# CSV; Markdown shows them as one cell. `accuracy` is the seed-`--sst2-seed` model's, the one every impl's timings ran.
ACCURACY_COLUMNS = ("accuracy", "accuracy_mean", "accuracy_sd", "accuracy_seeds")
METRIC_COLUMNS = (
    "params", "flops", "effective_flops", *ACCURACY_COLUMNS, "model_bytes", "file_bytes",
    "latency_median_ms", "latency_mean_ms", "latency_stddev_ms", "latency_p90_ms", "latency_p99_ms", "latency_iqr_over_median",
    "training_median_s", "training_iqr_over_median", "training_floor_s", "training_fraction_of_floor", "peak_rss_bytes",
    "throughput_b64_per_s", "throughput_dev_per_s",
    "dev_pass_peak_rss_bytes", "agreement_with_dense", "max_logit_difference",
    "coldstart_s", "coldstart_imports_s", "coldstart_load_s", "coldstart_prepare_s", "coldstart_first_s",
    "latency_fraction_of_floor", "throughput_b64_fraction_of_floor", "throughput_dev_fraction_of_floor",
)
RESULT_COLUMNS = KEY_COLUMNS + METRIC_COLUMNS
SPEEDUP_COLUMNS = KEY_COLUMNS + (
    *ACCURACY_COLUMNS, "latency_median_ms", "latency_p90_ms", "latency_speedup_vs_dense",
    "training_median_s", "training_speedup_vs_dense", "training_speedup_vs_reference_loop",
)
COMPARED_METRICS = ("latency_median_ms", "training_median_s")
ROOF_PREFIXES = {"1": "latency", "64": "throughput_b64", "dev": "throughput_dev"}  # batch label -> column prefix


def _ms(seconds):
    return None if seconds is None else seconds * 1e3


def record(run: Run, key: Key) -> dict:
    """Every column a table can show about one Key of a run (None where the run did not measure it)."""
    row = run.rows[key]
    latency, coldstart = row.latency or {}, row.coldstart or {}
    return {
        "num_layers": key.num_layers, "hidden_size": key.hidden_size, "vocab_size": key.vocab_size,
        "impl": key.impl, "trained_impl": key.trained_impl, "threads": key.threads,
        "params": row.params, "flops": row.flops, "effective_flops": row.effective_flops,
        "accuracy": row.accuracy, **accuracy_columns(accuracy_over_seeds(run, key)),
        "latency_median_ms": _ms(latency.get("median")), "latency_mean_ms": _ms(latency.get("mean")),
        "latency_stddev_ms": _ms(latency.get("stddev")), "latency_p90_ms": _ms(latency.get("p90")),
        "latency_p99_ms": _ms(latency.get("p99")), "latency_iqr_over_median": latency.get("iqr_over_median"),
        "training_median_s": row.training["median"] if row.training else None,
        "training_iqr_over_median": (row.training or {}).get("iqr_over_median"),
        "training_floor_s": (row.training or {}).get("floor_seconds"),
        "training_fraction_of_floor": (row.training or {}).get("fraction_of_floor"),
        "model_bytes": row.model_bytes, "file_bytes": row.file_bytes,
        "peak_rss_bytes": row.training_peak_rss, "dev_pass_peak_rss_bytes": row.dev_pass_peak_rss,
        "throughput_b64_per_s": row.throughput.get("64"), "throughput_dev_per_s": row.throughput.get("dev"),
        "agreement_with_dense": row.agreement_with_dense, "max_logit_difference": row.max_logit_difference,
        "coldstart_s": coldstart.get("total"), "coldstart_imports_s": coldstart.get("imports"),
        "coldstart_load_s": coldstart.get("load"), "coldstart_prepare_s": coldstart.get("prepare"),
        "coldstart_first_s": coldstart.get("first"),
        **{f"{prefix}_fraction_of_floor": row.roofs[batch].fraction if batch in row.roofs else None
           for batch, prefix in ROOF_PREFIXES.items()},
    }


def accuracy_columns(values: list[float]) -> dict:
    summary = stats.mean_interval(values)
    return {"accuracy_mean": summary["mean"], "accuracy_sd": summary["std"], "accuracy_seeds": summary["n"]}


def pivot(run: Run) -> dict[Key, dict]:
    """The run as records, in table order (configuration, impl, training impl, threads)."""
    return {key: record(run, key) for key in run.sorted_keys()}


def _ratio(numerator, denominator):
    return numerator / denominator if numerator is not None and denominator else None


def results_table(run: Run) -> list[dict]:
    return list(pivot(run).values())


def speedups_table(run: Run) -> list[dict]:
    """Within one run, each impl's latency and training time as a speed-up over dense (and the reference loop)."""
    records = pivot(run)

    def metric(key: Key, column: str):
        return records[key][column] if key in records else None

    table = []
    for key, rec in records.items():
        dense_trainer, reference = key.with_impl("dense", "dense"), key.with_impl(REFERENCE_LOOP, REFERENCE_LOOP)
        dense_impl = key.with_impl("dense", key.trained_impl)  # the dense impl of the same weights
        table.append({
            **rec,
            "latency_speedup_vs_dense": _ratio(metric(dense_impl, "latency_median_ms"), rec["latency_median_ms"]),
            "training_speedup_vs_dense": _ratio(metric(dense_trainer, "training_median_s"), rec["training_median_s"]),
            "training_speedup_vs_reference_loop": _ratio(metric(reference, "training_median_s"), rec["training_median_s"]),
        })
    return table


RUNTIME_COLUMNS = ("impl", "threads", "latency_median_ms", "latency_with_prep_ms", "latency_p90_ms", "call_floor_us",
                   "latency_vs_fused", "latency_vs_fused_noskip",
                   "throughput_b64_per_s", "throughput_b64_with_prep_per_s", "throughput_b64_vs_best_exact", "throughput_b64_vs_fused_noskip",
                   "throughput_dev_per_s", "throughput_dev_with_prep_per_s", "throughput_dev_vs_best_exact",
                   "throughput_dev_vs_fused_noskip", "model_bytes",
                   "file_bytes", "coldstart_s", "agreement_with_dense", "max_logit_difference", *ACCURACY_COLUMNS)


# The short form of the runtimes table, for a front page (the README shows the committed full run's).
BASELINE_COLUMNS = ("impl", "latency_median_ms", "latency_vs_fused", "throughput_b64_per_s", "throughput_b64_vs_best_exact",
                    "throughput_dev_per_s", "model_bytes", "coldstart_s", *ACCURACY_COLUMNS)


# The runtimes at the baseline, model only and with input preparation, against their call floor and against the fused
# kernel doing the same work (the README shows the committed baseline run's).
RUNTIME_SUMMARY_COLUMNS = ("impl", "latency_median_ms", "latency_with_prep_ms", "call_floor_us", "latency_vs_fused_noskip",
                           "throughput_b64_per_s", "throughput_dev_per_s", "throughput_dev_with_prep_per_s",
                           "max_logit_difference")


def baseline_keys(run: Run) -> list[Key]:
    """The run's rows at the reference report's baseline configuration, or at its configuration nearest to it."""
    configs = {key.config for key in run.rows}
    if not configs:
        return []
    nearest = nearest_to_baseline(list(configs))
    return [key for key in run.sorted_keys() if key.config == nearest and key.trained_impl == run.source_trainer]


def runtimes_table(run: Run) -> list[dict]:
    """Every impl at the baseline, one row per thread count: what a user choosing a runtime compares. Latency is
    against fused's (the suite's batch-1 answer); throughput against the best exact impl of the suite's own; both
    against fused-noskip too (the fused kernel reading every hidden unit): fused's lead over a runtime is that ratio
    (the runtime's overhead and layout) times fused-noskip's over fused (what skipping the inactive units gives)."""
    records = pivot(run)
    rows = []
    for key in baseline_keys(run):
        same = [k for k in records if k.config == key.config and k.threads == key.threads and k.trained_impl == key.trained_impl]
        own_exact = [k for k in same if run.rows[k].exact and not run.rows[k].peer_runtime]
        fused = records.get(key.with_impl("fused", key.trained_impl), {}).get("latency_median_ms")
        noskip = records.get(key.with_impl("fused-noskip", key.trained_impl), {})
        rec = records[key]
        row = {column: rec.get(column) for column in RUNTIME_COLUMNS}
        row["latency_vs_fused"] = _ratio(rec["latency_median_ms"], fused)
        latency_roof = run.rows[key].roofs.get("1")
        row["call_floor_us"] = latency_roof.call_floor_seconds * 1e6 if latency_roof else None
        row["latency_vs_fused_noskip"] = _ratio(rec["latency_median_ms"], noskip.get("latency_median_ms"))
        row.update(with_input_preparation(run.rows[key], rec))
        for batch in ("b64", "dev"):
            best = max((records[k][f"throughput_{batch}_per_s"] or 0 for k in own_exact), default=0)
            row[f"throughput_{batch}_vs_best_exact"] = _ratio(rec[f"throughput_{batch}_per_s"], best)
            row[f"throughput_{batch}_vs_fused_noskip"] = _ratio(rec[f"throughput_{batch}_per_s"], noskip.get(f"throughput_{batch}_per_s"))
        rows.append(row)
    return rows


def with_input_preparation(row, rec: dict) -> dict:
    """Latency and throughput counting the input preparation each call needs (the rows into what the impl takes),
    where the run measured it: what a deployment gets per request, beside the model-only figures."""
    prep = row.preparation
    out = {"latency_with_prep_ms": rec["latency_median_ms"] + prep["1"] * 1e3
           if rec.get("latency_median_ms") is not None and "1" in prep else None}
    for label, batch in (("b64", "64"), ("dev", "dev")):
        per_s, roof = rec.get(f"throughput_{label}_per_s"), row.roofs.get(batch)
        usable = per_s and batch in prep and roof is not None
        out[f"throughput_{label}_with_prep_per_s"] = roof.examples / (roof.examples / per_s + prep[batch]) if usable else None
    return out


ROOFLINE_COLUMNS = ("impl", "threads", "b1_median_us", "b1_floor_us", "b1_fraction_of_floor", "b64_median_us",
                    "b64_floor_us", "b64_fraction_of_floor", "dev_median_ms", "dev_floor_ms", "dev_fraction_of_floor")
ROOFLINE_UNITS = {"1": ("b1", "us", 1e6), "64": ("b64", "us", 1e6), "dev": ("dev", "ms", 1e3)}  # batch -> prefix, unit


def roofline_table(run: Run) -> list[dict]:
    """Every impl at the baseline: per call at batch 1, 64 and the whole dev set, its median, the floor the machine
    could not beat (sst2mlp.measure.limits) and floor / median."""
    rows = []
    for key in baseline_keys(run):
        roofs = run.rows[key].roofs
        if not roofs:
            continue
        row = {"impl": key.impl, "threads": key.threads}
        for batch, (prefix, unit, scale) in ROOFLINE_UNITS.items():
            roof = roofs.get(batch)
            row[f"{prefix}_median_{unit}"] = roof.median_seconds * scale if roof else None
            row[f"{prefix}_floor_{unit}"] = roof.floor_seconds * scale if roof else None
            row[f"{prefix}_fraction_of_floor"] = roof.fraction if roof else None
        rows.append(row)
    return rows


PARITY_COLUMNS = ("impl", "configurations", "lowest_agreement_with_dense", "largest_logit_difference", "exact",
                  *ACCURACY_COLUMNS)


def parity_table(run: Run) -> list[dict]:
    """Per impl over the run's configurations: the lowest agreement of its dev predictions with dense's and the
    largest logit difference; its dev accuracy at the baseline (mean over seeds where it was made from every seed's
    model, as the approximate impls are; an exact impl shares the float models' accuracies)."""
    baseline = {key.impl: key for key in baseline_keys(run)}
    table = []
    for impl in run.impl_order:
        rows = [row for key, row in run.rows.items() if key.impl == impl and row.agreement_with_dense is not None]
        if not rows:
            continue
        key = baseline.get(impl)
        table.append({
            "impl": impl, "configurations": len({row.key.config for row in rows}),
            "lowest_agreement_with_dense": min(row.agreement_with_dense for row in rows),
            "largest_logit_difference": max(row.max_logit_difference for row in rows),
            "exact": "yes" if all(row.exact for row in rows) else "no",
            "accuracy": run.rows[key].accuracy if key else None,
            **(accuracy_columns(accuracy_over_seeds(run, key)) if key else dict.fromkeys(ACCURACY_COLUMNS[1:])),
        })
    return table


def comparison_table(runs: list[Run]) -> tuple[list[dict], list[str]]:
    """Per Key, each run's latency and training medians and their ratios to the first run."""
    pivots = [pivot(run) for run in runs]
    impl_order = list(dict.fromkeys(impl for run in runs for impl in run.impl_order))
    keys = sorted_keys({key for records in pivots for key in records}, impl_order)
    columns = list(KEY_COLUMNS)
    for metric in COMPARED_METRICS:
        columns += [f"{metric}[{run.label}]" for run in runs]
        columns += [f"{metric} ratio[{run.label}/{runs[0].label}]" for run in runs[1:]]
        # e.g. latency_median_ms[0001], latency_median_ms[0002], latency_median_ms ratio[0002/0001]
    table = []
    for key in keys:
        row = {name: getattr(key, name) for name in KEY_COLUMNS}
        for metric in COMPARED_METRICS:
            values = [records[key][metric] if key in records else None for records in pivots]
            row.update({f"{metric}[{run.label}]": value for run, value in zip(runs, values)})
            row.update({f"{metric} ratio[{run.label}/{runs[0].label}]": _ratio(value, values[0])
                        for run, value in zip(runs[1:], values[1:])})
        table.append(row)
    return table, columns


def format_cell(value, empty: str) -> str:
    if value is None:
        return empty
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_csv(path: Path, rows: list[dict], columns) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: "" if row[c] is None else row[c] for c in columns} for row in rows)
    return path


STABILITY_OF = {"latency_median_ms": "latency_iqr_over_median", "training_median_s": "training_iqr_over_median"}
ACCURACY_CELL = "accuracy (mean ± sd, seeds)"


def markdown_columns(columns) -> list[str]:
    """The CSV columns as Markdown shows them: the accuracy columns as one cell, stability marked on the medians."""
    shown = []
    for column in columns:
        if column == "accuracy":
            shown.append(ACCURACY_CELL)
        elif column not in ACCURACY_COLUMNS and column not in STABILITY_OF.values():
            shown.append(column)
    return shown


def markdown_cell(row: dict, column: str, empty: str) -> str:
    if column == ACCURACY_CELL:
        if row.get("accuracy_mean") is None:
            return empty
        sd = row.get("accuracy_sd")
        return f"{row['accuracy_mean']:.4f} ± {sd:.4f} ({row['accuracy_seeds']})" if sd is not None else f"{row['accuracy_mean']:.4f} (1)"
    text = format_cell(row.get(column), empty)
    spread = row.get(STABILITY_OF.get(column, ""))
    if spread is not None and spread > stats.UNSTABLE_SPREAD and row.get(column) is not None:
        text += f" !{spread:.0%}"  # as torch.utils.benchmark's Compare marks noisy measurements
    return text


def pipe_table(header, rows) -> list[str]:
    """The report's one Markdown table writer: the header, its rule, and a line per row of cells (text as given)."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def markdown_table(rows: list[dict], columns, empty: str = "-") -> list[str]:
    """`empty` fills the cells with no value: "-" where a metric was not measured (training an int8 model)."""
    shown = markdown_columns(columns)
    return pipe_table(shown, ([markdown_cell(row, c, empty) for c in shown] for row in rows))


def write_markdown(path: Path, title: str, caption: str, rows: list[dict], columns, empty: str = "-") -> Path:
    path.write_text("\n".join([f"# {title}", "", caption, "", *markdown_table(rows, columns, empty)]) + "\n")
    return path
