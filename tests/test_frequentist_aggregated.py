"""fit_aggregated against R: MASS glm.nb and DESeq2 on the monocyte-scale simulation's summed counts."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bayesmir.errors import InputError
from bayesmir.frequentist.aggregated import COLUMNS, fit_aggregated


def stand_in(long: pd.DataFrame, samples: pd.DataFrame) -> SimpleNamespace:
    """Minimal IsomirData stand-in: summed counts, samples, totals over distinct sequences."""
    distinct = long.drop_duplicates(["sequence", "sample"])
    library_size = distinct.groupby("sample")["count"].sum().reindex(samples.index).astype(float)
    summed = long.groupby(["miRNA", "sample"])["count"].sum().unstack(fill_value=0)[samples.index]
    return SimpleNamespace(samples=samples, library_size=library_size, mirna_counts=lambda: summed)


@pytest.fixture(scope="module")
def monocyte(test_data_dir):
    folder = test_data_dir / "sim_monocyte_scale"
    long = pd.read_csv(folder / "counts_long.csv.gz")
    samples = pd.read_csv(folder / "samples.csv").set_index("sample")
    reference = pd.read_csv(folder / "lme4_aggregated.csv").set_index("miRNA")
    # R's reference level is the first in sorted order: 'case'; its coefficient is groupctrl
    fits = fit_aggregated(stand_in(long, samples), methods=("nbglm", "deseq2"), reference={"group": "case"})
    return fits, reference


def by_method(fits: pd.DataFrame, method: str, index) -> pd.DataFrame:
    return fits[fits["method"] == method].set_index("miRNA").reindex(index)


def test_output_contract(monocyte):
    fits, reference = monocyte
    assert list(fits.columns) == COLUMNS
    assert set(fits["coef"]) == {"group[T.ctrl]"}
    assert len(fits) == 2 * len(reference)
    inside = (fits["ci_low"] < fits["estimate"]) & (fits["estimate"] < fits["ci_high"])
    assert inside.all()
    # BH: adjusted p never below raw p, and monotone in raw p within a method (1e-15: float rounding)
    for _, table in fits.groupby("method"):
        assert (table["qvalue"] >= table["wald_p"] - 1e-15).all()
        ordered = table.sort_values("wald_p")["qvalue"].to_numpy()
        assert (np.diff(ordered) >= -1e-15).all()


def test_nbglm_matches_mass_glm_nb(monocyte):
    # Same estimator (profile ML for theta, IRLS for beta, expected-information SE at fixed theta)
    # as MASS::glm.nb, so only optimiser tolerances differ: glm.nb stops theta at a relative change
    # of ~1e-4 (.Machine$double.eps^0.25). Tolerance on ALL 120 miRNAs: estimate within 1e-3
    # (the brief asked 0.01 on most; measured max 3e-8) and SE within 0.5% (asked 5%; measured
    # max 3e-5 relative), p within 1e-3 absolute.
    fits, reference = monocyte
    nb = by_method(fits, "nbglm", reference.index)
    assert np.abs(nb["estimate"] - reference["nbglm_logFC"]).max() < 1e-3
    assert np.abs(nb["se"] / reference["nbglm_SE"] - 1).max() < 5e-3
    assert np.abs(nb["wald_p"] - reference["nbglm_p"]).max() < 1e-3


def test_deseq2_matches_r_deseq2(monocyte):
    # PyDESeq2 re-implements DESeq2 (median-of-ratios, MAP dispersions, MLE fold changes); version
    # details (dispersion trend fit, Cook's refit) may differ, so: correlation > 0.99 (the brief),
    # estimates within 0.02 and SEs within 5% on all miRNAs (measured: 5e-5 and 1.3%).
    fits, reference = monocyte
    de = by_method(fits, "deseq2", reference.index)
    assert np.corrcoef(de["estimate"], reference["deseq2_logFC"])[0, 1] > 0.99
    assert np.abs(de["estimate"] - reference["deseq2_logFC"]).max() < 0.02
    assert np.abs(de["se"] / reference["deseq2_SE"] - 1).max() < 0.05


def test_all_zero_mirna_gives_nan_row_not_an_error():
    samples = pd.DataFrame({"group": ["a"] * 3 + ["b"] * 3}, index=[f"s{i}" for i in range(6)])
    summed = pd.DataFrame(
        [[10, 12, 9, 30, 28, 33], [0, 0, 0, 0, 0, 0]], index=["m1", "m2"], columns=samples.index
    )
    data = SimpleNamespace(samples=samples, library_size=pd.Series(1e5, index=samples.index),
                           mirna_counts=lambda: summed)
    fits = fit_aggregated(data).set_index("miRNA")
    assert np.isnan(fits.loc["m2", "estimate"]) and np.isnan(fits.loc["m2", "qvalue"])
    # m1: with equal offsets and a two-level factor the NB GLM's fitted means are the group means
    # whatever theta, so the MLE is log(91/31) exactly; 1e-6 leaves room for IRLS's stopping rule
    assert fits.loc["m1", "estimate"] == pytest.approx(np.log(91 / 31), abs=1e-6)


def test_unknown_method_and_missing_pydeseq2_raise_input_error(monkeypatch):
    samples = pd.DataFrame({"group": ["a", "a", "b", "b"]}, index=["s1", "s2", "s3", "s4"])
    summed = pd.DataFrame([[5, 6, 7, 8]], index=["m1"], columns=samples.index)
    data = SimpleNamespace(samples=samples, library_size=pd.Series(1e4, index=samples.index),
                           mirna_counts=lambda: summed)
    with pytest.raises(InputError, match="edger"):
        fit_aggregated(data, methods=("edger",))
    monkeypatch.setitem(sys.modules, "pydeseq2.dds", None)
    with pytest.raises(InputError, match="pip install"):
        fit_aggregated(data, methods=("deseq2",))
