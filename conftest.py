"""pytest options and hooks of the sst2mlp suite; the work is done by the sst2mlp package."""
import os

import pytest
import torch

from sst2mlp.data import DATA_DIR_ENV, DataError, resolve_data_dir
from sst2mlp.machine import available_cores, busy_warning, machine_load, set_denormals, update_machine_info
from sst2mlp.model import ModelConfig
from sst2mlp.options import OPTIONS, SuiteOptions
from sst2mlp.progress import Progress
from sst2mlp.suite import Suite, TrainingRuns, check_extra_info


def pytest_addoption(parser):
    group = parser.getgroup("sst2mlp", "sst2mlp benchmark suite")
    for option in OPTIONS:
        shown = f" (default: {option.default})" if option.default is not None else ""
        group.addoption(option.flag, type=option.parse, default=option.default, metavar=option.metavar,
                        help=option.help + shown)


def pytest_configure(config):
    try:
        config.sst2_options = SuiteOptions.from_pytest(config.getoption)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    config.sst2_suite = Suite(config.sst2_options)
    # before torch starts its worker threads, which inherit the setting
    config.sst2_denormals = {"mode": config.sst2_options.denormals, "flush_supported": set_denormals(config.sst2_options.denormals)}
    config.sst2_load = None
    _CONFIG[:] = [config]
    folder = resolve_data_dir(config.sst2_options.data_dir)
    if folder is not None and not folder.is_dir():
        raise pytest.UsageError(f"SST-2 folder {folder} (from --sst2-data or ${DATA_DIR_ENV}) does not exist or is not a folder")


def pytest_generate_tests(metafunc):
    options = metafunc.config.sst2_options
    if "model_config" in metafunc.fixturenames:
        grid = options.grid()
        metafunc.parametrize(
            "num_layers,hidden_size,vocab_size",
            [(c.num_layers, c.hidden_size, c.vocab_size) for c in grid],
            ids=[c.id for c in grid],
        )
    if "pinned_threads" in metafunc.fixturenames:
        metafunc.parametrize("threads", options.threads, ids=[f"T{t}" for t in options.threads])
    explicit = {name.strip() for mark in metafunc.definition.iter_markers("parametrize") for name in mark.args[0].split(",")}
    if "impl" in metafunc.fixturenames and "impl" not in explicit:
        trains = "training_runs" in metafunc.fixturenames
        metafunc.parametrize("impl", options.train_impls if trains else options.impls)


def _benchmarks_to_run(session) -> list:
    return [item for item in session.items
            if "benchmark" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("skip")]


def pytest_collection_finish(session):
    """Before any benchmark: check the data and the grid once (one error, not one per benchmark), then record
    how busy the machine is, and say so when it is too busy for timings."""
    config = session.config
    if config.option.collectonly or not _benchmarks_to_run(session):
        return
    suite = config.sst2_suite
    try:
        suite.check_vocabulary_sizes()
        suite.check_memory()
    except DataError as error:
        pytest.exit(f"sst2mlp: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
    except ValueError as error:
        pytest.exit(f"sst2mlp: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
    for warning in suite.data_warnings():
        config.issue_config_time_warning(pytest.PytestWarning(f"sst2mlp: {warning}"), stacklevel=2)
    config.sst2_load = machine_load()
    progress = config.sst2_options.progress
    if progress == "on" or (progress == "auto" and config.get_verbosity() >= 0):
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        suite.progress = Progress([item.nodeid for item in _benchmarks_to_run(session)], write=reporter.write_line,
                                  terminal=bool(reporter.isatty), min_other_seconds=config.sst2_options.min_time)
    cores = available_cores()
    warning = busy_warning(config.sst2_load, cores)
    if warning:
        config.issue_config_time_warning(pytest.PytestWarning(f"sst2mlp: {warning}"), stacklevel=2)
    if max(config.sst2_options.threads) > cores:
        config.issue_config_time_warning(pytest.PytestWarning(
            f"sst2mlp: --sst2-threads asks for {max(config.sst2_options.threads)} threads but this process may use "
            f"{cores} core(s): those timings measure oversubscription"), stacklevel=2)


def pytest_runtest_logstart(nodeid, location):
    progress = _progress()
    if progress is not None and nodeid in progress.nodeids:
        progress.benchmark_started(nodeid)


def pytest_runtest_logfinish(nodeid, location):
    progress = _progress()
    if progress is not None and nodeid in progress.nodeids:
        progress.benchmark_finished(nodeid)


_CONFIG = []  # the session's config, for the hooks that do not receive it


def _progress():
    return _CONFIG[0].sst2_suite.progress if _CONFIG else None


def pytest_benchmark_update_machine_info(config, machine_info):
    update_machine_info(machine_info, config.sst2_options.threads, config.sst2_options.impls, config.sst2_denormals,
                        config.sst2_load)


UNSTABLE_SHOWN = 8


def _saved_to(config) -> str | None:
    """Where pytest-benchmark saved this run: the --benchmark-json file, or the storage folder of an autosave."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return None
    if session.json:
        return str(session.json) if isinstance(session.json, (str, os.PathLike)) else str(session.json.name)
    if session.save or session.autosave:
        return str(getattr(session.storage, "path", session.storage))
    return None


def pytest_terminal_summary(terminalreporter, config):
    suite = config.sst2_suite
    summary = suite.summary()
    if summary:
        terminalreporter.write_line(summary)
    target = _saved_to(config)
    if target:
        terminalreporter.write_line(f"sst2mlp: results saved in {target}; make the figures and tables with: "
                                    f"sst2mlp-report {target} --out report/")
    if suite.unstable:
        shown = suite.unstable[:UNSTABLE_SHOWN]
        more = f"; and {len(suite.unstable) - len(shown)} more" if len(suite.unstable) > len(shown) else ""
        terminalreporter.write_line(
            f"sst2mlp: {len(suite.unstable)} timing(s) unstable (IQR/median above 10%; flagged 'unstable' in extra_info, "
            f"marked '!' by sst2mlp-report): " + "; ".join(shown) + more, yellow=True)


@pytest.fixture(scope="session")
def suite(pytestconfig):
    return pytestconfig.sst2_suite


@pytest.fixture(scope="session")
def sst2(suite):
    try:
        suite.check_vocabulary_sizes()
        return suite.data
    except DataError as error:
        message = str(error)
    except ValueError as error:
        message = str(error)
    pytest.fail(message, pytrace=False)  # outside the except block: no chained traceback


@pytest.fixture
def model_config(num_layers, hidden_size, vocab_size):
    return ModelConfig(num_layers, hidden_size, vocab_size)


@pytest.fixture
def pinned_threads(threads):
    """Run the test with exactly `threads` torch threads, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield threads
    torch.set_num_threads(previous)


@pytest.fixture
def training_runs(suite, sst2, model_config, impl, pinned_threads):
    return TrainingRuns(suite, model_config, trained_impl=impl)


@pytest.fixture
def variant(suite, sst2, model_config, impl, pinned_threads):
    return suite.variant(model_config, impl).variant


@pytest.fixture
def described_benchmark(benchmark, suite, sst2, model_config, impl, pinned_threads):
    """The benchmark fixture; after the test its extra_info gets the configuration's costs and accuracy."""
    yield benchmark
    if not benchmark.has_error:
        benchmark.extra_info.update(suite.extra_info(model_config, impl, pinned_threads, benchmark.group))
        if benchmark.stats is not None:  # timed, so every field of the contract is there
            check_extra_info(benchmark.group, benchmark.extra_info)
