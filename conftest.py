"""pytest options and hooks of the sst2mlp suite; the work is done by sst2mlp.suite."""
import pytest
import torch

from sst2mlp import DataError
from sst2mlp.data import DATA_DIR_ENV, resolve_data_dir
from sst2mlp.model import ModelConfig
from sst2mlp.impls import IMPLS
from sst2mlp.suite import Suite, SuiteOptions, TrainingRuns, update_machine_info

OPTIONS = {  # name: (default, metavar, help)
    "--sst2-layers": ("1,2,4", "LIST", "hidden layer counts of the grid, comma-separated"),
    "--sst2-widths": ("128,256,512", "LIST", "hidden sizes of the grid, comma-separated"),
    "--sst2-vocabs": ("1000,5000,10000", "LIST", "vocabulary sizes of the grid, comma-separated"),
    "--sst2-threads": ("1", "LIST", "torch thread counts; several values add a thread axis"),
    "--sst2-impls": (",".join(IMPLS), "LIST", "implementations timed for latency and throughput"),
    "--sst2-train-impls": ("dense", "LIST", "implementations timed for training: dense, sparse"),
    "--sst2-train-rounds": ("4", "N", "timed 2-epoch trainings per configuration, after one warm-up training"),
    "--sst2-train-limit": (None, "N", "train on only the first N training examples (smoke runs)"),
    "--sst2-latency-rounds": ("1744", "N", "single-example forward passes timed per inference benchmark (872 dev examples, cycled)"),
    "--sst2-data": (None, "DIR", "local SST-2 folder (GLUE train.tsv/dev.tsv or hub parquet); default $SST2_DATA_DIR, else the hub"),
}


def pytest_addoption(parser):
    group = parser.getgroup("sst2mlp", "sst2mlp benchmark suite")
    for name, (default, metavar, help_text) in OPTIONS.items():
        shown = f" (default: {default})" if default else ""
        group.addoption(name, default=default, metavar=metavar, help=help_text + shown)


def pytest_configure(config):
    values = {name[len("--sst2-"):].replace("-", "_"): config.getoption(name) for name in OPTIONS}
    values["data_dir"] = values.pop("data")
    try:
        config.sst2_options = SuiteOptions.parse(**values)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    config.sst2_suite = Suite(config.sst2_options)
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


def pytest_benchmark_update_machine_info(config, machine_info):
    update_machine_info(machine_info, config.sst2_options)


def pytest_terminal_summary(terminalreporter, config):
    summary = config.sst2_suite.summary()
    if summary:
        terminalreporter.write_line(summary)


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
        message = f"--sst2-vocabs: {error}"
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
    return TrainingRuns(suite, model_config, sparse=impl == "sparse")


@pytest.fixture
def variant(suite, sst2, model_config, impl, pinned_threads):
    return suite.variant(model_config, impl).variant


@pytest.fixture
def described_benchmark(benchmark, suite, sst2, model_config, impl, pinned_threads):
    """The benchmark fixture; after the test its extra_info gets the configuration's costs and accuracy."""
    yield benchmark
    if benchmark.stats is not None:  # the test got as far as timing
        benchmark.extra_info.update(suite.extra_info(model_config, impl, pinned_threads, benchmark.group))
