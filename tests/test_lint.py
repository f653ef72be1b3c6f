import subprocess
import sys

import pytest

from helpers import ROOT


def test_the_code_passes_ruff():
    """The linter configured in pyproject.toml; installed by the `dev` extra (CI installs it, see .ci/run)."""
    pytest.importorskip("ruff", reason="ruff is not installed: pip install -c constraints.txt -e '.[dev]'")
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
