"""Bayesian against frequentist results, miRNA by miRNA.

:func:`compare` joins a Bayesian fit (``FitResult.mirna_table()`` and ``slope_table()``) with
a frequentist table (``fit_frequentist``/``lrt``, ``fit_aggregated`` for one method, or
:func:`bayesmir.frequentist.r_import.import_r_results` of a CSV written by miRglmm / lme4 ``glmer.nb``) and returns a
:class:`ComparisonResult`: a per-miRNA ``table`` and a ``summary`` dict.

Calls are those of :mod:`bayesmir.calls` (one rule each, used by the CLI and the report
too), at level ``alpha`` (default 0.05), with every Benjamini-Hochberg adjustment over the
same set: the miRNAs of the Bayesian run (frequentist rows of other miRNAs are shown but
neither adjusted nor called):

- DE: Bayesian ``qvalue_bayes < alpha`` (the run's ``qvalue``), frequentist
  ``qvalue_freq < alpha`` (BH of the Wald p);
- isomiR usage: Bayesian ``log_bayes_factor > log 3``, frequentist ``qvalue_lrt < alpha``
  (BH of the LRT p, ``lrt_p_mixture`` else ``lrt_p_naive``);
- a fit that did not converge is never called.

A miRNA is flagged ``disagree`` when both tables have it and the calls differ, or both call
it with opposite signs; ``reason`` says which, and notes fits that did not converge or are
singular.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from bayesmir import calls
from bayesmir.calls import Z_95
from bayesmir.errors import InputError
from bayesmir.fdr import benjamini_hochberg
from bayesmir.log_base import in_natural_log


@dataclass
class ComparisonResult:
    """Per-miRNA comparison table and its summary.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per miRNA (outer join): ``miRNA, coef, estimate_bayes, sd_bayes, ci_low_bayes,
        ci_high_bayes, lfsr, qvalue_bayes, estimate_freq, se_freq, ci_low_freq, ci_high_freq,
        wald_p, qvalue_freq, difference`` (Bayes - frequentist), ``width_ratio`` (95% interval
        widths, Bayes / frequentist), ``sign_agree, call_bayes, call_freq, disagree, reason,
        converged_bayes, converged_freq, singular``, and slope evidence ``sd_slope_bayes,
        log_bayes_factor, converged_slope_bayes, sd_slope_freq, lrt_p, qvalue_lrt,
        slope_call_bayes, slope_call_freq, slope_disagree``.
    summary : dict
        ``n_mirnas`` (in both tables), ``pearson``, ``spearman`` (of the estimates),
        ``median_difference``, ``median_width_ratio``, call counts ``n_both, n_bayes_only,
        n_freq_only, n_neither``, ``agreement`` (fraction), ``kappa`` (Cohen's), ``n_sign_disagree``,
        and the same counts and ``slope_kappa`` for the slope calls.
    """

    table: pd.DataFrame
    summary: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"ComparisonResult({s.get('n_mirnas', 0)} miRNAs in both; estimates r = "
            f"{s.get('pearson', np.nan):.3f}; calls: {s.get('n_both', 0)} both, "
            f"{s.get('n_bayes_only', 0)} Bayes only, {s.get('n_freq_only', 0)} frequentist only, "
            f"kappa = {s.get('kappa', np.nan):.2f})"
        )


def compare(fit, freq: pd.DataFrame, coef: str | None = None, alpha: float = 0.05,
            tables: dict | None = None) -> ComparisonResult:
    """Compare a Bayesian fit with frequentist results miRNA by miRNA.

    Parameters
    ----------
    fit : FitResult or pandas.DataFrame
        A fit (its ``mirna_table()`` and, if present, ``slope_table()`` are used) or a
        table with ``mirna_table`` columns.
    freq : pandas.DataFrame
        Frequentist table (contract columns; ``p`` is accepted for ``wald_p``). A
        ``fit_aggregated`` table must hold one method.
    coef : str, optional
        Coefficient to compare; default the first in the Bayesian table.
    alpha : float
        Level of the calls.
    tables : dict, optional
        The fit's tables already built (``FitResult.tables()``: ``"mirna"`` and ``"slope"``),
        used instead of building them again.

    Returns
    -------
    ComparisonResult
    """
    bayes = _bayes_side(fit, coef, tables or {})
    coef = str(bayes["coef"].iloc[0]) if len(bayes) else coef
    table = pd.merge(bayes, _freq_side(freq, coef), on="miRNA", how="outer", sort=True)
    table["coef"] = coef
    in_run = table["miRNA"].isin(bayes["miRNA"])
    table["qvalue_freq"] = benjamini_hochberg(table["wald_p"].where(in_run))
    table["qvalue_lrt"] = benjamini_hochberg(table["lrt_p"].where(in_run))
    table = _with_comparisons(table, alpha)
    return ComparisonResult(table=table, summary=_summary(table))


def _bayes_side(fit, coef: str | None, tables: dict) -> pd.DataFrame:
    """Bayesian columns per miRNA: estimate, interval, lfsr/qvalue, slope evidence."""
    table = fit if isinstance(fit, pd.DataFrame) else tables.get("mirna")
    table = in_natural_log(fit.mirna_table() if table is None else table)  # the ML fit's scale
    _require(table, ["miRNA", "coef", "estimate", "sd", "ci_low", "ci_high", "lfsr", "qvalue"], "Bayesian table")
    chosen = coef if coef is not None else (table["coef"].iloc[0] if len(table) else None)
    table = table[table["coef"].map(_coef_key) == _coef_key(chosen)]
    if table.empty:
        raise InputError(f"compare: coefficient {chosen!r} is not in the Bayesian table")
    side = pd.DataFrame({
        "miRNA": table["miRNA"].astype(str), "coef": table["coef"].astype(str),
        "estimate_bayes": table["estimate"], "sd_bayes": table["sd"],
        "ci_low_bayes": table["ci_low"], "ci_high_bayes": table["ci_high"], "lfsr": table["lfsr"],
        "qvalue_bayes": table["qvalue"],
        "converged_bayes": table.get("converged", pd.Series(True, index=table.index)),
    })
    slopes = _slope_side(fit, tables.get("slope"))
    return side.merge(slopes, on="miRNA", how="left") if slopes is not None else side


def _slope_side(fit, table: pd.DataFrame | None) -> pd.DataFrame | None:
    """One slope-evidence row per miRNA (the first slope term) from ``table``, else ``fit.slope_table()``."""
    if table is None and (isinstance(fit, pd.DataFrame) or not hasattr(fit, "slope_table")):
        return None
    table = in_natural_log(fit.slope_table() if table is None else table)
    if table is None or table.empty:
        return None
    table = table.drop_duplicates("miRNA")
    return pd.DataFrame({
        "miRNA": table["miRNA"].astype(str),
        "sd_slope_bayes": table.get("sd_slope_median", pd.Series(np.nan, index=table.index)),
        "log_bayes_factor": table.get("log_bayes_factor", pd.Series(np.nan, index=table.index)),
        "converged_slope_bayes": table["converged"],
    })


def _freq_side(freq: pd.DataFrame, coef: str | None) -> pd.DataFrame:
    """Frequentist columns per miRNA for ``coef`` (adjusted later, over the Bayesian run's miRNAs)."""
    _require(freq, ["miRNA", "estimate", "se", "wald_p"], "frequentist table")
    if "method" in freq and freq["method"].nunique() > 1:
        raise InputError(
            f"compare: the frequentist table holds methods {sorted(freq['method'].unique())}; "
            "pass one, e.g. freq[freq['method'] == 'nbglm']"
        )
    if "coef" in freq and freq["coef"].notna().any() and coef is not None:
        keys = freq["coef"].map(_coef_key)
        if not (keys == _coef_key(coef)).any():
            raise InputError(
                f"compare: coefficient {coef!r} is not in the frequentist table "
                f"(it has {sorted(freq['coef'].dropna().astype(str).unique())})"
            )
        freq = freq[keys == _coef_key(coef)]
    wald_p = freq["wald_p"].to_numpy(dtype=float)
    estimate, se = freq["estimate"].astype(float), freq["se"].astype(float)
    lrt_p, sd_slope = _lrt_p(freq), freq.get("sd_slope", pd.Series(np.nan, index=freq.index))
    return pd.DataFrame({
        "miRNA": freq["miRNA"].astype(str), "estimate_freq": estimate, "se_freq": se,
        "ci_low_freq": freq.get("ci_low", estimate - Z_95 * se),
        "ci_high_freq": freq.get("ci_high", estimate + Z_95 * se),
        "wald_p": wald_p,
        "converged_freq": freq.get("converged", pd.Series(True, index=freq.index)),
        "singular": freq.get("singular", pd.Series(False, index=freq.index)),
        "sd_slope_freq": sd_slope, "lrt_p": lrt_p,
    })


def _lrt_p(freq: pd.DataFrame) -> pd.Series:
    for column in ("lrt_p_mixture", "lrt_p_naive", "lrt_p"):
        if column in freq and freq[column].notna().any():
            return freq[column].astype(float)
    return pd.Series(np.nan, index=freq.index)


def _with_comparisons(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Differences, interval width ratio, calls and disagreement flags."""
    in_both = table["estimate_bayes"].notna() & table["estimate_freq"].notna()
    table["difference"] = table["estimate_bayes"] - table["estimate_freq"]
    table["width_ratio"] = (table["ci_high_bayes"] - table["ci_low_bayes"]) / (
        table["ci_high_freq"] - table["ci_low_freq"])
    # a zero estimate is no opposite sign; missing on either side is no agreement
    table["sign_agree"] = (table["estimate_bayes"] * table["estimate_freq"]) >= 0
    table["call_bayes"] = calls.de_calls(table["qvalue_bayes"], table["converged_bayes"], alpha)
    table["call_freq"] = calls.frequentist_calls(table["qvalue_freq"], table["converged_freq"], alpha)
    both_called = table["call_bayes"] & table["call_freq"]
    table["disagree"] = in_both & ((table["call_bayes"] != table["call_freq"])
                                   | (both_called & ~table["sign_agree"]))
    table["reason"] = [_reason(row) for row in table.itertuples()]
    if "log_bayes_factor" not in table:
        table["sd_slope_bayes"], table["log_bayes_factor"], table["converged_slope_bayes"] = np.nan, np.nan, False
    table["slope_call_bayes"] = _call_or_na(
        table["log_bayes_factor"], calls.usage_calls(table["log_bayes_factor"], table["converged_slope_bayes"]))
    table["slope_call_freq"] = _call_or_na(
        table["qvalue_lrt"], calls.frequentist_calls(table["qvalue_lrt"], table["converged_freq"], alpha))
    both_slopes = table["slope_call_bayes"].notna() & table["slope_call_freq"].notna()
    table["slope_disagree"] = both_slopes & (table["slope_call_bayes"] != table["slope_call_freq"])
    slope_text = np.where(table["slope_call_bayes"].fillna(False), "isomiR usage: Bayes factor only",
                          "isomiR usage: LRT only")
    slope_note = pd.Series(np.where(table["slope_disagree"].fillna(False), slope_text, ""), index=table.index)
    table["reason"] = ["; ".join(part for part in (reason, note) if part)
                       for reason, note in zip(table["reason"], slope_note)]
    for column in ("converged_bayes", "converged_freq", "singular"):
        table[column] = table[column].astype("boolean")
    return table[_TABLE_COLUMNS]


_TABLE_COLUMNS = [
    "miRNA", "coef", "estimate_bayes", "sd_bayes", "ci_low_bayes", "ci_high_bayes", "lfsr", "qvalue_bayes",
    "estimate_freq", "se_freq", "ci_low_freq", "ci_high_freq", "wald_p", "qvalue_freq",
    "difference", "width_ratio", "sign_agree", "call_bayes", "call_freq", "disagree", "reason",
    "converged_bayes", "converged_freq", "singular", "sd_slope_bayes", "log_bayes_factor", "converged_slope_bayes",
    "sd_slope_freq", "lrt_p", "qvalue_lrt", "slope_call_bayes", "slope_call_freq", "slope_disagree",
]


def _call_or_na(values: pd.Series, called) -> pd.Series:
    """The calls ``called`` where ``values`` exist, NA (no test) elsewhere."""
    known = values.astype(float).notna().to_numpy()
    return pd.Series(np.where(known, called, pd.NA), index=values.index, dtype="boolean")


def _reason(row) -> str:
    """Why a miRNA's calls differ (empty when they agree), with fit-quality notes."""
    if pd.isna(row.estimate_bayes) and pd.isna(row.estimate_freq):
        return "no estimate on either side"
    if pd.isna(row.estimate_bayes):
        return "no Bayesian estimate"
    if pd.isna(row.estimate_freq):
        return "no frequentist estimate"
    if not row.disagree:
        return ""
    if row.call_bayes and row.call_freq:
        text = "opposite signs, both significant"
    elif row.call_bayes:
        text = "significant in Bayes only"
    else:
        text = "significant in frequentist only"
    notes = [note for note, bad in (
        ("Bayesian fit not converged", _is_false(row.converged_bayes)),
        ("frequentist fit not converged", _is_false(row.converged_freq)),
        ("frequentist fit singular", is_true(row.singular)),
    ) if bad]
    return "; ".join([text, *notes])


def is_true(value) -> bool:
    """A missing value (NA) counts as False."""
    return not pd.isna(value) and bool(value)


def _is_false(value) -> bool:
    return not pd.isna(value) and not bool(value)


def _summary(table: pd.DataFrame) -> dict:
    """Correlation of estimates and agreement of calls over miRNAs in both tables."""
    both = table[table["estimate_bayes"].notna() & table["estimate_freq"].notna()]
    summary = {"n_mirnas": len(both), "n_bayes_only_table": int(table["estimate_freq"].isna().sum()),
               "n_freq_only_table": int(table["estimate_bayes"].isna().sum())}
    if len(both) >= 3:
        summary["pearson"] = float(stats.pearsonr(both["estimate_bayes"], both["estimate_freq"])[0])
        summary["spearman"] = float(stats.spearmanr(both["estimate_bayes"], both["estimate_freq"])[0])
    else:
        summary["pearson"] = summary["spearman"] = np.nan
    summary["median_difference"] = float(both["difference"].median()) if len(both) else np.nan
    summary["median_width_ratio"] = float(both["width_ratio"].median()) if len(both) else np.nan
    summary.update(_agreement(both["call_bayes"], both["call_freq"]))
    summary["n_sign_disagree"] = int((~both["sign_agree"]).sum())
    slopes = both[both["slope_call_bayes"].notna() & both["slope_call_freq"].notna()]
    slope = _agreement(slopes["slope_call_bayes"], slopes["slope_call_freq"])
    summary.update({f"slope_{key}": value for key, value in slope.items()})
    return summary


def _agreement(bayes: pd.Series, freq: pd.Series) -> dict:
    """2 x 2 counts of two sets of calls, fraction agreeing and Cohen's kappa."""
    bayes, freq = bayes.astype(bool).to_numpy(), freq.astype(bool).to_numpy()
    counts = {"n_both": int((bayes & freq).sum()), "n_bayes_only": int((bayes & ~freq).sum()),
              "n_freq_only": int((~bayes & freq).sum()), "n_neither": int((~bayes & ~freq).sum())}
    n = len(bayes)
    counts["agreement"] = float((bayes == freq).mean()) if n else np.nan
    chance = (bayes.mean() * freq.mean() + (1 - bayes.mean()) * (1 - freq.mean())) if n else 1.0
    if n == 0 or np.isclose(chance, 1.0):
        counts["kappa"] = np.nan  # undefined: every call the same on both sides
    else:
        counts["kappa"] = float((counts["agreement"] - chance) / (1 - chance))  # Cohen's kappa
    return counts


def _coef_key(name) -> str:
    """Coefficient name comparable across naming styles: ``group[T.case]`` ~ R's ``groupcase``."""
    text = str(name)
    return text.replace("[T.", "").replace("]", "") if "[T." in text else text


def _require(table: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"compare: the {what} lacks column(s) {missing}; it has {list(table.columns)}")
