"""Figures and tables from saved pytest-benchmark JSON: the reference report's plots, a Pareto view,
a results table, and a comparison between runs.

    python -m sst2mlp.report [JSON files or storage folders; default .benchmarks] --out DIR

The JSON is the only input; outputs are written only inside --out. Figures and the
results table describe the last run given (in a storage folder, the newest); with
several runs, comparison.md/csv gives each run's medians and ratios to the first.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .impls import IMPLS

REQUIRED_EXTRA_INFO = ("num_layers", "hidden_size", "vocab_size", "flops", "params", "accuracy", "threads")
# What the current suite writes on top (--strict checks it; older runs may lack it).
CONTRACT_EXTRA_INFO = {
    "training": REQUIRED_EXTRA_INFO + ("impl", "effective_flops", "train_accuracy", "epoch_seconds"),
    "inference": REQUIRED_EXTRA_INFO + ("impl", "effective_flops", "train_accuracy", "p50", "p90", "p99"),
    "throughput": REQUIRED_EXTRA_INFO + ("impl", "effective_flops", "train_accuracy", "examples_per_second"),
}
CONTRACT_PARAMS = ("num_layers", "hidden_size", "vocab_size", "threads", "impl", "batch_size")
GROUPS = ("training", "inference", "throughput")
IMPL_ORDER = {name: i for i, name in enumerate(IMPLS + ("reference-loop",))}
FIGURES = ("hidden_size.png", "num_layers.png", "vocab_size.png", "all.png", "impls.png", "pareto.png")
TABLES = ("results.md", "results.csv")
COMPARISON = ("comparison.md", "comparison.csv")
SPEEDUPS = ("speedups.md", "speedups.csv")


class ReportError(Exception):
    """An input the report cannot read, or an output it will not overwrite."""


@dataclass(frozen=True)
class Key:
    """One measured configuration: what a results-table row is about."""

    num_layers: int
    hidden_size: int
    vocab_size: int
    impl: str
    threads: int

    def sort_key(self):
        return (self.num_layers, self.hidden_size, self.vocab_size, IMPL_ORDER.get(self.impl, 99), self.impl, self.threads)


@dataclass
class Row:
    """Everything a run measured about one Key, across the training, inference and throughput groups."""

    key: Key
    params: int
    flops: int
    effective_flops: float
    accuracy: float
    latency: dict | None = None  # inference stats, seconds per example
    training: dict | None = None  # training stats, seconds per 2-epoch training
    throughput: dict[str, float] = field(default_factory=dict)  # batch label -> examples per second


@dataclass
class Run:
    path: Path
    machine: dict
    commit: dict
    datetime: str
    rows: dict[Key, Row]
    skipped: list[str]
    benchmarks: list[dict] = field(default_factory=list, repr=False)  # as saved, for --strict checks
    label: str = ""  # short name in tables: pytest-benchmark's run counter (0001) where it is unambiguous

    def caption(self) -> str:
        torch_info = self.machine.get("torch", {})
        threads = sorted({key.threads for key in self.rows}) or torch_info.get("threads", "?")
        cpu = self.machine.get("cpu_model") or self.machine.get("cpu", {}).get("brand_raw", "unknown CPU")
        count = self.machine.get("cpu_count") or self.machine.get("cpu", {}).get("count", "?")
        commit = (self.commit.get("id") or "")[:8]
        return (
            f"{cpu} ({count} CPUs), torch {torch_info.get('version', '?')}, "
            f"{'/'.join(map(str, threads))} thread(s); run {self.path.name}"
            + (f", HEAD {commit} when saved" if commit else "")
        )


def find_json_files(inputs: list[str]) -> list[Path]:
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.rglob("*.json"))
            if not found:
                raise ReportError(f"{path}: no pytest-benchmark JSON files in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ReportError(f"{path}: no such file or folder; expected pytest-benchmark JSON files or a storage folder")
    return files


def contract_violations(run: Run) -> list[str]:
    """Benchmarks of a run that lack a parameter or extra_info field the current suite writes."""
    problems = []
    for bench in run.benchmarks:
        missing = [f"param {p}" for p in CONTRACT_PARAMS if p not in (bench.get("params") or {})]
        missing += [f for f in CONTRACT_EXTRA_INFO.get(bench.get("group"), ()) if f not in (bench.get("extra_info") or {})]
        if bench.get("group") not in CONTRACT_EXTRA_INFO:
            missing.append(f"group {bench.get('group')!r} (expected one of {', '.join(GROUPS)})")
        if missing:
            problems.append(f"{bench.get('fullname')}: {', '.join(missing)}")
    return problems


def read_run(path: Path) -> Run:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ReportError(f"{path}: not a text file ({error.reason}); expected pytest-benchmark JSON") from None
    except json.JSONDecodeError as error:
        raise ReportError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}; truncated?); "
            "expected a file written by pytest-benchmark"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list) or "machine_info" not in document:
        raise ReportError(f"{path}: not pytest-benchmark JSON; expected an object with 'machine_info' and a 'benchmarks' list")
    rows: dict[Key, Row] = {}
    skipped = []
    for index, bench in enumerate(document["benchmarks"]):
        if not isinstance(bench, dict) or not isinstance(bench.get("stats"), dict):
            raise ReportError(f"{path}: benchmark #{index} has no 'stats'; expected pytest-benchmark JSON")
        info = bench.get("extra_info") or {}
        if bench.get("group") not in GROUPS or any(name not in info for name in REQUIRED_EXTRA_INFO):
            skipped.append(bench.get("fullname") or bench.get("name") or f"#{index}")
            continue
        _add_benchmark(rows, bench, info)
    return Run(path, document["machine_info"], document.get("commit_info") or {}, document.get("datetime", ""), rows, skipped,
               benchmarks=document["benchmarks"])


def _add_benchmark(rows: dict[Key, Row], bench: dict, info: dict) -> None:
    # Runs saved before the impl axis measured only the dense model.
    key = Key(info["num_layers"], info["hidden_size"], info["vocab_size"], info.get("impl", "dense"), info["threads"])
    row = rows.get(key)
    if row is None:
        row = rows[key] = Row(key, info["params"], info["flops"], info.get("effective_flops", float(info["flops"])), info["accuracy"])
    stats = {name: bench["stats"][name] for name in ("min", "median", "mean", "stddev", "rounds")}
    if bench["group"] == "inference":
        row.latency = {**stats, **{p: info[p] for p in ("p50", "p90", "p99") if p in info}}
    elif bench["group"] == "training":
        row.training = stats
    else:
        batch = (bench.get("params") or {}).get("batch_size", info.get("batch_examples"))
        row.throughput[str(batch)] = info.get("examples_per_second", info.get("batch_examples", 1) / stats["median"])


def short_labels(paths: list[Path]) -> list[str]:
    """'0001' for '0001_<commit>_<date>.json'; the parent folder is added, then the full path, to tell runs apart."""
    for candidate in (
        lambda p: p.stem.split("_")[0],
        lambda p: f"{p.parent.name}/{p.stem.split('_')[0]}",
        lambda p: str(p),
    ):
        labels = [candidate(p) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{i + 1}:{p}" for i, p in enumerate(paths)]


def load_runs(inputs: list[str], strict: bool = False) -> list[Run]:
    files = find_json_files(inputs)
    runs = [read_run(path) for path in files]
    for run, label in zip(runs, short_labels(files)):
        run.label = label
    for run in runs:
        if run.skipped:
            message = (
                f"{run.path}: skipped {len(run.skipped)} benchmark(s) without the sst2mlp fields "
                f"({', '.join(REQUIRED_EXTRA_INFO)}) in extra_info: {', '.join(run.skipped)}"
            )
            if strict:
                raise ReportError(message)
            warnings.warn(message, stacklevel=2)
        if strict and (problems := contract_violations(run)):
            raise ReportError(f"{run.path}: benchmarks without the fields the suite writes: " + "; ".join(problems))
        if not run.rows:
            raise ReportError(f"{run.path}: no sst2mlp benchmarks in this file")
    return runs


# ---- tables -------------------------------------------------------------------------------------

TABLE_COLUMNS = (
    "num_layers", "hidden_size", "vocab_size", "impl", "threads", "params", "flops", "effective_flops", "accuracy",
    "latency_median_ms", "latency_mean_ms", "latency_stddev_ms", "latency_p90_ms", "latency_p99_ms",
    "training_median_s", "throughput_b64_per_s", "throughput_dev_per_s",
)


def table_rows(run: Run) -> list[dict]:
    out = []
    for key in sorted(run.rows, key=Key.sort_key):
        row = run.rows[key]
        latency = row.latency or {}
        out.append({
            "num_layers": key.num_layers, "hidden_size": key.hidden_size, "vocab_size": key.vocab_size,
            "impl": key.impl, "threads": key.threads, "params": row.params, "flops": row.flops,
            "effective_flops": row.effective_flops, "accuracy": row.accuracy,
            "latency_median_ms": _ms(latency.get("median")), "latency_mean_ms": _ms(latency.get("mean")),
            "latency_stddev_ms": _ms(latency.get("stddev")), "latency_p90_ms": _ms(latency.get("p90")),
            "latency_p99_ms": _ms(latency.get("p99")),
            "training_median_s": row.training["median"] if row.training else None,
            "throughput_b64_per_s": row.throughput.get("64"), "throughput_dev_per_s": row.throughput.get("dev"),
        })
    return out


def _ms(seconds):
    return None if seconds is None else seconds * 1e3


def _fmt(value, empty: str) -> str:
    if value is None:
        return empty
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_csv(path: Path, rows: list[dict], columns) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: "" if row[c] is None else row[c] for c in columns} for row in rows)


def write_markdown(path: Path, title: str, caption: str, rows: list[dict], columns, empty: str = "-") -> None:
    """`empty` fills the cells with no value: "-" where a metric was not measured (training an int8 model)."""
    lines = [f"# {title}", "", caption, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row[c], empty) for c in columns) + " |" for row in rows]
    path.write_text("\n".join(lines) + "\n")


SPEEDUP_COLUMNS = (
    "num_layers", "hidden_size", "vocab_size", "threads", "impl", "accuracy", "latency_median_ms", "latency_p90_ms",
    "latency_speedup_vs_dense", "training_median_s", "training_speedup_vs_dense", "training_speedup_vs_reference_loop",
)


def speedup_rows(run: Run) -> list[dict]:
    """Within one run, each impl's latency and training time as a speed-up over dense (and the reference loop)."""
    def median(key, group):
        stats = getattr(run.rows[key], group) if key in run.rows else None
        return stats["median"] if stats else None

    def ratio(numerator, denominator):
        return numerator / denominator if numerator is not None and denominator else None

    rows = []
    for key in sorted(run.rows, key=Key.sort_key):
        dense = Key(key.num_layers, key.hidden_size, key.vocab_size, "dense", key.threads)
        reference = Key(key.num_layers, key.hidden_size, key.vocab_size, "reference-loop", key.threads)
        latency, training = median(key, "latency"), median(key, "training")
        rows.append({
            "num_layers": key.num_layers, "hidden_size": key.hidden_size, "vocab_size": key.vocab_size,
            "threads": key.threads, "impl": key.impl, "accuracy": run.rows[key].accuracy,
            "latency_median_ms": _ms(latency), "latency_p90_ms": _ms((run.rows[key].latency or {}).get("p90")),
            "latency_speedup_vs_dense": ratio(median(dense, "latency"), latency),
            "training_median_s": training,
            "training_speedup_vs_dense": ratio(median(dense, "training"), training),
            "training_speedup_vs_reference_loop": ratio(median(reference, "training"), training),
        })
    return rows


def comparison_rows(runs: list[Run]) -> tuple[list[dict], list[str]]:
    """Per configuration, each run's latency and training medians and their ratios to the first run."""
    keys = sorted({key for run in runs for key in run.rows}, key=Key.sort_key)
    columns = ["num_layers", "hidden_size", "vocab_size", "impl", "threads"]
    for metric in ("latency_median_ms", "training_median_s"):
        columns += [f"{metric}[{run.label}]" for run in runs]
        columns += [f"{metric} ratio[{run.label}/{runs[0].label}]" for run in runs[1:]]
        # e.g. latency_median_ms[0001], latency_median_ms[0002], latency_median_ms ratio[0002/0001]
    rows = []
    for key in keys:
        row = {"num_layers": key.num_layers, "hidden_size": key.hidden_size, "vocab_size": key.vocab_size, "impl": key.impl, "threads": key.threads}
        for metric, group, scale in (("latency_median_ms", "latency", 1e3), ("training_median_s", "training", 1.0)):
            values = []
            for run in runs:
                stats = getattr(run.rows[key], group) if key in run.rows else None
                values.append(stats["median"] * scale if stats else None)
                row[f"{metric}[{run.label}]"] = values[-1]
            for run, value in zip(runs[1:], values[1:]):
                row[f"{metric} ratio[{run.label}/{runs[0].label}]"] = value / values[0] if value is not None and values[0] else None
        rows.append(row)
    return rows, columns


# ---- figures ------------------------------------------------------------------------------------

SHORT = {"hidden_size": "H", "num_layers": "N", "vocab_size": "k"}
STYLES = ("o-", "s--", "^-.", "D:", "v-", "P--", "X-.", "*:")  # cycled: more series reuse them
LABEL_OFFSETS = ((4, 4), (4, -11), (-6, 6), (-6, -12), (6, 14), (6, -20), (-10, 16), (-10, -22))  # points


def _short_id(key: Key) -> str:
    return f"{key.num_layers}-{key.hidden_size}-{key.vocab_size // 1000}k"


def _series(run: Run, impl: str, fixed: dict, varying: str):
    """Rows of one impl with the `fixed` values, sorted by the `varying` one, that have a latency."""
    rows = [r for r in run.rows.values() if r.key.impl == impl and r.latency
            and all(getattr(r.key, name) == value for name, value in fixed.items())]
    return sorted(rows, key=lambda r: getattr(r.key, varying))


def _point_coordinates(rows):
    flops = np.array([r.flops for r in rows], dtype=float)
    latency_ms = np.array([r.latency["median"] * 1e3 for r in rows])
    accuracy = np.array([r.accuracy for r in rows])
    return ((flops, accuracy), (latency_ms, accuracy), (latency_ms, flops))


def _compact(value, _position=None) -> str:
    """Tick text for log axes: 0.2, 1, 300k, 5M rather than 2x10^-1."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _has_points(ax) -> bool:
    return any(len(line.get_xdata()) for line in ax.get_lines())


def _place_labels(ax, labels, fontsize=7):
    """Annotate (x, y, text) points, choosing for each the first offset whose box overlaps no earlier label."""
    fig = ax.figure
    scale = fig.dpi / 72
    taken = []
    for x, y, text in labels:
        px, py = ax.transData.transform((x, y))
        width, height = len(text) * fontsize * 0.6 * scale, fontsize * 1.2 * scale
        for dx, dy in LABEL_OFFSETS:
            left = px + dx * scale - (width if dx < 0 else 0)
            box = (left, py + dy * scale, left + width, py + dy * scale + height)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
                break
        taken.append(box)
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                    ha="right" if dx < 0 else "left", va="bottom")


def _three_panels(plt, title: str, caption: str):
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.6))
    fig.suptitle(title, fontsize=13)
    fig.text(0.5, 0.01, caption, ha="center", fontsize=9, color="0.3")
    labels = (("FLOPs per example (report's dense count)", "dev accuracy"), ("latency, batch 1 (ms per example)", "dev accuracy"),
              ("latency, batch 1 (ms per example)", "FLOPs per example (report's dense count)"))
    for ax, (xlabel, ylabel) in zip(axes, labels):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    return fig, axes


def _set_scales(axes, log_y=(False, False, True)):
    from matplotlib.ticker import FuncFormatter

    for ax, logy in zip(axes, log_y):
        if not _has_points(ax):
            ax.text(0.5, 0.5, "not measured in this run", transform=ax.transAxes, ha="center", color="0.4")
            continue
        axis_list = [ax.xaxis] + ([ax.yaxis] if logy else [])
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        for axis in axis_list:
            axis.set_major_formatter(FuncFormatter(_compact))
            axis.set_minor_formatter(FuncFormatter(lambda v, p: _compact(v) if str(f"{v:.0e}")[0] in "25" else ""))
        ax.autoscale_view()


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    for ax in fig.axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


SWEEPS = (
    # figure, varying value, series (fixed values, legend), title
    ("hidden_size.png", "hidden_size", [({"num_layers": 2, "vocab_size": 10000}, "N=2, k=10000"),
                                        ({"num_layers": 4, "vocab_size": 10000}, "N=4, k=10000")], "Varying hidden size"),
    ("num_layers.png", "num_layers", [({"hidden_size": 256, "vocab_size": 10000}, "hidden 256, k=10000"),
                                      ({"hidden_size": 512, "vocab_size": 10000}, "hidden 512, k=10000")], "Varying number of hidden layers"),
    ("vocab_size.png", "vocab_size", [({"num_layers": 2, "hidden_size": 256}, "N=2, hidden 256"),
                                      ({"num_layers": 4, "hidden_size": 256}, "N=4, hidden 256")], "Varying vocabulary size"),
)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats: lower or equal cost and higher or equal accuracy, one strictly."""
    front = []
    for i, (cost, acc) in enumerate(points):
        dominated = any(c <= cost and a >= acc and (c < cost or a > acc) for j, (c, a) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def write_figures(run: Run, out: Path, threads: int) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    caption = run.caption()
    impls = sorted({r.key.impl for r in run.rows.values() if r.latency and r.key.threads == threads},
                   key=lambda i: IMPL_ORDER.get(i, 99))
    main_impl = "dense" if "dense" in impls or not impls else impls[0]
    written = []
    for name, varying, series, title in SWEEPS:
        fig, axes = _three_panels(plt, f"{title} ({main_impl}, {threads} thread(s))", caption)
        labels = [[] for _ in axes]
        for (fixed, legend), style in zip(series, itertools.cycle(STYLES)):
            rows = _series(run, main_impl, {**fixed, "threads": threads}, varying)
            for ax, panel_labels, (x, y) in zip(axes, labels, _point_coordinates(rows)):
                ax.plot(x, y, style, label=legend if rows else f"{legend} (not measured)", markersize=6)
                panel_labels += [(xi, yi, f"{SHORT[varying]}={getattr(r.key, varying)}") for xi, yi, r in zip(x, y, rows)]
        _set_scales(axes)
        for ax, panel_labels in zip(axes, labels):
            _place_labels(ax, panel_labels)
        written.append(_save(fig, out / name))

    fig, axes = _three_panels(plt, f"All experiments ({main_impl}, {threads} thread(s)); points labelled N-H-k", caption)
    rows = sorted((r for r in run.rows.values() if r.key.impl == main_impl and r.key.threads == threads and r.latency),
                  key=lambda r: r.key.sort_key())
    for ax, (x, y) in zip(axes, _point_coordinates(rows)):
        for vocab, style in zip(sorted({r.key.vocab_size for r in rows}), itertools.cycle(STYLES)):
            mine = [i for i, r in enumerate(rows) if r.key.vocab_size == vocab]
            ax.plot(x[mine], y[mine], style[0], label=f"k={vocab}", markersize=5)
    _set_scales(axes)
    for ax, (x, y) in zip(axes, _point_coordinates(rows)):
        _place_labels(ax, [(xi, yi, _short_id(r.key)) for xi, yi, r in zip(x, y, rows)], fontsize=6)
    written.append(_save(fig, out / "all.png"))
    written.append(_impls_figure(plt, run, threads, impls, caption, out / "impls.png"))
    written.append(_pareto_figure(plt, run, threads, impls, caption, out / "pareto.png"))
    return written


def _impls_figure(plt, run: Run, threads: int, impls: list[str], caption: str, path: Path) -> Path:
    """Each impl as a series: what it does to latency and accuracy, configuration by configuration."""
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.6))
    fig.suptitle(f"Implementations of the same models ({threads} thread(s))", fontsize=13)
    fig.text(0.5, 0.01, caption, ha="center", fontsize=9, color="0.3")
    panels = (
        ("FLOPs per example (report's dense count)", lambda r: r.flops, "latency, batch 1 (ms per example)", lambda r: r.latency["median"] * 1e3, True),
        ("effective FLOPs per example (what the impl executes)", lambda r: r.effective_flops, "latency, batch 1 (ms per example)", lambda r: r.latency["median"] * 1e3, True),
        ("latency, batch 1 (ms per example)", lambda r: r.latency["median"] * 1e3, "dev accuracy", lambda r: r.accuracy, False),
    )
    for ax, (xlabel, fx, ylabel, fy, logy) in zip(axes, panels):
        for impl, style in zip(impls, itertools.cycle(STYLES)):
            rows = sorted((r for r in run.rows.values() if r.key.impl == impl and r.key.threads == threads and r.latency), key=fx)
            ax.plot([fx(r) for r in rows], [fy(r) for r in rows], style[0], label=impl, markersize=5, alpha=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    _set_scales(axes, log_y=(True, True, False))
    return _save(fig, path)


def _pareto_figure(plt, run: Run, threads: int, impls: list[str], caption: str, path: Path) -> Path:
    rows = [r for r in run.rows.values() if r.key.threads == threads and r.latency]
    fig, axes = plt.subplots(1, 2, figsize=(16, 6.4))
    fig.suptitle(f"Pareto-optimal configurations ({threads} thread(s)): none is both cheaper and more accurate", fontsize=12)
    fig.text(0.5, 0.01, caption, ha="center", fontsize=9, color="0.3")
    costs = (("latency, batch 1 (ms per example)", lambda r: r.latency["median"] * 1e3),
             ("effective FLOPs per example (what the impl executes)", lambda r: r.effective_flops))
    fronts = []
    for ax, (xlabel, cost) in zip(axes, costs):
        for impl, style in zip(impls, itertools.cycle(STYLES)):
            mine = [r for r in rows if r.key.impl == impl]
            ax.plot([cost(r) for r in mine], [r.accuracy for r in mine], style[0], label=impl, alpha=0.45, markersize=5)
        front = [rows[i] for i in pareto_front([(cost(r), r.accuracy) for r in rows])]
        ax.plot([cost(r) for r in front], [r.accuracy for r in front], "k-", lw=1, label="Pareto front")
        fronts.append([(cost(r), r.accuracy, f"{_short_id(r.key)} {r.key.impl}") for r in front])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("dev accuracy")
        ax.grid(True, which="both", alpha=0.3)
    _set_scales(axes, log_y=(False, False))
    for ax, labels in zip(axes, fronts):
        _place_labels(ax, labels)
    return _save(fig, path)


# ---- command line ----------------------------------------------------------------------------------

def make_report(inputs: list[str], out: Path, overwrite: bool = False, strict: bool = False) -> list[Path]:
    runs = load_runs(inputs, strict=strict)
    latest = runs[-1]  # files sort by name, so in a storage folder the newest run is last
    several_impls = len({key.impl for key in latest.rows}) > 1
    names = FIGURES + TABLES + (COMPARISON if len(runs) > 1 else ()) + (SPEEDUPS if several_impls else ())
    existing = [name for name in names if (out / name).exists()]
    if existing and not overwrite:
        raise ReportError(f"{out} already holds {', '.join(existing)}; pass --overwrite to replace them, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(latest)
    write_csv(out / "results.csv", rows, TABLE_COLUMNS)
    write_markdown(out / "results.md", "sst2mlp results", latest.caption(), rows, TABLE_COLUMNS)
    written = [out / "results.csv", out / "results.md"]
    threads = min(key.threads for key in latest.rows)
    written += write_figures(latest, out, threads)
    if several_impls:
        rows = speedup_rows(latest)
        write_csv(out / "speedups.csv", rows, SPEEDUP_COLUMNS)
        write_markdown(out / "speedups.md", "sst2mlp speed-ups of each impl, measured in one run", latest.caption(), rows, SPEEDUP_COLUMNS)
        written += [out / "speedups.csv", out / "speedups.md"]
    if len(runs) > 1:
        rows, columns = comparison_rows(runs)
        write_csv(out / "comparison.csv", rows, columns)
        captions = "\n".join(f"- {run.label}: {run.caption()}" for run in runs)
        write_markdown(out / "comparison.md", "sst2mlp comparison (ratios against the first run)", captions, rows, columns, empty="missing")
        written += [out / "comparison.csv", out / "comparison.md"]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sst2mlp-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", default=[".benchmarks"], help="pytest-benchmark JSON files or storage folders (default: .benchmarks)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="folder for figures and tables (default: report)")
    parser.add_argument("--overwrite", action="store_true", help="replace figures and tables already in --out")
    parser.add_argument("--strict", action="store_true",
                        help="fail on any benchmark without every parameter and extra_info field the current suite writes")
    args = parser.parse_args(argv)
    try:
        written = make_report(args.inputs, args.out, overwrite=args.overwrite, strict=args.strict)
    except ReportError as error:
        print(f"sst2mlp-report: error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
