"""The README's Python snippet runs as written, and its two commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    """`.ci/run` calls exactly the test command the README gives."""
    command = re.search(r"Run the tests.*?\n\n    (.+?)\n", README, re.DOTALL).group(1)
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.slow
def test_readme_python_snippet_runs(tmp_path, monkeypatch, capsys):
    """Every line of the snippet runs on the bundled example and finds the DE miRNAs it prints."""
    snippet = re.search(r"```python\n(.+?)```", README, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md", "exec"), {})  # noqa: S102 - the README's own code
    assert (tmp_path / "runs" / "example.html").stat().st_size > 0
    assert "hsa-miR-181c-5p" in capsys.readouterr().out  # DE on the example with every seed
