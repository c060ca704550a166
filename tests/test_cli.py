"""The command line: help, info/fit/report/simulate wiring, and one-line errors on bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayesmir.cli import app
from bayesmir.inference import METHODS

runner = CliRunner()
COMMANDS = ["fit", "report", "compare", "simulate", "info"]
# three miRNAs with two to three isomiRs each in the bundled example (see `bayesmir info example`)
SMALL = ["--min-mirna-logcpm", "5.8", "--min-isomir-logcpm", "3"]


def requires(module: str):
    """Skip when ``module`` (written by another part of the project) does not exist yet."""
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} not written yet")


def assert_one_line_error(result) -> None:
    """Exit code 2, exactly one stderr line starting with 'error:', no traceback anywhere."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example: bayesmir " + command in result.output


def test_missing_file_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "nope.csv")])
    assert_one_line_error(result)
    assert "nope.csv" in result.stderr


@requires("bayesmir.data")
def test_negative_count_is_one_line_error(tmp_path):
    counts = tmp_path / "counts.csv"
    pd.DataFrame({"miRNA": ["m1", "m1", "m1", "m1"], "sequence": ["AC", "AG", "AC", "AG"],
                  "sample": ["s1", "s1", "s2", "s2"], "count": [5, -3, 4, 2]}).to_csv(counts, index=False)
    samples = tmp_path / "samples.csv"
    pd.DataFrame({"sample": ["s1", "s2"], "group": ["a", "b"]}).to_csv(samples, index=False)
    result = runner.invoke(app, ["fit", str(counts), "--samples", str(samples), "--out", str(tmp_path / "run")])
    assert_one_line_error(result)
    assert "count" in result.stderr
    assert not (tmp_path / "run").exists()


@requires("bayesmir.data")
def test_info_on_example_reports_filters():
    """The example has 22 miRNAs; the default filters keep 16 (the lead's data README)."""
    result = runner.invoke(app, ["info", "example"])
    assert result.exit_code == 0, result.output
    assert "22 miRNAs" in result.output
    report = result.output.split("filters:")[1]
    assert "miRNAs with >= 2 isomiRs      16" in report


@pytest.fixture
def fake_laplace(monkeypatch):
    """'laplace' answered instantly by the fake method of tests/test_report.py."""
    monkeypatch.setitem(METHODS, "laplace", "test_report:FakeFullInference")


@requires("bayesmir.data")
def test_fit_writes_run_tables_and_summary(tmp_path, fake_laplace):
    out = tmp_path / "models" / "run"
    result = runner.invoke(app, ["fit", "example", *SMALL, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    for name in ("run.json", "diagnostics.csv", "mirna_table.csv", "isomir_table.csv", "slope_table.csv"):
        assert (out / name).is_file(), name
    mirna = pd.read_csv(out / "mirna_table.csv")
    assert len(mirna) == 3 and set(mirna["coef"]) == {"group[T.o]"}
    n_de = int(((mirna["qvalue"] < 0.05) & mirna["converged"]).sum())
    assert f"3 miRNAs: {n_de} DE (qvalue < 0.05)" in result.output.strip().splitlines()[-1]
    filters = pd.read_csv(out / "filter_report.csv")
    assert filters["mirnas"].iloc[-1] == 3  # the filters ran with the given thresholds

    html = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(out), "--out", str(html), "--top", "1"])
    assert result.exit_code == 0, result.output
    assert html.is_file() and "hsa-miR-889-3p" in html.read_text()


def test_report_of_a_non_run_is_one_line_error(tmp_path):
    assert_one_line_error(runner.invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "r.html")]))


@requires("bayesmir.data")
def test_unknown_method_option_is_one_line_error(tmp_path):
    """--chains is not an ADVI option: an InputError, not a TypeError traceback."""
    result = runner.invoke(app, ["fit", "example", *SMALL, "--method", "advi", "--chains", "2",
                                 "--out", str(tmp_path / "run")])
    assert_one_line_error(result)


@requires("bayesmir.simulation")
@requires("bayesmir.data")
def test_simulate_writes_files_that_read_back(tmp_path):
    """Counts written by `simulate` read back with the same library sizes (which the reader
    recomputes from every distinct sequence, to 1e-9 relative)."""
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--mirnas", "4", "--samples", "6",
                                 "--seed", "3"])
    assert result.exit_code == 0, result.output
    for name in ("counts_long.csv", "samples.csv", "library_size.csv", "truth_mirna.csv", "truth_isomir.csv"):
        assert (tmp_path / name).is_file(), name
    import bayesmir

    data = bayesmir.read_counts(tmp_path / "counts_long.csv", samples=tmp_path / "samples.csv")
    expected = pd.read_csv(tmp_path / "library_size.csv", index_col=0)["library_size"]
    np.testing.assert_allclose(data.library_size.loc[expected.index].to_numpy(), expected.to_numpy(), rtol=1e-9)
    assert len(pd.read_csv(tmp_path / "truth_mirna.csv")) == 4
    info = runner.invoke(app, ["info", str(tmp_path / "counts_long.csv"), "--samples", str(tmp_path / "samples.csv")])
    assert info.exit_code == 0 and "6 samples" in info.output


def test_compare_needs_exactly_one_source(tmp_path):
    assert_one_line_error(runner.invoke(app, ["compare", str(tmp_path)]))


@requires("bayesmir.frequentist")
@requires("bayesmir.data")
def test_compare_with_frequentist_csv(tmp_path, fake_laplace):
    out = tmp_path / "run"
    assert runner.invoke(app, ["fit", "example", *SMALL, "--out", str(out), "--quiet"]).exit_code == 0
    mirna = pd.read_csv(out / "mirna_table.csv")
    table = pd.DataFrame({"miRNA": mirna["miRNA"], "coef": mirna["coef"], "estimate": mirna["estimate"],
                          "se": 0.3, "ci_low": mirna["estimate"] - 0.6, "ci_high": mirna["estimate"] + 0.6,
                          "wald_p": 0.5, "lrt_p_mixture": 0.5, "converged": True, "singular": False})
    table.to_csv(tmp_path / "freq.csv", index=False)
    result = runner.invoke(app, ["compare", str(out), "--frequentist", str(tmp_path / "freq.csv")])
    assert result.exit_code == 0, result.output
    assert (out / "comparison.csv").is_file()


@requires("bayesmir.frequentist")
@requires("bayesmir.data")
def test_compare_refit_uses_the_runs_counts(tmp_path, fake_laplace):
    """--refit fits ML + LRT on the counts stored with the run: one row per miRNA, and the
    frequentist table is saved for `report --frequentist` (~15 s: one JAX compile)."""
    out = tmp_path / "run"
    assert runner.invoke(app, ["fit", "example", *SMALL, "--out", str(out), "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["compare", str(out), "--refit"])
    assert result.exit_code == 0, result.output
    frequentist = pd.read_csv(out / "frequentist.csv")
    assert sorted(frequentist["miRNA"]) == sorted(pd.read_csv(out / "mirna_table.csv")["miRNA"])
    assert "lrt_p_mixture" in frequentist.columns
    html = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(out), "--out", str(html), "--frequentist", str(out / "frequentist.csv")])
    assert result.exit_code == 0, result.output
    assert "Bayesian vs frequentist" in html.read_text()


@pytest.mark.slow
@requires("bayesmir.data")
def test_fit_example_with_nuts(tmp_path):
    """Real NUTS end to end on three miRNAs (compile ~1-2 min on a busy 2-core machine)."""
    out = tmp_path / "run"
    result = runner.invoke(app, ["fit", "example", *SMALL, "--method", "nuts", "--draws", "100",
                                 "--tune", "100", "--chains", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    diagnostics = pd.read_csv(out / "diagnostics.csv")
    assert len(diagnostics) == 3 and (diagnostics["method"] == "nuts").all()
    assert "top 3 miRNAs by lfsr" in result.output
