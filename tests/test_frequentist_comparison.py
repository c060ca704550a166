"""compare() on hand-made tables whose comparison is known by construction; import_r_results on R files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmir.errors import InputError
from bayesmir.frequentist.comparison import ComparisonResult, compare
from bayesmir.frequentist.r_import import import_r_results

COEF = "group[T.case]"


def bayes_table() -> pd.DataFrame:
    """mirna_table-like rows. Bayes calls (lfsr or q < 0.05): m1, m2, m5, m6."""
    rows = [
        # miRNA, mean, sd, lfsr, qvalue
        ("m1", 1.00, 0.20, 0.001, 0.001),
        ("m2", 0.60, 0.25, 0.010, 0.005),
        ("m3", 0.30, 0.50, 0.300, 0.200),
        ("m4", 0.05, 0.30, 0.400, 0.300),
        ("m5", -0.80, 0.20, 0.001, 0.001),  # opposite sign to the frequentist estimate
        ("m6", 0.90, 0.20, 0.001, 0.001),  # not in the frequentist table
    ]
    table = pd.DataFrame(rows, columns=["miRNA", "estimate", "sd", "lfsr", "qvalue"])
    table.insert(1, "coef", COEF)
    table["ci_low"] = table["estimate"] - 1.96 * table["sd"]
    table["ci_high"] = table["estimate"] + 1.96 * table["sd"]
    table["converged"] = True
    return table


def freq_table() -> pd.DataFrame:
    """Frequentist contract rows. BH over the Bayesian run's miRNAs with a p-value (m1-m5; m7 is
    not in the run): m1 5e-6, m3 2.5e-5, m5 1e-4 x 5/3, m2 0.625, m4 0.8, so the frequentist calls
    are m1, m3, m5. LRT p BH over m1-m5: m1 0.005, m2 0.025, m4 0.02 x 5/3, m3 0.625, m5 0.9."""
    rows = [
        ("m1", 0.95, 0.10, 1e-6, 0.001, False),
        ("m2", 0.20, 0.30, 0.5, 0.01, False),
        ("m3", 0.70, 0.15, 1e-5, 0.5, True),
        ("m4", 0.00, 0.20, 0.8, 0.02, False),
        ("m5", 0.70, 0.18, 1e-4, 0.9, False),
        ("m7", 0.10, 0.20, 0.9, 0.9, False),  # not in the Bayesian table
    ]
    table = pd.DataFrame(rows, columns=["miRNA", "estimate", "se", "wald_p", "lrt_p_mixture", "singular"])
    table.insert(1, "coef", COEF)
    table["ci_low"] = table["estimate"] - 1.96 * table["se"]
    table["ci_high"] = table["estimate"] + 1.96 * table["se"]
    table["converged"] = True
    return table


class FakeFit:
    """Stands in for FitResult: mirna_table() and slope_table()."""

    def mirna_table(self):
        return bayes_table()

    def slope_table(self):
        return pd.DataFrame({
            "miRNA": ["m1", "m2", "m3", "m4", "m5", "m6"], "term": COEF,
            "sd_slope_median": [0.5, 0.05, 0.4, 0.3, 0.02, 0.1],
            # slope calls (log BF > log 3): m1, m3; m4 has no Bayes factor (no call)
            "log_bayes_factor": [5.0, 0.1, 3.0, np.nan, -1.0, 0.0],
            "converged": True,
        })


@pytest.fixture(scope="module")
def result() -> ComparisonResult:
    return compare(FakeFit(), freq_table())


def test_disagreements_are_flagged_with_their_reason(result):
    table = result.table.set_index("miRNA")
    assert list(table.index) == ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]
    assert table["call_bayes"].tolist() == [True, True, False, False, True, True, False]
    assert table["call_freq"].tolist() == [True, False, True, False, True, False, False]
    assert table["disagree"].tolist() == [False, True, True, False, True, False, False]
    assert table.loc["m2", "reason"].startswith("significant in Bayes only")
    for name, row in table.iterrows():  # a slope disagreement is named in the reason too
        assert ("isomiR usage" in row["reason"]) == bool(row["slope_disagree"]), name
    assert table.loc["m3", "reason"].startswith("significant in frequentist only")
    assert "singular" in table.loc["m3", "reason"]  # m3's frequentist fit is singular
    assert table.loc["m5", "reason"] == "opposite signs, both significant"
    assert table.loc["m6", "reason"] == "no frequentist estimate"
    assert table.loc["m7", "reason"] == "no Bayesian estimate"
    assert table.loc["m1", "reason"] == table.loc["m4", "reason"] == ""


def test_bh_adjustment_differences_and_width_ratio(result):
    table = result.table.set_index("miRNA")
    # BH by hand (see freq_table): exact up to float rounding
    expected = {"m1": 5e-6, "m2": 0.625, "m3": 2.5e-5, "m4": 0.8, "m5": 1e-4 * 5 / 3}
    for mirna, value in expected.items():
        assert table.loc[mirna, "qvalue_freq"] == pytest.approx(value, rel=1e-12)
    assert np.isnan(table.loc["m7", "qvalue_freq"])  # not in the run: neither adjusted nor called
    expected = {"m1": 0.005, "m2": 0.025, "m3": 0.625, "m4": 0.02 * 5 / 3, "m5": 0.9}
    for mirna, value in expected.items():
        assert table.loc[mirna, "qvalue_lrt"] == pytest.approx(value, rel=1e-12)
    assert table.loc["m1", "difference"] == pytest.approx(0.05, abs=1e-12)
    # widths 2*1.96*sd: Bayes 0.2 / freq 0.1 -> 2
    assert table.loc["m1", "width_ratio"] == pytest.approx(2.0, rel=1e-12)
    assert not table.loc["m5", "sign_agree"] and table.loc["m1", "sign_agree"]


def test_summary_counts_kappa_and_correlations(result):
    s = result.summary
    # m1..m5 are in both tables: calls (B, F) = (1,1) (1,0) (0,1) (0,0) (1,1)
    assert s["n_mirnas"] == 5
    assert (s["n_both"], s["n_bayes_only"], s["n_freq_only"], s["n_neither"]) == (2, 1, 1, 1)
    assert s["agreement"] == pytest.approx(3 / 5)
    # kappa by hand: observed 0.6, chance 0.6*0.6 + 0.4*0.4 = 0.52 -> (0.6-0.52)/(1-0.52)
    assert s["kappa"] == pytest.approx(0.08 / 0.48, rel=1e-9)
    bayes = [1.00, 0.60, 0.30, 0.05, -0.80]
    freq = [0.95, 0.20, 0.70, 0.00, 0.70]
    assert s["pearson"] == pytest.approx(np.corrcoef(bayes, freq)[0, 1], rel=1e-9)
    # Spearman = Pearson of average ranks
    rank_b, rank_f = pd.Series(bayes).rank(), pd.Series(freq).rank()
    assert s["spearman"] == pytest.approx(np.corrcoef(rank_b, rank_f)[0, 1], rel=1e-9)
    assert s["n_sign_disagree"] == 1  # m5; m4's frequentist 0.00 is no opposite sign
    assert "kappa" in repr(result)


def test_slope_evidence_against_lrt(result):
    table = result.table.set_index("miRNA")
    # Bayes slope calls m1, m3 (m4: no Bayes factor, NA); LRT qvalue < 0.05: m1, m2, m4
    assert table.loc[["m1", "m2", "m3", "m4", "m5"], "slope_call_bayes"].tolist() == [
        True, False, True, pd.NA, False]
    assert table.loc[["m1", "m2", "m3", "m4", "m5"], "slope_call_freq"].tolist() == [
        True, True, False, True, False]
    assert table.loc[["m1", "m2", "m3", "m4", "m5"], "slope_disagree"].tolist() == [
        False, True, True, False, False]
    assert result.summary["slope_n_both"] == 1 and result.summary["slope_n_neither"] == 1


def test_plain_table_and_r_coef_names():
    # a DataFrame is accepted as the Bayesian table; R's coefficient name 'groupcase' matches
    # 'group[T.case]'
    freq = freq_table().assign(coef="groupcase", method="nbglm")
    out = compare(bayes_table(), freq)
    assert out.table.set_index("miRNA")["call_freq"].tolist() == [
        True, False, True, False, True, False, False]
    assert out.table["slope_call_bayes"].isna().all()


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError, match="not in the Bayesian table"):
        compare(bayes_table(), freq_table(), coef="lab[T.b]")
    with pytest.raises(InputError, match="not in the frequentist table"):
        compare(bayes_table(), freq_table().assign(coef="group[T.other]"))
    two = pd.concat([freq_table().assign(method="nbglm"), freq_table().assign(method="deseq2")])
    with pytest.raises(InputError, match="methods"):
        compare(bayes_table(), two)
    with pytest.raises(InputError, match="se"):
        compare(bayes_table(), freq_table().drop(columns="se"))


def test_import_r_results_glmer_nb_file(test_data_dir):
    path = test_data_dir / "sim_monocyte_scale" / "lme4_glmer_nb.csv"
    raw = pd.read_csv(path)
    table = import_r_results(path)
    assert table["miRNA"].tolist() == raw["miRNA"].tolist()
    np.testing.assert_array_equal(table["estimate"], raw["logFC"])
    np.testing.assert_array_equal(table["se"], raw["SE"])
    np.testing.assert_array_equal(table["lrt_p_naive"], raw["lrt_p"])
    np.testing.assert_array_equal(table["singular"].astype(bool), raw["singular"])
    # mixture p: half the naive tail plus half the 1-df tail, never above the naive p
    assert (table["lrt_p_mixture"] <= table["lrt_p_naive"] + 1e-15).all()
    # the file has 120 miRNAs and its README counts 31 with LRT p < 0.05
    assert len(table) == 120 and (table["lrt_p_naive"] < 0.05).sum() == 31


def test_import_r_results_mirglmm_file_reads_the_full_nb_model(test_data_dir):
    path = test_data_dir / "mirglmm_se_example" / "filtered_glmm.csv"
    table = import_r_results(path).set_index("miRNA")
    # README: logFC 0.3172 / 0.2185 / 0.5265, SE 0.329 / 0.308 / 0.195, LRT p 0.086 / 1.3e-10 / 6.0e-4
    # (tolerances: the README's rounding)
    assert table["estimate"].round(4).tolist() == [0.3172, 0.2185, 0.5265]
    assert table["se"].round(3).tolist() == [0.329, 0.308, 0.195]
    assert table.loc["hsa-miR-19b-3p", "lrt_p_naive"] == pytest.approx(0.086, abs=1e-3)
    assert table.loc["hsa-miR-101-3p", "lrt_p_naive"] == pytest.approx(1.3e-10, rel=0.05)
    reduced = import_r_results(path, prefix="nb_red_").set_index("miRNA")
    assert reduced["estimate"].round(2).tolist() == [0.40, 0.13, 0.34]


def test_compare_runs_against_r_results(test_data_dir):
    # a Bayesian table equal to R's estimates plus known shifts: difference recovers the shift
    freq = import_r_results(test_data_dir / "sim_monocyte_scale" / "lme4_glmer_nb.csv")
    shift = np.linspace(-0.01, 0.01, len(freq))
    bayes = pd.DataFrame({
        "miRNA": freq["miRNA"], "coef": "group[T.ctrl]", "estimate": freq["estimate"] + shift,
        "sd": freq["se"], "ci_low": freq["ci_low"] + shift, "ci_high": freq["ci_high"] + shift,
        "lfsr": 0.5, "qvalue": 0.5,
    })
    out = compare(bayes, freq)
    np.testing.assert_allclose(out.table["difference"], shift, atol=1e-12)  # exact up to float rounding
    np.testing.assert_allclose(out.table["width_ratio"], 1.0, rtol=1e-9)
    assert out.summary["pearson"] > 0.99 and out.summary["n_mirnas"] == 120


def test_import_r_results_names_the_missing_column_and_file(tmp_path):
    path = tmp_path / "res.csv"
    pd.DataFrame({"miRNA": ["a"], "logFC": [0.1], "LRT_p": [0.2]}).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"res\.csv.*se or SE"):
        import_r_results(path)
    with pytest.raises(InputError, match="nothing.csv"):
        import_r_results(tmp_path / "nothing.csv")


def test_unconverged_fits_are_adjusted_but_never_called():
    """m1 is a clear call on both sides; with either fit unconverged it is no longer called, and
    the other miRNAs' q-values do not change (it stays in the BH set)."""
    bayes, freq = bayes_table(), freq_table()
    base = compare(bayes, freq).table.set_index("miRNA")
    bayes.loc[bayes["miRNA"] == "m1", "converged"] = False
    freq.loc[freq["miRNA"] == "m1", "converged"] = False
    out = compare(bayes, freq).table.set_index("miRNA")
    assert not out.loc["m1", "call_bayes"] and not out.loc["m1", "call_freq"]
    pd.testing.assert_series_equal(out["qvalue_freq"], base["qvalue_freq"])


def test_import_r_results_uses_the_boundary_mixture_for_one_df(tmp_path):
    """lrt_df = 1: 0.5 point mass at 0 + 0.5 chi2(1), so p(3) = 0.5 * P(chi2_1 > 3) = 0.0416
    (lrt.mixture_pvalue); the old formula gave NaN (chi2 with 0 df)."""
    path = tmp_path / "r.csv"
    pd.DataFrame({"miRNA": ["a"], "logFC": [0.1], "SE": [0.2], "lrt_stat": [3.0], "lrt_df": [1]}).to_csv(
        path, index=False)
    table = import_r_results(path)
    assert table.loc[0, "lrt_p_mixture"] == pytest.approx(0.5 * 0.08326451666355039, rel=1e-9)


def test_tables_given_are_used_instead_of_building_them():
    """compare(fit, freq, tables=fit's tables) gives the same result and builds no table itself."""

    class TablesOnce(FakeFit):
        def mirna_table(self):
            raise AssertionError("mirna_table built again")

        def slope_table(self):
            raise AssertionError("slope_table built again")

    tables = {"mirna": FakeFit().mirna_table(), "slope": FakeFit().slope_table()}
    given = compare(TablesOnce(), freq_table(), tables=tables)
    pd.testing.assert_frame_equal(given.table, compare(FakeFit(), freq_table()).table)
    assert given.summary == pytest.approx(compare(FakeFit(), freq_table()).summary, nan_ok=True)
