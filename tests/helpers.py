"""Shared by the test modules: running pytest on the suite in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(*args, timeout=300, env=None):
    """pytest in a subprocess, without CI's SST2MLP_FAIL_ON_SKIP (the runs that test skipping must be free to skip)."""
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "SST2MLP_FAIL_ON_SKIP"}
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_usage_error(option: str, expected: str) -> None:
    """Collecting the suite with `option` stops with pytest's usage error (exit 4) and says `expected`."""
    run = run_pytest("benchmarks/", "--collect-only", "-q", option)
    assert run.returncode == 4 and expected in run.stderr, run.stderr
