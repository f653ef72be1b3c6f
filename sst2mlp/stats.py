"""Small statistics the suite, the report and the regression gate share (numpy only, no torch)."""
from __future__ import annotations

import math

import numpy as np

UNSTABLE_SPREAD = 0.10  # IQR/median above this flags a timing, as torch.utils.benchmark warns at 10%

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom; beyond that the normal 1.96 is close enough.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t95(degrees_of_freedom: int) -> float:
    return _T95[degrees_of_freedom - 1] if degrees_of_freedom <= len(_T95) else 1.96


def mean_interval(values) -> dict:
    """Mean, sample standard deviation and a 95% t-interval of the mean (None where n is too small)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("no values")
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "std": None, "ci95": None, "n": n}
    std = float(x.std(ddof=1))
    half = t95(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}


def spread(seconds) -> dict:
    """How stable a set of timed rounds is: IQR/median, (max-min)/median, and the verdict."""
    x = np.asarray(seconds, dtype=float)
    median = float(np.median(x))
    q1, q3 = np.percentile(x, [25, 75])
    iqr_ratio = float((q3 - q1) / median) if median > 0 else float("inf")
    range_ratio = float((x.max() - x.min()) / median) if median > 0 else float("inf")
    return {"iqr_over_median": iqr_ratio, "range_over_median": range_ratio, "unstable": bool(iqr_ratio > UNSTABLE_SPREAD)}


def block_medians(seconds, blocks: int = 20) -> list[float]:
    """Medians of consecutive blocks of rounds: samples that each span a stretch of time, for comparing runs
    (single rounds are correlated: a hiccup of the machine slows many in a row)."""
    x = np.asarray(seconds, dtype=float)
    return [float(np.median(part)) for part in np.array_split(x, min(blocks, len(x))) if len(part)]


def mann_whitney_p(a, b) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with tie correction), as asv uses it."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need values")
    combined = np.concatenate([a, b])
    order = combined.argsort(kind="mergesort")
    ranks = np.empty(len(combined))
    sorted_values = combined[order]
    i = 0
    while i < len(combined):  # average ranks over ties
        j = i
        while j + 1 < len(combined) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u1 = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    _, counts = np.unique(combined, return_counts=True)
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - (counts**3 - counts).sum() / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (abs(u1 - n1 * n2 / 2) - 0.5) / math.sqrt(variance)
    return float(math.erfc(max(z, 0.0) / math.sqrt(2)))


def bootstrap_ratio_of_medians(baseline, new, resamples: int = 2000, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of median(new) / median(baseline)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(baseline, dtype=float), np.asarray(new, dtype=float)
    ma = np.median(rng.choice(a, size=(resamples, len(a))), axis=1)
    mb = np.median(rng.choice(b, size=(resamples, len(b))), axis=1)
    low, high = np.percentile(mb / ma, [2.5, 97.5])
    return [float(low), float(high)]


def paired_bootstrap(differences, resamples: int = 10000, seed: int = 0) -> dict:
    """Mean of paired differences with a 95% percentile-bootstrap interval (resampling the pairs)."""
    d = np.asarray(differences, dtype=float)
    if len(d) == 0:
        raise ValueError("no paired differences")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(d.mean()), "ci95": [float(low), float(high)], "n": len(d)}
