"""log_base: log2 tables are the natural-log tables / ln 2, base-free columns unchanged; CLI = API."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayesmir
from bayesmir.cli import app
from bayesmir.errors import InputError
from bayesmir.log_base import checked_log_base, in_log_base, in_natural_log, natural_names

MIRNAS = ["hsa-miR-181c-5p", "hsa-miR-488-5p"]
LN2 = math.log(2)


@pytest.fixture(scope="module")
def example_fit():
    return bayesmir.fit(bayesmir.load_example().filter(), mirnas=MIRNAS, progress=False, n_hyper=16)


def _pairs(natural: pd.DataFrame, log2: pd.DataFrame) -> dict[str, str]:
    """Natural-log column -> log2 column, matched by position (the renaming keeps the order)."""
    assert len(natural.columns) == len(log2.columns)
    return dict(zip(natural.columns, log2.columns))


def test_mirna_table_in_log2_is_the_natural_table_over_ln2(example_fit):
    natural = example_fit.mirna_table()
    log2 = example_fit.mirna_table(log_base="2")
    pairs = _pairs(natural, log2)
    scaled = ["estimate", "sd", "median", "ci_low", "ci_high", "ci_low_se", "ci_high_se", "hdi_low", "hdi_high"]
    assert [pairs[c] for c in scaled] == ["log2fc", *(f"log2fc_{c}" for c in scaled[1:])]
    for column in scaled:
        np.testing.assert_allclose(log2[pairs[column]], natural[column] / LN2, rtol=1e-12, err_msg=column)
    # the threshold event is the same, stated in log2 units: log(1.5) / log(2) = log2(1.5) = 0.585
    assert pairs["p_abs_gt_0.405"] == "p_abs_log2fc_gt_0.585"
    assert pairs["p_abs_gt_0.405_se"] == "p_abs_log2fc_gt_0.585_se"
    for column in ("lfsr", "lfsr_se", "qvalue", "svalue", "p_abs_gt_0.405", "p_abs_gt_0.405_se", "rhat",
                   "ess_importance", "converged", "flag"):
        pd.testing.assert_series_equal(log2[pairs[column]], natural[column], check_names=False)


def test_isomir_and_slope_tables_in_log2(example_fit):
    natural, log2 = example_fit.isomir_table(), example_fit.isomir_table(log_base=2)
    pairs = _pairs(natural, log2)
    assert pairs["logfc_estimate"] == "log2fc_estimate"
    assert pairs["deviation_ci_low"] == "deviation_log2fc_ci_low"
    for column in ("logfc_estimate", "logfc_sd", "logfc_ci_high", "deviation_estimate", "deviation_ci_low"):
        np.testing.assert_allclose(log2[pairs[column]], natural[column] / LN2, rtol=1e-12)
    for column in ("logfc_lfsr", "deviation_lfsr", "baseline_share_estimate"):
        assert pairs[column] == column
        np.testing.assert_array_equal(log2[column], natural[column])
    natural, log2 = example_fit.slope_table(), example_fit.slope_table(log_base="2")
    pairs = _pairs(natural, log2)
    assert pairs["sd_slope_median"] == "sd_slope_log2fc_median"
    assert pairs["p_sd_slope_gt_0.100"] == "p_sd_slope_log2fc_gt_0.144"
    np.testing.assert_allclose(log2["sd_slope_log2fc_ci_high"], natural["sd_slope_ci_high"] / LN2)
    np.testing.assert_array_equal(log2["log_bayes_factor"], natural["log_bayes_factor"])


def test_natural_names_undoes_the_renaming_only(example_fit):
    log2 = example_fit.mirna_table(log_base="2")
    back, base = natural_names(log2)
    assert base == "2"
    assert list(back.columns)[:11] == list(example_fit.mirna_table().columns)[:11]
    np.testing.assert_array_equal(back["estimate"], log2["log2fc"])
    assert natural_names(example_fit.mirna_table())[1] == "e"


def test_log_base_values():
    assert [checked_log_base(v) for v in ("e", "E", math.e, 2, "2", 2.0, "10", 10)] == \
        ["e", "e", "e", "2", "2", "2", "10", "10"]
    for bad in ("3", "ln", 0, None):
        with pytest.raises(InputError, match="log_base"):
            checked_log_base(bad)
    table = pd.DataFrame({"estimate": [1.0]})
    assert in_log_base(table, "e") is table


def test_fit_option_is_the_default_of_the_tables_and_cli_equals_api(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", "example", "--out", str(out), "--quiet", "--mirnas", MIRNAS[0],
                                      "--log-base", "2"])
    assert result.exit_code == 0, result.output
    cli = pd.read_csv(out / "mirna_table.csv")
    api_fit = bayesmir.fit(bayesmir.load_example().filter(), mirnas=MIRNAS[:1], progress=False, log_base="2")
    assert api_fit.options["log_base"] == bayesmir.load_fit(out).options["log_base"] == "2"
    api = api_fit.mirna_table()
    assert list(cli.columns) == list(api.columns) and "log2fc" in api.columns
    for column in ("log2fc", "log2fc_ci_low", "log2fc_ci_high", "lfsr", "qvalue"):
        np.testing.assert_allclose(cli[column].to_numpy(float), api[column].to_numpy(float), rtol=1e-9)
    np.testing.assert_allclose(api["log2fc"], api_fit.mirna_table(log_base="e")["estimate"] / LN2, rtol=1e-12)
    isomir = pd.read_csv(out / "isomir_table.csv")
    assert "log2fc_estimate" in isomir.columns and "logfc_estimate" not in isomir.columns
    with pytest.raises(InputError, match="log_base"):
        bayesmir.fit(bayesmir.load_example().filter(), mirnas=MIRNAS[:1], progress=False, log_base="3")


def test_cli_and_api_share_the_default():
    import inspect

    from bayesmir import cli, driver

    assert inspect.signature(driver.fit).parameters["log_base"].default == "e"
    assert inspect.signature(cli.fit).parameters["log_base"].default == "e"


def test_plots_draw_the_table_in_its_base_and_say_which(example_fit):
    import matplotlib.pyplot as plt

    from bayesmir.reporting import plots

    with plots.agg_backend():
        for base, column, label in (("e", "estimate", "natural log"), ("2", "log2fc", "log2")):
            table = example_fit.mirna_table(log_base=base)
            figure = plots.volcano_plot(table)
            axis = figure.axes[0]
            assert label in axis.get_xlabel()
            drawn = axis.collections[0].get_offsets()[:, 0]
            np.testing.assert_allclose(np.sort(drawn), np.sort(table[column].dropna().to_numpy(float)))
            plt.close(figure)
        isomirs = example_fit.isomir_table(log_base="2")
        row = example_fit.mirna_table(log_base="2").iloc[0]
        isomirs = isomirs[(isomirs["miRNA"] == row["miRNA"]) & (isomirs["coef"] == row["coef"])]
        figure = plots.isomir_forest_plot(isomirs, row)
        assert "log2" in figure.axes[0].get_xlabel()
        plt.close(figure)


def test_in_natural_log_inverts_in_log_base(example_fit):
    for table, delta in ((example_fit.mirna_table(), 0.405465), (example_fit.isomir_table(), None),
                         (example_fit.slope_table(), 0.1)):
        for base in ("2", "10"):
            back = in_natural_log(in_log_base(table, base, delta), delta)
            assert list(back.columns) == list(table.columns)
            pd.testing.assert_frame_equal(back, table, check_exact=False, rtol=1e-12)
    # without delta the threshold is read from the name: right to the rounding of 3 decimals
    back = in_natural_log(in_log_base(example_fit.mirna_table(), "2"))
    assert "p_abs_gt_0.405" in back.columns
