"""Shared fixtures: where ../shared lives, and skipping when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder with data sets and R anchors."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the repository")
    return SHARED
