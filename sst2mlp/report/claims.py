"""claims.md: the reference report's conclusions tested on a run, with paired statistics over the grid and the seeds.

Each claim compares two values of one axis (vocabulary, width, depth), or two forms of the same
models (int8 vs float, sparse-trained vs dense-trained), on pairs that share everything else: the
other two axes and the seed (seed s of one configuration against seed s of the other; a seed fixes
the shuffling order, and the initial weights as far as the shapes allow). The mean paired
difference gets a 95% percentile-bootstrap interval over the pairs; an interval that contains 0 is
"no evidence". Accuracy differences are in points (1 point = 0.01).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sst2mlp import stats

from .runs import Run, accuracy_over_seeds
from .tables import pipe_table

AXES = {"vocab_size": "vocabulary size k", "hidden_size": "hidden size", "num_layers": "hidden layers"}
POSITION = {"num_layers": 0, "hidden_size": 1, "vocab_size": 2}  # in a Key's config tuple
# two-sample, two-sided alpha 0.05 at 80% power: (1.96 + 0.84) * sd * sqrt(2 / n)
DETECTABLE_FACTOR = 1.96 + 0.84


def _source_trained(run: Run) -> dict[tuple, list[float]]:
    """(N, H, k) -> dev accuracy per seed of the source trainer's models (the models every exact impl runs)."""
    out = {}
    for key in run.sorted_keys():
        if key.impl == key.trained_impl == run.source_trainer and key.config not in out:
            out[key.config] = accuracy_over_seeds(run, key)
    return out


def axis_pairs(models: dict[tuple, list[float]], axis: str, low, high) -> list[float]:
    """Paired differences accuracy(axis=high) - accuracy(axis=low), over the other axes and the seeds."""
    position = POSITION[axis]
    differences = []
    for config, values in models.items():
        if config[position] != low:
            continue
        partner = tuple(high if i == position else v for i, v in enumerate(config))
        if partner in models:
            differences += [b - a for a, b in zip(values, models[partner])]
    return differences


def verdict(interval: list[float]) -> str:
    if interval[0] <= 0 <= interval[1]:
        return "no evidence"
    return "evidence of an increase" if interval[0] > 0 else "evidence of a decrease"


def claim_rows(run: Run) -> list[dict]:
    models = _source_trained(run)
    rows = []
    for axis, label in AXES.items():
        values = sorted({config[POSITION[axis]] for config in models})
        comparisons = [(values[0], values[-1])] + ([(values[-2], values[-1])] if len(values) > 2 else [])
        for low, high in comparisons:
            if low != high:
                rows.append(_row(f"{label} {low:,} -> {high:,}", axis_pairs(models, axis, low, high)))
    for impl in run.impl_order:  # approximate impls carry their float models' accuracies seed by seed
        paired = {r.key.config: (r.accuracy_seeds, r.reference_accuracy_seeds) for r in run.rows.values()
                  if r.key.impl == impl and r.accuracy_seeds and r.reference_accuracy_seeds}  # one entry per configuration
        if paired:
            rows.append(_row(f"{impl} vs float32 (the same models)", [q - f for qs, fs in paired.values() for q, f in zip(qs, fs)]))
    sparse = {key.config: run.rows[key].accuracy_seeds for key in run.rows if key.trained_impl == "sparse" and run.rows[key].accuracy_seeds}
    paired = [b - a for config, values in sparse.items() if config in models for a, b in zip(models[config], values)]
    if paired:
        rows.append(_row("sparse-trained vs dense-trained", paired))
    return rows


def _row(claim: str, differences: list[float]) -> dict:
    if not differences:
        return {"claim": claim, "pairs": 0, "mean": None, "ci95": None, "verdict": "not measured in this run"}
    result = stats.paired_bootstrap(differences)
    return {"claim": claim, "pairs": result["n"], "mean": result["mean"], "ci95": result["ci95"], "verdict": verdict(result["ci95"])}


def detectable_differences(run: Run) -> list[dict]:
    """Per configuration: its seeds' spread and the smallest difference to another configuration of the same
    spread that a two-sample comparison would detect (alpha 0.05, power 0.8)."""
    out = []
    for config, values in _source_trained(run).items():
        summary = stats.mean_interval(values)
        smallest = DETECTABLE_FACTOR * summary["std"] * np.sqrt(2 / summary["n"]) if summary["std"] is not None else None
        out.append({"config": config, "n": summary["n"], "mean": summary["mean"], "sd": summary["std"], "detectable": smallest})
    return out


def write_claims(path: Path, run: Run) -> Path:
    rows = claim_rows(run)
    detectable = detectable_differences(run)
    one_seed = all(d["n"] == 1 for d in detectable)
    lines = [
        "# The reference report's claims, tested on this run", "", run.caption(), "",
        f"Method: paired differences of dev accuracy ({run.dev_examples():,} sentences) between two values of one axis, over every pair of "
        "dense-trained models that share the other two axes and the seed; mean with a 95% percentile-bootstrap interval "
        "(10,000 resamples of the pairs). \"no evidence\": the interval contains 0. Differences in points (0.01).", "",
    ]
    if one_seed:
        lines += ["**This run recorded one seed per configuration** (saved before seeds were recorded): the pairs span the "
                  "grid only, and the accuracies have no spread.", ""]
    lines += pipe_table(["claim", "pairs", "mean difference", "95% interval", "verdict"], map(_claim_cells, rows))
    lines += ["", "## The smallest difference each configuration could show", "",
              "Seeds' standard deviation of dev accuracy, and (1.96 + 0.84) * sd * sqrt(2 / n): the difference to a "
              "configuration of the same spread that a two-sample comparison detects with 80% power at alpha 0.05.", ""]
    lines += pipe_table(["N", "H", "k", "seeds", "mean", "sd", "smallest detectable difference"], map(_detectable_cells, detectable))
    path.write_text("\n".join(lines) + "\n")
    return path


def _claim_cells(row: dict) -> list[str]:
    if row["mean"] is None:
        return [row["claim"], "0", "-", "-", row["verdict"]]
    return [row["claim"], str(row["pairs"]), f"{row['mean'] * 100:+.2f}",
            f"[{row['ci95'][0] * 100:+.2f}, {row['ci95'][1] * 100:+.2f}]", row["verdict"]]


def _detectable_cells(d: dict) -> list[str]:
    n_layers, hidden, vocab = d["config"]
    sd = "-" if d["sd"] is None else f"{d['sd'] * 100:.2f}"
    smallest = "-" if d["detectable"] is None else f"{d['detectable'] * 100:.2f}"
    return [str(n_layers), str(hidden), f"{vocab:,}", str(d["n"]), f"{d['mean']:.4f}", sd, smallest]
