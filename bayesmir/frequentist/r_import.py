"""Reading the R original's results (miRglmm / lme4 ``glmer.nb``) into the frequentist contract.

:func:`import_r_results` maps R's column names (:data:`R_COLUMNS`) onto those of
``fit_frequentist``/``lrt`` (docs/glossary.md) and derives what R does not write: the Wald
interval and p, and the LRT p-values (:func:`bayesmir.frequentist.lrt.mixture_pvalue`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bayesmir.calls import Z_95
from bayesmir.errors import InputError
from bayesmir.frequentist.lrt import mixture_pvalue

# contract column -> accepted names in an R results file (first found wins; case-insensitive)
R_COLUMNS = {
    "miRNA": ["miRNA", "mirna"],
    "estimate": ["estimate", "logFC"],
    "se": ["se", "SE"],
    "ci_low": ["ci_low", "CI_low"],
    "ci_high": ["ci_high", "CI_high"],
    "wald_p": ["wald_p", "p", "pvalue"],
    "theta": ["theta"],
    "sd_isomir": ["sd_isomir", "sd_int_seq"],
    "sd_slope": ["sd_slope", "sd_slope_seq"],
    "corr_isomir": ["corr_isomir", "cor_seq"],
    "sd_sample": ["sd_sample"],
    "loglik": ["loglik", "loglik_full"],
    "loglik_reduced": ["loglik_reduced"],
    "converged": ["converged"],
    "singular": ["singular"],
    "message": ["message", "warnings", "warnings_full"],
    "n_isomirs": ["n_isomirs"],
    "n_samples": ["n_samples"],
    "lrt_stat": ["lrt_stat"],
    "lrt_df": ["lrt_df"],
    "lrt_p_naive": ["lrt_p"],
}
R_REQUIRED = ("miRNA", "estimate", "se")
R_ORDER = [
    "miRNA", "coef", "estimate", "se", "ci_low", "ci_high", "wald_p", "theta", "sd_isomir",
    "sd_slope", "corr_isomir", "sd_sample", "loglik", "converged", "singular", "message",
    "n_isomirs", "n_samples", "loglik_reduced", "lrt_stat", "lrt_df", "lrt_p_naive", "lrt_p_mixture",
]
"""Column order of :func:`import_r_results` (the frequentist contract's, then the LRT's)."""
R_DEFAULT_PREFIX = "nb_full_"
"""Column prefix of miRglmm's full NB model in files holding several models."""


def import_r_results(path: str | Path, prefix: str | None = None) -> pd.DataFrame:
    """Read miRglmm / lme4 ``glmer.nb`` results written by R into the frequentist contract.

    Parameters
    ----------
    path : str or Path
        CSV with at least ``miRNA``, ``estimate`` or ``logFC``, ``SE``; optionally
        ``ci_low``/``CI_low``, ``ci_high``, ``wald_p``, ``theta``, ``sd_slope``, ``sd_isomir``,
        ``sd_sample``, ``singular``, ``converged``, ``lrt_stat``, ``lrt_df`` and the
        random-slope LRT p as ``lrt_p`` or ``LRT_p`` (case-insensitive).
    prefix : str, optional
        Column prefix of the model to read in files with several (``"nb_full_"``,
        ``"pois_full_"``, ``"tmb_"``); default none when plain names exist, else ``"nb_full_"``.

    Returns
    -------
    pandas.DataFrame
        Frequentist contract columns that the file provides (``coef`` NaN: R files do not
        name it), plus ``lrt_p_naive`` (R's ``anova`` p, chi-square on ``lrt_df``) and
        ``lrt_p_mixture`` (:func:`bayesmir.frequentist.lrt.mixture_pvalue`: 50:50 chi-square
        mixture on ``lrt_df - 1`` and ``lrt_df``, a point mass at 0 for ``lrt_df = 1``) when
        the LRT statistic is given.

    Raises
    ------
    InputError
        Unreadable file, or a required column missing (named, with the file).
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the R results as CSV: {error}") from None
    prefix = _model_prefix(raw, prefix, path)
    table = pd.DataFrame(index=raw.index)
    for target, names in R_COLUMNS.items():
        column = _find_column(raw, names, prefix)
        if column is not None:
            table[target] = raw[column]
    missing = [target for target in R_REQUIRED if target not in table]
    if missing:
        wanted = [" or ".join(f"{prefix if t != 'miRNA' else ''}{n}" for n in R_COLUMNS[t]) for t in missing]
        raise InputError(f"{path}: missing column(s) {wanted}; the file has {list(raw.columns)}")
    return _r_table(table)


def _model_prefix(raw: pd.DataFrame, prefix: str | None, path: Path) -> str:
    if prefix is not None:
        return prefix
    lower = {c.lower() for c in raw.columns}
    if "estimate" in lower or "logfc" in lower:
        return ""
    if f"{R_DEFAULT_PREFIX}logfc" in lower:
        return R_DEFAULT_PREFIX
    return ""


def _find_column(raw: pd.DataFrame, names: list[str], prefix: str) -> str | None:
    """First column matching a name, prefixed name first (case-insensitive)."""
    lower = {c.lower(): c for c in raw.columns}
    for name in names:
        for candidate in (f"{prefix}{name}", name):
            if candidate.lower() in lower:
                return lower[candidate.lower()]
    if names[0] == "miRNA" and "unnamed: 0" in lower:
        return lower["unnamed: 0"]  # R's write.csv with row names
    return None


def _r_table(table: pd.DataFrame) -> pd.DataFrame:
    """Fill derived contract columns: coef, Wald interval and p, LRT p-values, flags."""
    table["miRNA"] = table["miRNA"].astype(str)
    table.insert(1, "coef", np.nan)
    estimate, se = table["estimate"].astype(float), table["se"].astype(float)
    if "ci_low" not in table:
        table["ci_low"], table["ci_high"] = estimate - Z_95 * se, estimate + Z_95 * se
    if "wald_p" not in table:
        table["wald_p"] = 2 * stats.norm.sf(np.abs(estimate / se))
    if "converged" not in table:
        table["converged"] = estimate.notna() & se.notna()
    for flag in ("converged", "singular"):
        if flag in table:
            table[flag] = table[flag].map(_as_bool).astype("boolean")
    if "lrt_stat" in table:
        df = table["lrt_df"].astype(float) if "lrt_df" in table else pd.Series(2.0, index=table.index)
        stat = table["lrt_stat"].astype(float).clip(lower=0)
        if "lrt_p_naive" not in table:
            table["lrt_p_naive"] = stats.chi2.sf(stat, df)
        table["lrt_p_mixture"] = mixture_pvalue(stat, df)
    if "message" in table:
        table["message"] = table["message"].fillna("").astype(str)
    return table[[c for c in R_ORDER if c in table]]


def _as_bool(value):
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower(), pd.NA)
    return pd.NA if pd.isna(value) else bool(value)
