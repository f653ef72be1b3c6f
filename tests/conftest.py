import contextlib
import io
import os
import random
import subprocess

import pytest
import torch

from helpers import ROOT, child_env
from sst2mlp import MLP, FeatureCache, TrainConfig, train
from sst2mlp.measure.machine import flushing_denormals, set_denormals
from sst2mlp.reference.data import DataError, resolve_data_dir

POSITIVE_WORDS = ["great", "fun", "charming", "moving", "gem", "delight"]
NEGATIVE_WORDS = ["dull", "boring", "mess", "tedious", "flat", "bland"]
NEUTRAL_WORDS = ["the", "film", "a", "story", "cast", "plot", "is", "and"]


def synthetic_sentences(count: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.randint(0, 1)
        words = rng.sample(NEUTRAL_WORDS, 3) + rng.sample(POSITIVE_WORDS if label else NEGATIVE_WORDS, 2)
        rng.shuffle(words)
        rows.append((" ".join(words) + " .", label))
    return rows


@pytest.fixture
def run_pytest_here(monkeypatch):
    """pytest run inside this process, as helpers.run_pytest runs it in a new one: for runs that need no process of
    their own (a usage error, --collect-only, a data or memory check, a tiny grid), 0.1 s instead of the 2-3 s a new
    process takes to import torch. Runs that do (a signal, a runtime or kernel that must not be loaded yet, the smoke
    run as users start it) use run_pytest. The environment is run_pytest's (`env` replaces it); torch's threads and
    denormal mode, which the suite's plugin sets, are restored afterwards. Modules the run imports stay imported:
    torch's cannot be imported twice (pytester's in-process runs remove them)."""
    monkeypatch.chdir(ROOT)
    threads, flushing = torch.get_num_threads(), flushing_denormals()

    def run(*args, env=None):
        wanted = child_env(env)
        for name in set(os.environ) - set(wanted):
            monkeypatch.delenv(name)
        for name, value in wanted.items():
            monkeypatch.setenv(name, value)
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = pytest.main([f"--rootdir={ROOT}", "-c", str(ROOT / "pytest.ini"), "-p", "no:cacheprovider",
                                    "--capture=sys", *args])
        finally:
            torch.set_num_threads(threads)
            set_denormals("flush" if flushing else "keep")
        return subprocess.CompletedProcess(args, int(code), out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def tiny_glue(tmp_path):
    """A GLUE-format SST-2 folder with 2000 train and 100 dev synthetic sentences (20 distinct words)."""
    folder = tmp_path / "sst2"
    folder.mkdir()
    for name, count, seed in (("train.tsv", 2000, 1), ("dev.tsv", 100, 2)):
        lines = ["sentence\tlabel"] + [f"{s} \t{label}" for s, label in synthetic_sentences(count, seed)]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def sst2(suite):
    """The real SST-2, for the tests that need it. Without a copy (no --sst2-data, no $SST2_DATA_DIR, hub
    unreachable) they are skipped with one reason; where a copy was pointed at, a problem with it fails them."""
    try:
        return suite.corpus.data
    except DataError as error:
        message = str(error)
    if resolve_data_dir(suite.options.data_dir) is not None:
        pytest.fail(message, pytrace=False)
    pytest.skip(f"needs the real SST-2 ({message})")


def pytest_configure(config):
    """Under pytest-xdist, tests are handed to the workers two at a time as they finish (xdist's default hands each
    worker a quarter of its share at once: all the slow tests, which run first, would go to the first worker)."""
    if getattr(config.option, "maxschedchunk", "absent") is None:
        config.option.maxschedchunk = 2


def pytest_collection_modifyitems(items):
    """The slow tests first: a slow one near the end keeps one worker busy while the others have nothing left."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionfinish(session, exitstatus):
    """CI sets SST2MLP_FAIL_ON_SKIP=1: there every test must run, so a skip (no data, no ruff) fails the run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("SST2MLP_FAIL_ON_SKIP") and skipped and exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"SST2MLP_FAIL_ON_SKIP is set and {len(skipped)} test(s) were skipped", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def baseline_trained_on_a_subset(sst2):
    """The baseline architecture (N=2, H=256, k=10,000), trained sparse on 20,000 examples for one epoch."""
    features = FeatureCache(sst2.train.sentences[:20_000], sst2.dev.sentences)(10_000)
    torch.manual_seed(0)
    model = MLP(2, 256, 10_000, sparse=True)
    train(model, features.train, torch.from_numpy(sst2.train.labels[:20_000]), TrainConfig(epochs=1))
    return model, features.dev, torch.from_numpy(sst2.dev.labels)


@pytest.fixture
def tables_only(monkeypatch):
    """For report tests of the tables and the inputs: no figures (most of a report's time; test_report draws them once)."""
    from sst2mlp.report import cli

    monkeypatch.setattr(cli, "write_figures", lambda *args, **kwargs: [])
