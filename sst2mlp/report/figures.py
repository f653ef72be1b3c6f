"""Figures of one run: the reference report's three-panel sweeps and all-experiments view, the implementations
and the Pareto front. Each `*_figure` function returns a matplotlib Figure; `write_figures` saves them."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from sst2mlp import stats

from .runs import Row, Run, accuracy_over_seeds

FIGURES = ("hidden_size.png", "num_layers.png", "vocab_size.png", "all.png", "impls.png", "footprint.png", "pareto.png",
           "roofline.png")
SHORT = {"hidden_size": "H", "num_layers": "N", "vocab_size": "k"}
LEGEND = {"num_layers": "N={}", "hidden_size": "hidden {}", "vocab_size": "k={}"}
STYLES = ("o-", "s--", "^-.", "D:", "v-", "P--", "X-.", "*:")  # cycled: more series reuse them
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")
LABEL_OFFSETS = ((4, 4), (4, -11), (-6, 6), (-6, -12), (6, 14), (6, -20), (-10, 16), (-10, -22))  # points
FLOPS_LABEL = "FLOPs per example (report's dense count)"
EFFECTIVE_FLOPS_LABEL = "effective FLOPs per example (what the impl executes)"
LATENCY_LABEL = "latency, batch 1 (ms per example)"
BYTES_LABEL = "model bytes (weights held once loaded)"
ACCURACY_LABEL = "dev accuracy (mean over seeds, 95% interval)"

# The reference report's sweeps: (figure, the value that varies, the value each series fixes, the value all fix, title).
SWEEPS = (
    ("hidden_size.png", "hidden_size", "num_layers", "vocab_size", "Varying hidden size"),
    ("num_layers.png", "num_layers", "hidden_size", "vocab_size", "Varying number of hidden layers"),
    ("vocab_size.png", "vocab_size", "num_layers", "hidden_size", "Varying vocabulary size"),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _latency_ms(row: Row) -> float:
    return row.latency["median"] * 1e3


def _short_id(row: Row) -> str:
    return f"{row.key.num_layers}-{row.key.hidden_size}-{row.key.vocab_size // 1000}k"


def timed_rows(run: Run, impl: str | None, threads: int) -> list[Row]:
    """The rows with a latency at this thread count (of one impl, or of all when impl is None)."""
    return [r for r in run.rows.values() if r.latency and r.key.threads == threads and impl in (None, r.key.impl)]


def sweep_series(run: Run, impl: str, threads: int, varying: str, per_series: str, fixed: str) -> list[tuple[str, list[Row]]]:
    """The report's choice of series, taken from the run's own grid: the two largest values of `per_series`,
    with `fixed` at its largest value (vocabulary) or its middle one (width), as the report's N=2/N=4 at k=10,000
    and hidden 256 are on its grid. Each series is (legend, rows sorted by `varying`)."""
    rows = timed_rows(run, impl, threads)
    fixed_values = sorted({getattr(r.key, fixed) for r in rows})
    if not fixed_values:
        return []
    fixed_value = fixed_values[-1] if fixed == "vocab_size" else fixed_values[len(fixed_values) // 2]
    series = []
    for value in sorted({getattr(r.key, per_series) for r in rows})[-2:]:
        legend = f"{LEGEND[per_series].format(value)}, {LEGEND[fixed].format(fixed_value)}"
        mine = [r for r in rows if getattr(r.key, per_series) == value and getattr(r.key, fixed) == fixed_value]
        series.append((legend, sorted(mine, key=lambda r: getattr(r.key, varying))))
    return series


def accuracy_summary(run: Run, rows: list[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean dev accuracy over the seeds of each row, and the 95% interval (the mean itself with one seed)."""
    summaries = [stats.mean_interval(accuracy_over_seeds(run, r.key)) for r in rows]
    mean = np.array([s["mean"] for s in summaries])
    low = np.array([s["ci95"][0] if s["ci95"] else s["mean"] for s in summaries])
    high = np.array([s["ci95"][1] if s["ci95"] else s["mean"] for s in summaries])
    return mean, low, high


def _error_bars(ax, x, run: Run, rows: list[Row], line) -> None:
    """95% intervals of the accuracy, in the colour of the series just drawn (vertical segments, not Line2D)."""
    _, low, high = accuracy_summary(run, rows)
    if len(rows) and np.any(high > low):
        ax.vlines(x, low, high, colors=line.get_color(), alpha=0.55, lw=1.2)


def _point_coordinates(run: Run, rows: list[Row]):
    flops = np.array([r.flops for r in rows], dtype=float)
    latency_ms = np.array([_latency_ms(r) for r in rows])
    accuracy = accuracy_summary(run, rows)[0] if rows else np.array([])
    return ((flops, accuracy), (latency_ms, accuracy), (latency_ms, flops))


ACCURACY_PANELS = (True, True, False)  # which of the report's three panels have accuracy on the y axis


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
    scale = ax.figure.dpi / 72
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


def _panels(title: str, caption: str, axis_labels, figsize=(18, 5.6), title_size=13):
    """A row of panels with a title, the run's caption below, and (xlabel, ylabel) per panel."""
    fig, axes = _pyplot().subplots(1, len(axis_labels), figsize=figsize)
    fig.suptitle(title, fontsize=title_size)
    fig.text(0.5, 0.01, caption, ha="center", fontsize=9, color="0.3")
    for ax, (xlabel, ylabel) in zip(axes, axis_labels):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    return fig, axes


REPORT_PANELS = ((FLOPS_LABEL, ACCURACY_LABEL), (LATENCY_LABEL, ACCURACY_LABEL), (LATENCY_LABEL, FLOPS_LABEL))


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


def sweep_figure(run: Run, impl: str, threads: int, varying: str, per_series: str, fixed: str, title: str):
    fig, axes = _panels(f"{title} ({impl}, {threads} thread(s))", run.caption(), REPORT_PANELS)
    labels = [[] for _ in axes]
    for (legend, rows), style in zip(sweep_series(run, impl, threads, varying, per_series, fixed), itertools.cycle(STYLES)):
        for ax, panel_labels, (x, y), has_accuracy in zip(axes, labels, _point_coordinates(run, rows), ACCURACY_PANELS):
            (line,) = ax.plot(x, y, style, label=legend if rows else f"{legend} (not measured)", markersize=6)
            if has_accuracy:
                _error_bars(ax, x, run, rows, line)
            panel_labels += [(xi, yi, f"{SHORT[varying]}={getattr(r.key, varying)}") for xi, yi, r in zip(x, y, rows)]
    _set_scales(axes)
    for ax, panel_labels in zip(axes, labels):
        _place_labels(ax, panel_labels)
    return fig


def all_experiments_figure(run: Run, impl: str, threads: int):
    fig, axes = _panels(f"All experiments ({impl}, {threads} thread(s)); points labelled N-H-k", run.caption(), REPORT_PANELS)
    rows = [row for row in (run.rows[key] for key in run.sorted_keys())
            if row.latency and row.key.threads == threads and row.key.impl == impl]
    for ax, (x, y), has_accuracy in zip(axes, _point_coordinates(run, rows), ACCURACY_PANELS):
        for vocab, style in zip(sorted({r.key.vocab_size for r in rows}), itertools.cycle(STYLES)):
            mine = [i for i, r in enumerate(rows) if r.key.vocab_size == vocab]
            (line,) = ax.plot(x[mine], y[mine], style[0], label=f"k={vocab}", markersize=5)
            if has_accuracy:
                _error_bars(ax, x[mine], run, [rows[i] for i in mine], line)
    _set_scales(axes)
    for ax, (x, y) in zip(axes, _point_coordinates(run, rows)):
        _place_labels(ax, [(xi, yi, _short_id(r)) for xi, yi, r in zip(x, y, rows)], fontsize=6)
    return fig


def impl_styles(impls: list[str]) -> dict[str, dict]:
    """A colour and a marker per impl, no two impls alike (up to 20 colours x 11 markers), the same in every figure
    of a run: tab20's dark shades first, then its light ones, each colour with a marker of its own."""
    from matplotlib import colormaps

    shades = colormaps["tab20"].colors
    colours = shades[0::2] + shades[1::2]
    return {impl: {"color": colours[i % len(colours)], "marker": MARKERS[i % len(MARKERS)], "linestyle": "none"}
            for i, impl in enumerate(impls)}


def impls_figure(run: Run, impls: list[str], threads: int):
    """Each impl as a series: what it does to latency and accuracy, configuration by configuration."""
    panels = (
        (FLOPS_LABEL, lambda r: r.flops, LATENCY_LABEL, _latency_ms),
        (EFFECTIVE_FLOPS_LABEL, lambda r: r.effective_flops, LATENCY_LABEL, _latency_ms),
        (LATENCY_LABEL, _latency_ms, ACCURACY_LABEL, None),  # None: the mean accuracy over seeds, with intervals
    )
    fig, axes = _panels(f"Implementations of the same models ({threads} thread(s))", run.caption(),
                        [(xlabel, ylabel) for xlabel, _, ylabel, _ in panels])
    for ax, (_, fx, _, fy) in zip(axes, panels):
        for impl, style in impl_styles(impls).items():
            rows = sorted(timed_rows(run, impl, threads), key=fx)
            x = [fx(r) for r in rows]
            y = [fy(r) for r in rows] if fy else accuracy_summary(run, rows)[0]
            (line,) = ax.plot(x, y, **style, label=impl, markersize=5, alpha=0.8)
            if fy is None:
                _error_bars(ax, x, run, rows, line)
    _set_scales(axes, log_y=(True, True, False))
    return fig


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats: lower or equal cost and higher or equal accuracy, one strictly."""
    return sorted(pareto_optimal([(cost, -acc) for cost, acc in points]), key=lambda i: points[i][0])


def pareto_optimal(costs: list[tuple[float, ...]]) -> list[int]:
    """Indices of the points no other point dominates (at least as low on every cost, lower on one)."""
    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return [i for i, c in enumerate(costs) if not any(dominates(other, c) for j, other in enumerate(costs) if j != i)]


def footprint_figure(run: Run, impls: list[str], threads: int):
    """Each impl's dev accuracy and latency against the bytes its weights take."""
    fig, axes = _panels(f"What the models weigh ({threads} thread(s))", run.caption(),
                        [(BYTES_LABEL, ACCURACY_LABEL), (BYTES_LABEL, LATENCY_LABEL)], figsize=(14, 5.6))
    for impl, style in impl_styles(impls).items():
        rows = sorted((r for r in timed_rows(run, impl, threads) if r.model_bytes), key=lambda r: r.model_bytes)
        x = [r.model_bytes for r in rows]
        (line,) = axes[0].plot(x, accuracy_summary(run, rows)[0] if rows else [], **style, label=impl, markersize=5, alpha=0.8)
        _error_bars(axes[0], x, run, rows, line)
        axes[1].plot(x, [_latency_ms(r) for r in rows], **style, label=impl, markersize=5, alpha=0.8)
    _set_scales(axes, log_y=(False, True))
    return fig


def pareto_figure(run: Run, impls: list[str], threads: int):
    costs = ((LATENCY_LABEL, _latency_ms), (EFFECTIVE_FLOPS_LABEL, lambda r: r.effective_flops))
    fig, axes = _panels(f"Pareto-optimal configurations ({threads} thread(s)): none is both cheaper and more accurate",
                        run.caption(), [(xlabel, ACCURACY_LABEL) for xlabel, _ in costs] + [(BYTES_LABEL, ACCURACY_LABEL)],
                        figsize=(22, 6.4), title_size=12)
    rows = timed_rows(run, None, threads)
    accuracy = dict(zip([r.key for r in rows], accuracy_summary(run, rows)[0])) if rows else {}
    fronts = []
    for ax, (_, cost) in zip(axes, costs):
        for impl, style in impl_styles(impls).items():
            mine = [r for r in rows if r.key.impl == impl]
            ax.plot([cost(r) for r in mine], [accuracy[r.key] for r in mine], **style, label=impl, alpha=0.45, markersize=5)
        front = [rows[i] for i in pareto_front([(cost(r), accuracy[r.key]) for r in rows])]
        ax.plot([cost(r) for r in front], [accuracy[r.key] for r in front], "k-", lw=1, label="Pareto front")
        fronts.append([(cost(r), accuracy[r.key], f"{_short_id(r)} {r.key.impl}") for r in front])
    # three objectives: optimal when no other model is at least as accurate, fast and small, and better on one
    sized = [r for r in rows if r.model_bytes]
    for impl, style in impl_styles(impls).items():
        mine = [r for r in sized if r.key.impl == impl]
        axes[2].plot([r.model_bytes for r in mine], [accuracy[r.key] for r in mine], **style, label=impl, alpha=0.45, markersize=5)
    optimal = [sized[i] for i in pareto_optimal([(-accuracy[r.key], _latency_ms(r), r.model_bytes) for r in sized])]
    optimal.sort(key=lambda r: r.model_bytes)
    axes[2].plot([r.model_bytes for r in optimal], [accuracy[r.key] for r in optimal], "ko", mfc="none", markersize=9,
                 label="optimal in accuracy, latency and bytes")
    fronts.append([(r.model_bytes, accuracy[r.key], f"{_short_id(r)} {r.key.impl}") for r in optimal])
    _set_scales(axes, log_y=(False, False, False))
    for ax, labels in zip(axes, fronts):
        _place_labels(ax, labels)
    return fig


ROOF_PANELS = (("1", "batch 1"), ("64", "batch 64"), ("dev", "the whole dev set, one call"))
FLOOR_FRACTIONS = (1.0, 0.5, 0.1)  # guide lines: median = floor / fraction


def roofline_figure(run: Run, impls: list[str], threads: int):
    """Each impl and configuration: the time per example it took against the floor the machine could not beat for it
    (sst2mlp.measure.limits), one panel per batch size; on the diagonal an impl reaches its floor."""
    fig, axes = _panels(f"Each impl's time per example against this machine's floor for it ({threads} thread(s)); "
                        "guides: at the floor, 2x and 10x it",
                        run.caption(), [(f"floor, {label} (us per example)", "median (us per example)")
                                        for _, label in ROOF_PANELS], figsize=(18, 6))
    rows = [r for r in run.rows.values() if r.roofs and r.key.threads == threads and r.key.trained_impl == run.source_trainer]
    for ax, (batch, _) in zip(axes, ROOF_PANELS):
        points = [(r, r.roofs[batch]) for r in rows if batch in r.roofs]
        for impl, style in impl_styles(impls).items():
            mine = [roof for r, roof in points if r.key.impl == impl]
            ax.plot([roof.floor_seconds / roof.examples * 1e6 for roof in mine],
                    [roof.median_seconds / roof.examples * 1e6 for roof in mine], **style, label=impl, markersize=5, alpha=0.8)
        if points:
            floors = [roof.floor_seconds / roof.examples * 1e6 for _, roof in points]
            span = np.array([min(floors) / 1.5, max(floors) * 1.5])
            for fraction in FLOOR_FRACTIONS:
                ax.plot(span, span / fraction, color="0.5", lw=0.8, ls="-" if fraction == 1 else ":")
                ax.annotate(f"{1 / fraction:g}x floor", (span[1], span[1] / fraction), fontsize=7, color="0.4", ha="right",
                            va="bottom")
    _set_scales(axes, log_y=(True, True, True))
    return fig


def draw_figures(run: Run, threads: int) -> dict[str, object]:
    """Every figure of the run at one thread count, by file name."""
    impls = [impl for impl in run.impl_order if timed_rows(run, impl, threads)]
    # the source trainer's own impl: its rows hold both the training time and the latency of the same models
    main_impl = run.source_trainer if run.source_trainer in impls or not impls else impls[0]
    figures = {name: sweep_figure(run, main_impl, threads, varying, per_series, fixed, title)
               for name, varying, per_series, fixed, title in SWEEPS}
    figures["all.png"] = all_experiments_figure(run, main_impl, threads)
    figures["impls.png"] = impls_figure(run, impls, threads)
    figures["footprint.png"] = footprint_figure(run, impls, threads)
    figures["pareto.png"] = pareto_figure(run, impls, threads)
    if any(row.roofs for row in run.rows.values()):  # none in an untimed run, or one saved before the machine limits
        figures["roofline.png"] = roofline_figure(run, impls, threads)
    return figures


SHARED_LEGEND_FROM = 7  # series; from this many on, one legend beside the panels instead of one inside each


def _add_legends(fig) -> float:
    """One legend per panel, or, for many series (the impls), one beside the panels, where it covers no point.
    Returns the share of the figure's width the panels keep."""
    by_label = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            by_label.setdefault(label, handle)
    if len(by_label) < SHARED_LEGEND_FROM:
        for ax in fig.axes:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8, loc="best")
        return 1.0
    fig.legend(list(by_label.values()), list(by_label), loc="center right", fontsize=8, frameon=False)
    return 0.89


def save_figure(fig, path: Path) -> Path:
    width = _add_legends(fig)
    fig.tight_layout(rect=(0, 0.04, width, 0.95))
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def write_figures(run: Run, out: Path, threads: int) -> list[Path]:
    return [save_figure(fig, out / name) for name, fig in draw_figures(run, threads).items()]
