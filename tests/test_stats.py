import numpy as np
import pytest

from sst2mlp.stats import bootstrap_ratio_of_medians, mann_whitney_p, mean_interval, paired_bootstrap, spread


def test_mean_interval_uses_the_t_quantile():
    summary = mean_interval([0.80, 0.82, 0.84])
    assert summary["mean"] == pytest.approx(0.82) and summary["std"] == pytest.approx(0.02)
    half = 4.303 * 0.02 / np.sqrt(3)
    assert summary["ci95"] == pytest.approx([0.82 - half, 0.82 + half], abs=1e-5)  # t(2) is 4.3027
    assert mean_interval([0.8]) == {"mean": 0.8, "std": None, "ci95": None, "n": 1}


def test_spread_flags_above_ten_percent():
    assert not spread([1.0, 1.01, 0.99, 1.0])["unstable"]
    assert spread([1.0, 1.3, 0.8, 1.0])["unstable"]


def test_mann_whitney_finds_a_shift_and_not_a_null():
    rng = np.random.default_rng(1)
    base = rng.lognormal(0.0, 0.1, 300)
    assert mann_whitney_p(base, base * 1.3) < 1e-6
    assert mann_whitney_p(base, rng.permutation(base)) > 0.5
    assert mann_whitney_p(rng.lognormal(0.0, 0.1, 300), rng.lognormal(0.0, 0.1, 300)) > 0.002


def test_ratio_of_medians_interval_covers_the_true_ratio():
    rng = np.random.default_rng(2)
    base = rng.lognormal(0.0, 0.1, 400)
    low, high = bootstrap_ratio_of_medians(base, rng.lognormal(np.log(1.3), 0.1, 400))
    assert low < 1.3 < high and low > 1.2


def test_paired_bootstrap_finds_an_effect_and_not_a_null():
    rng = np.random.default_rng(3)
    effect = paired_bootstrap(0.02 + rng.normal(0, 0.01, 40))
    assert effect["ci95"][0] > 0.0 and effect["mean"] == pytest.approx(0.02, abs=0.005)
    null = paired_bootstrap(rng.normal(0, 0.01, 40))
    assert null["ci95"][0] < 0.0 < null["ci95"][1]


def test_scipys_statistics_give_what_the_hand_written_ones_gave():
    """The values the suite's own t table, U test and bootstraps gave on these samples (at 57dd02e), from scipy."""
    rng = np.random.default_rng(7)
    a, b = np.round(rng.lognormal(0, 0.1, 60), 4), np.round(rng.lognormal(0.05, 0.1, 50), 4)
    differences = np.round(0.02 + rng.normal(0, 0.01, 40), 5)
    assert mann_whitney_p(a, b) == pytest.approx(0.0003271374669712772, rel=1e-9)
    assert bootstrap_ratio_of_medians(a, b) == pytest.approx([1.0194291736534382, 1.0902797798595754], rel=1e-9)
    assert paired_bootstrap(differences)["ci95"] == pytest.approx([0.01560695, 0.02123805625], rel=1e-9)
    assert mean_interval([0.80, 0.82, 0.84, 0.81, 0.83])["ci95"] == pytest.approx([0.80037, 0.83963], abs=1e-5)  # t(4) 2.776
