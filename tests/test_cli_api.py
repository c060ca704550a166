"""CLI = API: the same files give the same totals, filters, reference level and numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayesmir
from bayesmir.cli import app

# two miRNAs of the bundled example, one with few and one with many isomiRs (`bayesmir info example`)
MIRNAS = ["hsa-miR-181c-5p", "hsa-miR-488-5p"]


@pytest.mark.parametrize("loo", [False, True])
def test_cli_fit_and_api_fit_of_the_example_give_the_same_tables(tmp_path, loo):
    """Defaults of `bayesmir fit` and `bayesmir.fit` are the same, so the tables agree to
    round-off (both run in this process; 1e-9 allows only the CSV round trip); so are `--loo`
    and ``loo=True`` (the slope table's ELPD columns)."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", "example", "--out", str(out), "--quiet", "--mirnas",
                                      ",".join(MIRNAS), *(["--loo"] if loo else [])])
    assert result.exit_code == 0, result.output
    cli = pd.read_csv(out / "mirna_table.csv").set_index("miRNA").loc[MIRNAS]
    api_fit = bayesmir.fit(bayesmir.load_example().filter(), mirnas=MIRNAS, progress=False, loo=loo)
    api = api_fit.mirna_table().set_index("miRNA").loc[MIRNAS]
    assert list(cli.columns) == list(api.columns)
    for column in ("estimate", "sd", "ci_low", "ci_high", "lfsr", "qvalue"):
        np.testing.assert_allclose(cli[column].to_numpy(float), api[column].to_numpy(float), rtol=1e-9,
                                   err_msg=column)
    slope_cli = pd.read_csv(out / "slope_table.csv").set_index("miRNA").loc[MIRNAS]
    slope_api = api_fit.slope_table().set_index("miRNA").loc[MIRNAS]
    assert list(slope_cli.columns) == list(slope_api.columns)
    assert ("elpd_diff" in slope_cli.columns) == loo
    for column in ("log_bayes_factor", *(["elpd_diff", "elpd_diff_se"] if loo else [])):
        np.testing.assert_allclose(slope_cli[column], slope_api[column], rtol=1e-9, err_msg=column)
    stored = bayesmir.load_fit(out).options
    assert stored["loo"] == api_fit.options["loo"] == loo
    assert stored["normalisation"] == api_fit.options["normalisation"] == "robust"
    assert stored["library_size"] == api_fit.options["library_size"]


def test_run_folder_has_strict_json_and_no_absolute_path(tmp_path):
    """Every JSON file of a CLI run parses strictly (no NaN) and no text file names a folder of this
    machine (the package's example files live under an absolute path)."""
    import json
    from pathlib import Path

    from bayesmir.data import example

    def refuse(name):
        pytest.fail(f"non-standard JSON constant {name}")

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", "example", "--out", str(out), "--quiet", "--mirnas", MIRNAS[0]])
    assert result.exit_code == 0, result.output
    folders = {str(tmp_path), str(Path(example.__file__).resolve().parents[1]), str(Path.cwd())}
    for path in out.rglob("*"):
        if path.suffix in (".json", ".csv"):
            text = path.read_text()
            assert not [folder for folder in folders if folder in text], path
            if path.suffix == ".json":
                json.loads(text, parse_constant=refuse)
