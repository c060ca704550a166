"""The Bayesian-versus-frequentist section of the report: merged table and disagreements.

Calls are made at the same nominal level on both sides:

- differential expression: Bayesian ``qvalue < level`` against Benjamini-Hochberg adjusted
  Wald p ``< level``;
- isomiR-specific slopes: Bayesian ``log_bayes_factor > log(3)`` (or, without a Bayes
  factor, ``p_sd_slope_gt_delta > 0.95``) against ``lrt_p_mixture < level``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bayesmir.errors import InputError
from bayesmir.fdr import benjamini_hochberg

FREQUENTIST_COLUMNS = ("miRNA", "coef", "estimate", "se", "ci_low", "ci_high", "wald_p", "converged")
LOG_BF_THRESHOLD = math.log(3.0)
PROBABILITY_THRESHOLD = 0.95


def check_frequentist(table: pd.DataFrame) -> pd.DataFrame:
    """The frequentist table, checked for the contract columns (``InputError`` otherwise)."""
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"frequentist results must be a pandas DataFrame, not {type(table).__name__}")
    missing = [c for c in FREQUENTIST_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"frequentist results: missing column(s) {missing}; "
                         f"expected at least {list(FREQUENTIST_COLUMNS)}")
    return table


def merged_table(mirnas: pd.DataFrame, slopes: pd.DataFrame, frequentist: pd.DataFrame) -> pd.DataFrame:
    """One row per miRNA: Bayesian summaries, slope evidence and the frequentist columns.

    Parameters
    ----------
    mirnas : pandas.DataFrame
        :meth:`FitResult.mirna_table` restricted to the coefficient of interest.
    slopes : pandas.DataFrame
        :meth:`FitResult.slope_table` (first slope term per miRNA).
    frequentist : pandas.DataFrame
        The frequentist table (docs/architecture.md), one row per miRNA.

    Returns
    -------
    pandas.DataFrame
    """
    bayes = mirnas[["miRNA", "coef", "mean", "eti_low", "eti_high", "lfsr", "qvalue", "converged"]]
    evidence = slopes.drop_duplicates("miRNA")[
        ["miRNA", "sd_slope_median", "p_sd_slope_gt_delta", "log_bayes_factor"]]
    other = frequentist.drop_duplicates("miRNA").rename(columns={"coef": "coef_frequentist",
                                                                 "converged": "converged_frequentist"})
    keep = [c for c in ("miRNA", "coef_frequentist", "estimate", "se", "ci_low", "ci_high", "wald_p",
                        "lrt_p_mixture", "converged_frequentist", "singular") if c in other.columns]
    merged = bayes.merge(evidence, on="miRNA", how="left").merge(other[keep], on="miRNA", how="inner")
    if "lrt_p_mixture" not in merged.columns:
        merged["lrt_p_mixture"] = np.nan
    merged["wald_q"] = benjamini_hochberg(merged["wald_p"])
    return merged


def slope_evidence_column(merged: pd.DataFrame) -> tuple[str, str]:
    """Column (and axis label) used as Bayesian slope evidence: the log Bayes factor if any."""
    if merged["log_bayes_factor"].notna().any():
        return "log_bayes_factor", "log Bayes factor (slopes vs none)"
    return "sd_slope_median", "sd_slope posterior median"


def bayesian_slope_call(merged: pd.DataFrame) -> pd.Series:
    """Evidence for isomiR-specific slopes by the Bayesian fit (see module docstring)."""
    if merged["log_bayes_factor"].notna().any():
        return merged["log_bayes_factor"] > LOG_BF_THRESHOLD
    return merged["p_sd_slope_gt_delta"] > PROBABILITY_THRESHOLD


def disagreements(merged: pd.DataFrame, level: float = 0.05) -> pd.DataFrame:
    """miRNAs called by one approach and not the other (DE or isomiR slopes).

    Returns
    -------
    pandas.DataFrame
        ``miRNA, question, bayesian, frequentist`` plus the numbers behind each call.
    """
    rows = []
    de_bayes = merged["qvalue"] < level
    de_freq = merged["wald_q"] < level
    slope_bayes = bayesian_slope_call(merged)
    slope_freq = merged["lrt_p_mixture"] < level
    tested = merged["lrt_p_mixture"].notna()
    for k, row in merged.iterrows():
        if de_bayes[k] != de_freq[k] and np.isfinite(row["wald_p"]):
            rows.append({"miRNA": row["miRNA"], "question": "differential expression",
                         "bayesian": _call(de_bayes[k]), "frequentist": _call(de_freq[k]),
                         "detail": f"posterior mean {row['mean']:.3g}, q {row['qvalue']:.3g}; "
                                   f"estimate {row['estimate']:.3g}, BH-adjusted Wald p {row['wald_q']:.3g}"})
        if tested[k] and slope_bayes[k] != slope_freq[k]:
            rows.append({"miRNA": row["miRNA"], "question": "isomiR-specific slopes",
                         "bayesian": _call(slope_bayes[k]), "frequentist": _call(slope_freq[k]),
                         "detail": f"sd_slope median {row['sd_slope_median']:.3g}, log BF "
                                   f"{row['log_bayes_factor']:.3g}; LRT p {row['lrt_p_mixture']:.3g}"})
    return pd.DataFrame(rows, columns=["miRNA", "question", "bayesian", "frequentist", "detail"])


def _call(value: bool) -> str:
    return "yes" if bool(value) else "no"
