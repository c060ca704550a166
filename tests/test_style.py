"""House rules that CI enforces through the test command: ruff clean, modules of one concern."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    """`ruff check` with the line length and rules configured in pyproject.toml finds nothing."""
    if shutil.which("ruff") is None:
        pytest.fail("ruff is not installed: install the package with its [dev] extra")
    result = subprocess.run(["ruff", "check", "bayesmir", "tests", "benchmarks"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_data_layer_imports_no_later_stage():
    """bayesmir.data (the first stage) imports nothing from problem, model, inference, results or later."""
    later = ("bayesmir.problem", "bayesmir.model", "bayesmir.inference", "bayesmir.results",
             "bayesmir.driver", "bayesmir.frequentist", "bayesmir.reporting", "bayesmir.cli")
    code = ("import sys, bayesmir.data; "
            "print('\\n'.join(m for m in sys.modules if m.startswith('bayesmir')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    assert not [m for m in loaded if m.startswith(later)]
