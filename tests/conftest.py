"""Shared fixtures: the test data in ``tests/data`` and, for slow tests only, ``../shared``.

``test_data_dir`` is ``tests/data`` (small data and R reference results copied from ``../shared``,
provenance in ``tests/data/README.md``); every default test reads its data there, so the suite runs
in a clone without ``../shared``. ``shared_dir`` is only for ``@pytest.mark.slow`` tests that need the
full data sets (e.g. the 14 MB brain counts); it skips, with the reason, when the folder is missing.
Set ``BAYESMIR_SHARED`` to use another folder (``BAYESMIR_SHARED=/nonexistent`` simulates a clone
without it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TEST_DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("BAYESMIR_SHARED", Path(__file__).resolve().parents[2] / "shared"))


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    """``tests/data``: small data sets and R references, one folder per data set."""
    return TEST_DATA


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder (or ``$BAYESMIR_SHARED``) with the full data sets; slow tests only."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is missing (full data sets; set BAYESMIR_SHARED to its location)")
    return SHARED
