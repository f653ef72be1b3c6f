import argparse
import re

import pytest

from helpers import ROOT, assert_usage_error, parse_error, parsed, run_pytest
from sst2mlp.impls.registry import DEFAULT_IMPLS, IMPL_NAMES
from sst2mlp.reference.model import ModelConfig
from sst2mlp.suite.options import OPTIONS, SuiteOptions, impl_list, positive_int, positive_int_list


def test_positive_int_list():
    assert positive_int_list("1,2, 4") == (1, 2, 4)
    assert positive_int_list("10000") == (10000,)


@pytest.mark.parametrize("text", ["", "1,,2", "a", "0", "-1", "1.5", "2,2", "\u00b2"])
def test_positive_int_list_rejects_malformed_lists(text):
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int_list(text)


@pytest.mark.parametrize("text", ["0", "x", "1,2", ""])
def test_a_single_number_is_asked_for_as_one(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected a positive integer such as 4"):
        positive_int(text)


def test_impl_lists_name_the_unknown_impl_and_the_choices():
    assert impl_list(IMPL_NAMES)("dense, int8") == ("dense", "int8")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown impl 'onnx'; expected some of dense, sparse"):
        impl_list(IMPL_NAMES)("dense,onnx")


def test_defaults_come_from_the_option_records():
    options = SuiteOptions()
    assert options.layers == (1, 2, 4) and options.impls == DEFAULT_IMPLS and options.train_limit is None
    grid = options.grid()
    assert len(grid) == 27 and len(set(grid)) == 27 and ModelConfig(2, 256, 10000) in grid


@pytest.mark.parametrize(
    "option, expected",
    [
        ("--sst2-layers=1,x", "argument --sst2-layers: expected a comma-separated list of positive integers such as 1,2,4, got '1,x'"),
        ("--sst2-train-limit=1,2", "argument --sst2-train-limit: expected a positive integer such as 4, got '1,2'"),
        ("--sst2-impls=dense,onnx", "argument --sst2-impls: unknown impl 'onnx'; expected some of dense, sparse, torchscript, fused, fused-noskip, int8"),
        ("--sst2-train-impls=int8", "argument --sst2-train-impls: unknown impl 'int8'; expected some of dense, sparse"),
        ("--sst2-seed=-1", "argument --sst2-seed: expected a non-negative integer such as 0, got '-1'"),
        ("--sst2-seeds=2", "--sst2-seeds 2 is below the 5 trainings each configuration runs anyway"),
        ("--sst2-denormals=off", "argument --sst2-denormals: expected one of flush, keep, got 'off'"),
        ("--sst2-min-time=0", "argument --sst2-min-time: expected a positive number of seconds such as 1.0, got '0'"),
        ("--sst2-quiet-wait=-1", "argument --sst2-quiet-wait: expected a number of seconds, 0 or more, such as 20, got '-1'"),
        ("--sst2-quiet-speed=1.5", "argument --sst2-quiet-speed: expected a fraction above 0 and at most 1, such as 0.8, got '1.5'"),
        ("--sst2-preset=fast", "argument --sst2-preset: expected one of none, quick, got 'fast'"),
        ("--sst2-coldstart=all", "argument --sst2-coldstart: expected one of baseline, grid, off, got 'all'"),
        ("--sst2-coldstart-rounds=0", "argument --sst2-coldstart-rounds: expected a positive integer such as 4, got '0'"),
    ],
)
def test_malformed_option_is_refused_with_the_flag_and_the_expectation(option, expected):
    assert expected in parse_error(option)


def test_coldstart_covers_the_configuration_nearest_the_baseline_by_default():
    assert SuiteOptions().coldstart_grid() == [ModelConfig(2, 256, 10000)]
    assert parsed("--sst2-layers=1,4", "--sst2-widths=128,512", "--sst2-vocabs=1000").coldstart_grid() == [ModelConfig(1, 128, 1000)]
    assert parsed("--sst2-layers=1,2", "--sst2-widths=128,300", "--sst2-vocabs=1000,8000").coldstart_grid() == [ModelConfig(2, 300, 8000)]
    assert parsed("--sst2-coldstart=grid").coldstart_grid() == SuiteOptions().grid()
    assert parsed("--sst2-coldstart=off").coldstart_grid() == []


def test_pytest_stops_a_malformed_option_with_a_usage_error(run_pytest_here):
    assert_usage_error(run_pytest_here, "--sst2-layers=1,x", "argument --sst2-layers: expected a comma-separated list of positive integers")


def test_an_option_given_at_its_default_value_wins_over_the_preset():
    quick = parsed("--sst2-preset=quick")
    assert (quick.train_rounds, quick.layers, quick.quiet_wait) == (2, (1, 2), 2.0)
    explicit = parsed("--sst2-preset=quick", "--sst2-train-rounds=4", "--sst2-layers=1,2,4")
    assert (explicit.train_rounds, explicit.layers, explicit.widths) == (4, (1, 2, 4), (128, 256))
    assert parsed() == SuiteOptions()  # nothing given: the option records' defaults


def test_missing_data_folder_is_a_usage_error(tmp_path, run_pytest_here):
    run = run_pytest_here("benchmarks/", "--collect-only", "-q", f"--sst2-data={tmp_path / 'nope'}")
    assert run.returncode == 4
    assert f"SST-2 folder {tmp_path / 'nope'} (from --sst2-data or $SST2_DATA_DIR) does not exist" in run.stderr


def test_every_option_is_in_pytest_help_with_its_default(run_pytest_here):
    help_text = "".join(run_pytest_here("--help").stdout.split())  # argparse wraps long defaults, at hyphens too
    for option in OPTIONS:
        assert option.flag in help_text
        if option.default is not None:
            assert f"(default:{option.default})" in help_text


def test_the_readme_options_table_matches_the_option_records():
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(--sst2-[a-z-]+)` \| ([^|]+) \|", readme, flags=re.MULTILINE))
    assert set(rows) == {option.flag for option in OPTIONS}
    for option in OPTIONS:
        shown = rows[option.flag].strip()
        if option.default is not None:
            assert shown == f"`{option.default}`", option.flag


def test_benchmarks_under_xdist_stop_before_any_worker_starts_and_say_why():
    run = run_pytest("-p", "xdist.plugin", "benchmarks/", "-n", "2", "--sst2-layers=1", "--sst2-widths=8")
    assert run.returncode == 4, run.stdout + run.stderr
    assert "the benchmarks cannot run under pytest-xdist" in run.stderr and "without -n" in run.stderr
    assert "bringing up nodes" not in run.stdout


class FakeConfig:
    """What _xdist_problem reads of a pytest config."""

    def __init__(self, args, numprocesses=2, worker=False):
        self.args, self.rootpath, self.numprocesses = args, ROOT, numprocesses
        self.invocation_params = argparse.Namespace(dir=ROOT)
        if worker:
            self.workerinput = {}

    def getoption(self, name, default=None):
        return {"numprocesses": self.numprocesses, "dist": "load" if self.numprocesses else "no"}.get(name, default)


@pytest.mark.parametrize("config, collected_benchmarks, refused", [
    (FakeConfig(["benchmarks/bench_mlp.py::test_inference"]), False, True),  # relative to where pytest was started
    (FakeConfig([str(ROOT / "tests")]), False, False),  # the unit tests may use every core
    (FakeConfig([str(ROOT / "benchmarks")], numprocesses=None), False, False),
    (FakeConfig([str(ROOT)], worker=True), False, False),  # a worker asks again once it has collected...
    (FakeConfig([str(ROOT)], worker=True), True, True),  # ...and stops if it collected benchmarks
])
def test_only_benchmarks_are_refused_under_xdist(config, collected_benchmarks, refused):
    from sst2mlp.suite.plugin import _xdist_problem

    assert (_xdist_problem(config, collected_benchmarks) is not None) == refused
