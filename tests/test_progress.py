import pytest

from sst2mlp.suite.plugin import shows_progress
from sst2mlp.suite.progress import Planned, Progress, fit_line

IDS = ["b.py::test_training[L1-H8-V10-T1-dense-B64]", "b.py::test_training[L1-H8-V20-T1-dense-B64]",
       "b.py::test_inference[L1-H8-V10-T1-dense-B1]", "b.py::test_inference[L1-H8-V20-T1-dense-B1]"]
PLANNED = [Planned(IDS[0], 10.0, "training"), Planned(IDS[1], 20.0, "training"), Planned(IDS[2]), Planned(IDS[3])]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_estimate_appears_only_once_each_kind_was_measured_and_follows_the_work():
    clock, lines = FakeClock(), []
    progress = Progress(PLANNED, write=lines.append, clock=clock)
    progress.benchmark_started(IDS[0])
    assert lines[-1].startswith("sst2mlp: 0/4 benchmarks done, 0m00s elapsed, unknown left | test_training[L1-H8-V10-T1-dense-B64]")
    progress.training_round(0, 5)
    assert lines[-1].endswith("round 1/5 (warm-up)")
    clock.now = 10.0
    progress.benchmark_finished(IDS[0])
    assert "1/4 benchmarks done, 0m10s elapsed, unknown left" in lines[-1]  # no latency benchmark measured yet
    progress.benchmark_started(IDS[1])
    clock.now = 28.0
    progress.benchmark_finished(IDS[1])
    clock.now = 30.0
    progress.benchmark_started(IDS[2])
    clock.now = 32.0
    progress.benchmark_finished(IDS[2])
    # one latency benchmark left at the 2 s measured so far
    assert lines[-1] == "sst2mlp: 3/4 benchmarks done, 0m32s elapsed, ~0m02s left"
    assert progress.remaining_seconds() == 2.0


def test_before_any_latency_benchmark_the_estimate_is_a_lower_bound_from_the_measuring_floor():
    clock, lines = FakeClock(), []
    progress = Progress(PLANNED, write=lines.append, clock=clock, min_other_seconds=1.5)
    progress.benchmark_started(IDS[0])
    assert "unknown left" in lines[-1]  # no training measured yet
    clock.now = 10.0
    progress.benchmark_finished(IDS[0])
    assert progress.estimate() == (10.0 + 2 * 1.5, True)  # one training size measured: the next counts as much
    assert "1/4 benchmarks done, 0m10s elapsed, at least ~0m13s left" in lines[-1]
    progress.benchmark_started(IDS[1])
    clock.now = 28.0
    progress.benchmark_finished(IDS[1])
    progress.benchmark_started(IDS[2])
    clock.now = 32.0
    progress.benchmark_finished(IDS[2])
    assert progress.estimate() == (4.0, False) and lines[-1].endswith("~0m04s left")  # measured: no longer a bound


def test_training_estimates_follow_a_line_through_the_measured_trainings_work():
    ids = [f"b.py::test_training[L1-H8-V{vocab}-T1-dense-B64]" for vocab in (10, 20, 40)]
    work = [152, 232, 392]
    clock = FakeClock()
    progress = Progress([Planned(i, w, "training") for i, w in zip(ids, work)], write=lambda line: None, clock=clock)
    for nodeid, seconds in zip(ids[:2], (10.0, 14.0)):
        progress.benchmark_started(nodeid)
        clock.now += seconds
        progress.benchmark_finished(nodeid)
    # 4 s more per 80 units of work
    assert progress.remaining_seconds() == pytest.approx(14.0 + 4.0 * (work[2] - work[1]) / 80)


def test_the_training_line_has_no_negative_part_and_is_flat_for_one_size():
    assert fit_line([100, 200], [10, 30]) == (0.0, pytest.approx(40 / 300))  # a line through (100, 10), (200, 30)
    # would start at -10 s: proportional instead
    assert fit_line([100, 200, 300], [20, 30, 40]) == (pytest.approx(10.0), pytest.approx(0.1))
    assert fit_line([100, 100], [10, 14]) == (12.0, 0.0)
    assert fit_line([100, 200], [30, 10]) == (20.0, 0.0)  # more work never predicts less time


def test_plain_output_writes_occasional_lines():
    clock, lines = FakeClock(), []
    progress = Progress(PLANNED, write=lines.append, clock=clock, terminal=False, every=30.0)
    for nodeid in IDS:
        progress.benchmark_started(nodeid)
        clock.now += 5.0
        progress.benchmark_finished(nodeid)
    assert len(lines) == 2 and lines[-1].startswith("sst2mlp: 4/4 benchmarks done, 0m20s elapsed, ~0m00s left")


@pytest.mark.parametrize("option, verbosity, shown", [("on", -1, True), ("off", 0, False), ("auto", 0, True), ("auto", -1, False)])
def test_progress_shows_unless_switched_off_or_quiet(option, verbosity, shown):
    assert shows_progress(option, verbosity) is shown


def test_latency_and_cold_start_estimates_each_follow_their_own_line_through_the_work():
    """A run starts with its smallest configurations: their latency benchmarks must not set the pace of the large."""
    ids = [f"b.py::test_inference[L1-H8-V{vocab}-T1-dense-B1]" for vocab in (10, 20, 40)] + ["b.py::test_coldstart[x]"]
    planned = [Planned(i, w) for i, w in zip(ids, (100, 200, 400))] + [Planned(ids[3], 200, "coldstart")]
    clock = FakeClock()
    progress = Progress(planned, write=lambda line: None, clock=clock, min_other_seconds=1.0)
    for nodeid, seconds in zip(ids[:2], (2.0, 3.0)):
        progress.benchmark_started(nodeid)
        clock.now += seconds
        progress.benchmark_finished(nodeid)
    # 1 s + 0.01 s per unit of work for the last latency benchmark; the cold start, unmeasured, at the floor
    assert progress.estimate() == (pytest.approx(5.0 + 1.0), True)
