"""Small statistics the suite, the report and the regression gate share (numpy and scipy, no torch). scipy.stats is
imported where a function needs it: importing it costs half a second and 65 MB, and every pytest process of the suite
imports this module (through the contract) without needing it."""
from __future__ import annotations

import math

import numpy as np
from pytest_benchmark.stats import Stats as RoundStats

UNSTABLE_SPREAD = 0.10  # IQR/median above this flags a timing, as torch.utils.benchmark warns at 10%


def t95(degrees_of_freedom: int) -> float:
    """The two-sided 95% quantile of Student's t."""
    import scipy.stats

    return float(scipy.stats.t.ppf(0.975, degrees_of_freedom))


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
    """How stable a set of timed rounds is: IQR/median and (max-min)/median as pytest-benchmark's own statistics of
    the rounds give them (its quartiles, the ones its tables show), and the verdict."""
    rounds = RoundStats()
    for value in seconds:
        rounds.update(float(value))
    median = rounds.median
    iqr_ratio = rounds.iqr / median if median > 0 else float("inf")
    range_ratio = (rounds.max - rounds.min) / median if median > 0 else float("inf")
    return {"iqr_over_median": iqr_ratio, "range_over_median": range_ratio, "unstable": bool(iqr_ratio > UNSTABLE_SPREAD)}


def block_medians(seconds, blocks: int = 20) -> list[float]:
    """Medians of consecutive blocks of rounds: samples that each span a stretch of time, for comparing runs
    (single rounds are correlated: a hiccup of the machine slows many in a row)."""
    x = np.asarray(seconds, dtype=float)
    return [float(np.median(part)) for part in np.array_split(x, min(blocks, len(x))) if len(part)]


def mann_whitney_p(a, b) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with tie and continuity corrections, as
    asv uses it)."""
    import scipy.stats

    if len(a) == 0 or len(b) == 0:
        raise ValueError("both samples need values")
    result = scipy.stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic", use_continuity=True)
    return 1.0 if math.isnan(result.pvalue) else float(result.pvalue)  # nan: every value tied


def bootstrap_ratio_of_medians(baseline, new, resamples: int = 2000, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of median(new) / median(baseline), each sample resampled on its own."""
    import scipy.stats

    def ratio(a, b, axis=-1):
        return np.median(b, axis=axis) / np.median(a, axis=axis)

    result = scipy.stats.bootstrap((np.asarray(baseline, dtype=float), np.asarray(new, dtype=float)), ratio,
                                   n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed))
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def paired_bootstrap(differences, resamples: int = 10000, seed: int = 0) -> dict:
    """Mean of paired differences with a 95% percentile-bootstrap interval (resampling the pairs)."""
    import scipy.stats

    d = np.asarray(differences, dtype=float)
    if len(d) == 0:
        raise ValueError("no paired differences")
    if len(d) == 1:  # one pair: every resample is that pair
        return {"mean": float(d[0]), "ci95": [float(d[0])] * 2, "n": 1}
    result = scipy.stats.bootstrap((d,), np.mean, n_resamples=resamples, method="percentile",
                                   rng=np.random.default_rng(seed))
    return {"mean": float(d.mean()), "ci95": [float(result.confidence_interval.low), float(result.confidence_interval.high)],
            "n": len(d)}
