"""The Bayesian-versus-frequentist section of the report: merged table and disagreements.

The table and every call are those of :func:`bayesmir.frequentist.comparison.compare`, so
the report, ``bayesmir compare`` and the CLI summary count the same miRNAs (rules in
:mod:`bayesmir.calls`); this module only checks the input and lists the disagreements.
"""

from __future__ import annotations

import pandas as pd

from bayesmir.errors import InputError
from bayesmir.frequentist.comparison import compare, is_true

FREQUENTIST_COLUMNS = ("miRNA", "coef", "estimate", "se", "ci_low", "ci_high", "wald_p", "converged")


def check_frequentist(table: pd.DataFrame) -> pd.DataFrame:
    """The frequentist table, checked for the contract columns (``InputError`` otherwise)."""
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"frequentist results must be a pandas DataFrame, not {type(table).__name__}")
    missing = [c for c in FREQUENTIST_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"frequentist results: missing column(s) {missing}; "
                         f"expected at least {list(FREQUENTIST_COLUMNS)}")
    return table


def merged_table(fit, frequentist: pd.DataFrame, coef: str | None = None, tables: dict | None = None
                 ) -> pd.DataFrame:
    """One row per miRNA in both the run and the frequentist table (:func:`compare`'s table).

    Parameters
    ----------
    fit : FitResult
    frequentist : pandas.DataFrame
        The frequentist table (docs/architecture.md).
    coef : str, optional
        Coefficient to compare; default the first of the run's table.
    tables : dict, optional
        The run's tables already built (``FitResult.tables()``), passed to :func:`compare`.
    """
    table = compare(fit, frequentist, coef=coef, tables=tables).table
    return table[table["estimate_bayes"].notna() & table["estimate_freq"].notna()].reset_index(drop=True)


def disagreements(merged: pd.DataFrame) -> pd.DataFrame:
    """miRNAs called by one approach and not the other (DE or isomiR usage).

    Returns
    -------
    pandas.DataFrame
        ``miRNA, question, bayesian, frequentist, detail`` (the numbers behind each call).
    """
    rows = []
    for row in merged.itertuples():
        if row.disagree:
            rows.append({"miRNA": row.miRNA, "question": "differential expression",
                         "bayesian": _call(row.call_bayes), "frequentist": _call(row.call_freq),
                         "detail": f"estimate {row.estimate_bayes:.3g}, qvalue {row.qvalue_bayes:.3g}; "
                                   f"estimate {row.estimate_freq:.3g}, qvalue {row.qvalue_freq:.3g}"})
        if is_true(row.slope_disagree):
            rows.append({"miRNA": row.miRNA, "question": "isomiR usage",
                         "bayesian": _call(row.slope_call_bayes), "frequentist": _call(row.slope_call_freq),
                         "detail": f"log BF {row.log_bayes_factor:.3g}; LRT p {row.lrt_p:.3g}, "
                                   f"qvalue {row.qvalue_lrt:.3g}"})
    return pd.DataFrame(rows, columns=["miRNA", "question", "bayesian", "frequentist", "detail"])


def _call(value) -> str:
    return "yes" if is_true(value) else "no"
