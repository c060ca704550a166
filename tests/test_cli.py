"""The command line: help, info/fit/report/simulate wiring, and one-line errors on bad input."""

from __future__ import annotations

from pathlib import Path

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


def assert_one_line_error(result) -> None:
    """Exit code 2, exactly one stderr line starting with 'error:', no traceback anywhere."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example: bayesmir " + command in result.output


def test_missing_file_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "nope.csv")])
    assert_one_line_error(result)
    assert "nope.csv" in result.stderr


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


def test_info_on_example_reports_filters():
    """The example has 22 miRNAs; the default filters keep 16 (the lead's data README)."""
    result = runner.invoke(app, ["info", "example"])
    assert result.exit_code == 0, result.output
    assert "22 miRNAs" in result.output
    report = result.output.split("filters:")[1]
    assert "miRNAs with >= 2 isomiRs      16" in report
    assert "shrinkage: off: 16 miRNAs, fewer than the 20" in report  # what the fit will do with them


@pytest.fixture
def fake_laplace(monkeypatch):
    """'laplace' answered instantly by the fake method of tests/test_report.py."""
    monkeypatch.setitem(METHODS, "laplace", "test_report:FakeFullInference")


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


def test_unknown_method_option_is_one_line_error(tmp_path):
    """--chains is not an ADVI option: an InputError, not a TypeError traceback."""
    result = runner.invoke(app, ["fit", "example", *SMALL, "--method", "advi", "--chains", "2",
                                 "--out", str(tmp_path / "run")])
    assert_one_line_error(result)


@pytest.mark.parametrize("given", [["--method", "laplace", "--slopes", "centred"],
                                   ["--method", "nuts", "--slopes", "sideways"]])
def test_bad_nuts_slope_option_is_one_line_error(tmp_path, given):
    """--slopes is a NUTS option with three values: elsewhere or misspelt, one error line, exit 2."""
    assert_one_line_error(runner.invoke(app, ["fit", "example", *SMALL, *given, "--out", str(tmp_path / "run")]))


def test_nuts_options_reach_the_method_as_in_the_api():
    """The CLI's --slopes and --extend are NutsInference's ``slopes`` and ``extend`` (CLI = API)."""
    from bayesmir.cli_inputs import method_options
    from bayesmir.inference import get_method

    options = method_options("nuts", "nb", slopes="centred", extend=0, draws=None)
    assert options == {"slopes": "centred", "extend": 0}
    method = get_method("nuts", "nb", **options)
    assert method.options["slopes"] == "centred" and method.options["extend"] == 0


def test_simulate_writes_files_that_read_back(tmp_path):
    """Counts written by `simulate` read back with the same library sizes (which the reader
    recomputes from every distinct sequence, to 1e-9 relative)."""
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--mirnas", "4", "--samples", "6",
                                 "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "--reference group=ctrl" in result.stdout  # the truth is case vs ctrl
    for name in ("counts_long.csv", "samples.csv", "library_size.csv", "truth_mirna.csv", "truth_isomir.csv"):
        assert (tmp_path / name).is_file(), name
    import bayesmir

    data = bayesmir.read_counts(tmp_path / "counts_long.csv", samples=tmp_path / "samples.csv")
    expected = pd.read_csv(tmp_path / "library_size.csv", index_col=0)["library_size"]
    np.testing.assert_allclose(data.library_size.loc[expected.index].to_numpy(), expected.to_numpy(), rtol=1e-9)
    assert len(pd.read_csv(tmp_path / "truth_mirna.csv")) == 4
    info = runner.invoke(app, ["info", str(tmp_path / "counts_long.csv"), "--samples", str(tmp_path / "samples.csv"),
                               "--reference", "group=ctrl"])
    assert info.exit_code == 0 and "6 samples" in info.output
    assert "reference ctrl" in info.stdout and "group[T.case]" in info.stdout


def test_compare_needs_exactly_one_source(tmp_path):
    assert_one_line_error(runner.invoke(app, ["compare", str(tmp_path)]))


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
    # the same miRNAs with other offsets are other data: that frequentist file is refused for them
    other = tmp_path / "other"
    assert runner.invoke(app, ["fit", "example", *SMALL, "--out", str(other), "--quiet",
                               "--normalisation", "total"]).exit_code == 0
    for command in (["compare", str(other)], ["report", str(other), "--out", str(html)]):
        refused = runner.invoke(app, [*command, "--frequentist", str(out / "frequentist.csv")])
        assert_one_line_error(refused)
        assert "made from other data_sha256" in refused.stderr


@pytest.mark.slow
def test_fit_example_with_nuts(tmp_path):
    """Real NUTS end to end on three miRNAs (compile ~1-2 min on a busy 2-core machine)."""
    out = tmp_path / "run"
    result = runner.invoke(app, ["fit", "example", *SMALL, "--method", "nuts", "--draws", "100",
                                 "--tune", "100", "--chains", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    diagnostics = pd.read_csv(out / "diagnostics.csv")
    assert len(diagnostics) == 3 and (diagnostics["method"] == "nuts").all()
    assert "top 3 miRNAs by lfsr" in result.output


# ---------------------------------------------------------------------- CLI = API
EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "bayesmir" / "example_data" / "somel2010_brain"


def test_version_prints_the_package_version():
    import bayesmir

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"bayesmir {bayesmir.__version__}"


def info_facts(output: str) -> tuple[str, str, str]:
    """(library totals line, last filter line, reference) from `bayesmir info` output."""
    lines = output.splitlines()
    totals = lines[lines.index(next(line for line in lines if line.startswith("library totals"))) + 1].strip()
    filters = lines[lines.index(next(line for line in lines if line.startswith("fit defaults"))) - 2].split()
    reference = next(line for line in lines if "; reference " in line).rsplit(" ", 1)[-1]
    return totals, " ".join(filters[-4:]), reference


def test_info_on_example_and_on_its_files_and_read_counts_agree():
    """The bundled example, named or given as files, and read_counts: same T_i, filters, reference."""
    import bayesmir

    named = runner.invoke(app, ["info", "example"])
    files = runner.invoke(app, ["info", str(EXAMPLE_DIR / "counts_long.csv.gz"),
                                "--samples", str(EXAMPLE_DIR / "samples.csv")])
    assert named.exit_code == 0 and files.exit_code == 0, files.output
    assert info_facts(named.stdout) == info_facts(files.stdout)
    data = bayesmir.read_counts(EXAMPLE_DIR / "counts_long.csv.gz", samples=EXAMPLE_DIR / "samples.csv")
    # the samples file's library_size column (the whole data set's totals, example_data/README.md)
    expected = pd.read_csv(EXAMPLE_DIR / "samples.csv", index_col="sample")["library_size"].astype(float)
    pd.testing.assert_series_equal(data.library_size, expected, check_names=False)
    totals, kept, reference = info_facts(files.stdout)
    assert totals.startswith("nb1 3,434,539, nb2 5,647,124")
    filtered = data.filter()
    assert kept == f"{len(filtered.mirnas)} {filtered.n_isomirs} 0 0" and len(filtered.mirnas) == 16
    assert reference == "nb"
    overridden = runner.invoke(app, ["info", "example", "--library-size", "counts"])
    assert "sum of every distinct sequence" in overridden.stdout
    assert info_facts(overridden.stdout)[0] != totals


def test_info_reference_and_coefficients_follow_reference_option():
    result = runner.invoke(app, ["info", "example", "--reference", "group=o"])
    assert result.exit_code == 0, result.output
    assert "reference o" in result.stdout and "Intercept, group[T.nb]" in result.stdout


@pytest.mark.parametrize("value", ["group", "=o", "group="])
def test_malformed_reference_is_one_line_error(value):
    assert_one_line_error(runner.invoke(app, ["info", "example", "--reference", value]))


def test_unknown_reference_level_is_one_line_error():
    result = runner.invoke(app, ["info", "example", "--reference", "group=ctrl"])
    assert_one_line_error(result)
    assert "'ctrl'" in result.stderr


def write_small(tmp_path, counts: str, samples: str) -> list[str]:
    (tmp_path / "c.csv").write_text(counts)
    (tmp_path / "s.csv").write_text(samples)
    return [str(tmp_path / "c.csv"), "--samples", str(tmp_path / "s.csv")]


FIVE = "miRNA,sequence,sample,count\n" + "".join(f"m1,AAA,s{i},{i}\nm1,CCC,s{i},2\n" for i in range(1, 6))


@pytest.mark.parametrize("marker", ["NA", "", "null", "NaN"])
def test_missing_group_is_one_line_error_naming_file_column_row(tmp_path, marker):
    args = write_small(tmp_path, FIVE, f"sample,group\ns1,a\ns2,b\ns3,{marker}\ns4,a\ns5,b\n")
    for command in (["info"], ["fit", "--out", str(tmp_path / "run")]):
        result = runner.invoke(app, [command[0], *args, *command[1:], "--no-filter"] if command[0] == "fit"
                               else [*command, *args])
        assert_one_line_error(result)
        for word in ("s.csv", "'group'", "rows 4", "missing value"):
            assert word in result.stderr, (word, result.stderr)


def test_numeric_sample_names_through_the_cli(tmp_path):
    counts = "miRNA,sequence,sample,count\n" + "".join(f"m1,AAA,{s},{i + 1}\nm1,CCC,{s},2\n"
                                                      for i, s in enumerate(["001", "002", "010", "011"]))
    args = write_small(tmp_path, counts, "sample,group\n001,a\n002,a\n010,b\n011,b\n")
    result = runner.invoke(app, ["info", *args])
    assert result.exit_code == 0, result.output
    assert "001 3, 002 4, 010 5, 011 6" in result.stdout  # AAA i + 1 plus CCC 2


def test_sequence_collision_is_a_warning_line_on_stderr(tmp_path):
    counts = ("miRNA,sequence,sample,count\nm1,AAT,s1,5\nm1,AAU,s1,4\nm1,AAT,s2,3\nm1,CCC,s1,1\nm1,CCC,s2,2\n"
              "m1,AAT,s3,3\nm1,CCC,s3,2\nm1,AAT,s4,3\nm1,CCC,s4,2\n")
    args = write_small(tmp_path, counts, "sample,group\ns1,a\ns2,a\ns3,b\ns4,b\n")
    result = runner.invoke(app, ["info", *args])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: ") and "AAT,AAU" in result.stderr
    assert "s1 10," in result.stdout and "warning" not in result.stdout


@pytest.mark.parametrize("value, words", [("x,", ["x", "not in"]), ("@nofile.txt", ["not found"])])
def test_bad_mirnas_is_one_line_error(tmp_path, value, words):
    result = runner.invoke(app, ["fit", "example", "--mirnas", value, "--out", str(tmp_path / "run")])
    assert_one_line_error(result)
    for word in words:
        assert word in result.stderr


def test_mirnas_option_fits_the_listed_ones(tmp_path, fake_laplace):
    names = tmp_path / "names.txt"
    names.write_text("hsa-miR-889-3p\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["fit", "example", *SMALL, "--mirnas", f"@{names}", "--out", str(out), "--quiet",
                                 "--delta", "0.2", "--level", "0.8"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("1 miRNAs:") and len(result.stdout.strip().splitlines()) == 1
    mirna = pd.read_csv(out / "mirna_table.csv")
    assert mirna["miRNA"].tolist() == ["hsa-miR-889-3p"]
    import json

    options = json.loads((out / "run.json").read_text())["options"]
    assert options["library_size_source"].endswith("samples.csv, column 'library_size'")
    assert options["library_size"]["nb1"] == 3434539 and options["delta"] == 0.2 and options["level"] == 0.8


def test_fit_progress_is_on_stderr_and_quiet_silences_it(tmp_path, fake_laplace):
    loud = runner.invoke(app, ["fit", "example", *SMALL, "--out", str(tmp_path / "a")])
    assert loud.exit_code == 0, loud.output
    assert "bayesmir laplace" not in loud.stdout  # the progress bar is not a result
    quiet = runner.invoke(app, ["fit", "example", *SMALL, "--out", str(tmp_path / "b"), "--quiet"])
    assert quiet.stderr == "" and len(quiet.stdout.strip().splitlines()) == 1


@pytest.mark.slow
def test_reference_flips_the_sign_of_a_real_fit(tmp_path):
    """Two DE miRNAs simulated case vs ctrl: with --reference group=ctrl the estimates have the truth's
    sign, without it (reference 'case', the level that sorts first) the opposite sign (two real laplace
    fits, 34 s measured on the shared busy machine, hence slow)."""
    import bayesmir

    sim = bayesmir.simulate(n_mirnas=2, n_samples=8, n_isomirs=(2, 4), frac_de=1.0, frac_slope=0.0, seed=1)
    sim.counts.to_csv(tmp_path / "c.csv", index=False)
    sim.samples.to_csv(tmp_path / "s.csv")
    truth = np.sign(sim.truth_mirna.set_index("miRNA")["logfc"])
    assert (truth != 0).all()
    signs = {}
    for name, extra in (("ctrl", ["--reference", "group=ctrl"]), ("default", [])):
        out = tmp_path / name
        result = runner.invoke(app, ["fit", str(tmp_path / "c.csv"), "--samples", str(tmp_path / "s.csv"),
                                     "--no-filter", "--jobs", "1", "--quiet", "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        table = pd.read_csv(out / "mirna_table.csv").set_index("miRNA")
        signs[name] = np.sign(table["mean"]).reindex(truth.index)
    assert set(pd.read_csv(tmp_path / "ctrl" / "mirna_table.csv")["coef"]) == {"group[T.case]"}
    assert (signs["ctrl"] == truth).all() and (signs["default"] == -truth).all()
