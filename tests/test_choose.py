"""The report's choose page (sst2mlp.report.choose): which configuration and impl, on the accuracy-cost front with
the seeds' noise taken into account, and within a budget."""
import math

from test_report import NEW

from sst2mlp.report.choose import Choice, accuracy_gap, best_within, choices, front, resolvably_more_accurate, write_choose
from sst2mlp.report.runs import Key, read_run


def choice(impl, layers, accuracies, latency_us, model_bytes=1000, exact=True):
    return Choice(Key(layers, 128, 1000, impl, 1, "sparse"), tuple(accuracies), latency_us, model_bytes, exact)


SMALL = choice("fused", 1, [0.80, 0.81, 0.79, 0.80, 0.80], 2.0)
SMALL_SLOWER = choice("sparse", 1, SMALL.accuracies, 9.0)  # the same models, another impl
NOISY_BIGGER = choice("fused", 2, [0.81, 0.80, 0.80, 0.81, 0.79], 4.0)  # within the seeds' noise of SMALL
CLEARLY_BIGGER = choice("fused", 4, [0.83, 0.85, 0.81, 0.83, 0.84], 8.0)  # better on every seed


def latency(c):
    return c.latency_us


def test_the_gap_is_taken_seed_by_seed_and_the_same_models_are_never_apart():
    gap, half_width = accuracy_gap(CLEARLY_BIGGER, SMALL)
    assert math.isclose(gap, 0.032) and 0 < half_width < gap
    assert accuracy_gap(SMALL_SLOWER, SMALL) == (0.0, 0.0) and not resolvably_more_accurate(SMALL_SLOWER, SMALL)
    assert not resolvably_more_accurate(NOISY_BIGGER, SMALL) and resolvably_more_accurate(CLEARLY_BIGGER, NOISY_BIGGER)
    one_seed = choice("fused", 8, [0.99], 50.0)
    assert accuracy_gap(one_seed, SMALL)[1] == math.inf and not resolvably_more_accurate(one_seed, SMALL)


def test_the_front_keeps_a_costlier_choice_only_when_it_is_resolvably_more_accurate():
    options = [CLEARLY_BIGGER, NOISY_BIGGER, SMALL_SLOWER, SMALL]
    assert front(options, latency) == [SMALL, CLEARLY_BIGGER]
    assert front([SMALL_SLOWER, NOISY_BIGGER], latency) == [NOISY_BIGGER]  # cheaper and not resolvably worse


def test_within_a_budget_the_most_accurate_and_the_cheapest_the_seeds_cannot_tell_from_it():
    options = [CLEARLY_BIGGER, NOISY_BIGGER, SMALL_SLOWER, SMALL]
    assert best_within(options, latency, 1.0) is None
    assert best_within(options, latency, 5.0) == (NOISY_BIGGER, SMALL)
    assert best_within(options, latency, 100.0) == (CLEARLY_BIGGER, CLEARLY_BIGGER)


def test_the_report_writes_a_choose_page_from_a_run(tmp_path):
    run = read_run(NEW)
    options = choices(run)
    assert options and all(c.key.trained_impl == run.source_trainer and c.latency_us > 0 for c in options)
    text = write_choose(tmp_path / "choose.md", run).read_text()
    for heading in ("## Worth their batch-1 latency", "## Within a batch-1 latency budget", "## Worth their bytes held",
                    "## Within a bytes held budget"):
        assert heading in text
    cheapest = min(options, key=latency)
    assert cheapest.label in text.split("## Worth their batch-1 latency")[1].split("##")[0]
