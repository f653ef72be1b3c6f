"""Shared by the test modules: running pytest on the suite in a subprocess, and parsing its options in-process."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

from sst2mlp.suite import plugin
from sst2mlp.suite.options import SuiteOptions

ROOT = Path(__file__).resolve().parents[1]
QUIET = ("--sst2-quiet-wait=0", "-p", "no:cacheprovider")  # suite runs in tests: no waiting for a quiet machine


def child_env(env=None) -> dict:
    """The environment of a pytest run started by a test, at a fixed terminal width: without CI's SST2MLP_FAIL_ON_SKIP, and without pytest-xdist's
    worker variables (pytest-benchmark would take the child for an xdist worker and disable itself)."""
    kept = {k: v for k, v in (os.environ if env is None else env).items()
            if k != "SST2MLP_FAIL_ON_SKIP" and not k.startswith("PYTEST_XDIST")}
    return {**kept, "COLUMNS": "100"}  # pytest cuts its short summary lines to the terminal's width


def run_pytest(*args, timeout=300, env=None):
    """pytest in a subprocess, without CI's SST2MLP_FAIL_ON_SKIP (the runs that test skipping must be free to skip),
    at a fixed terminal width (pytest cuts its short summary lines to the width, so the output would otherwise
    depend on the terminal the tests run in), with pytest-benchmark as its only installed plugin: the runtimes'
    dependencies bring pytest plugins of their own (hypothesis, hydra, anyio, kgb) that each run would load."""
    env = child_env(env)
    env.update(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "pytest_benchmark.plugin", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def assert_usage_error(run_pytest_here, option: str, expected: str) -> None:
    """Collecting the suite with `option` stops with pytest's usage error (exit 4) and says `expected`."""
    run = run_pytest_here("benchmarks/", "--collect-only", "-q", option)
    assert run.returncode == 4 and expected in run.stderr, run.stderr


class ArgparseGroup:
    """Stands in for pytest's option group: the plugin's options registered on a plain argparse parser, which
    gives the same 'argument --flag: ...' messages as pytest's usage error, in-process."""

    def __init__(self):
        self.parser = argparse.ArgumentParser(exit_on_error=False)

    def getgroup(self, *args):
        return self

    def addoption(self, flag, **kwargs):
        self.parser.add_argument(flag, **kwargs)


def parsed(*arguments) -> SuiteOptions:
    """SuiteOptions from command-line arguments, through the plugin's options as pytest registers them."""
    group = ArgparseGroup()
    plugin.pytest_addoption(group)
    namespace = group.parser.parse_args(arguments)
    return SuiteOptions.from_pytest(lambda flag: getattr(namespace, flag.lstrip("-").replace("-", "_")))


def parse_error(option: str) -> str:
    group = ArgparseGroup()
    plugin.pytest_addoption(group)
    try:
        namespace = group.parser.parse_args([option])
        SuiteOptions.from_pytest(lambda flag: getattr(namespace, flag.lstrip("-").replace("-", "_")))
    except (argparse.ArgumentError, ValueError) as error:
        return str(error)
    raise AssertionError(f"{option} was accepted")
