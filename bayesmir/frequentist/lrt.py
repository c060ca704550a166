"""Likelihood-ratio test of the isomiR random slopes (full vs intercept-only model).

miRglmm asks whether isomiRs of a miRNA change differently between groups by
comparing the full model ``(1 + group | sequence)`` with the reduced ``(1 | sequence)``.
Three p-values are reported for the same statistic:

- ``lrt_p_naive``: chi-square with lme4's ``anova`` degrees of freedom (one slope term:
  its SD and its correlation with the intercept, df = 2).
- ``lrt_p_1df``: chi-square with 1 df, as in the miRglmm paper.
- ``lrt_p_mixture`` (recommended): ``0.5 chi2(df - 1) + 0.5 chi2(df)``. Under the null the
  slope variance sits on the boundary of its space (a variance cannot be negative), so
  the statistic is not chi2(df): half of the time the fit puts the variance at zero and
  the statistic has the smaller distribution (Self & Liang 1987; Stram & Lee 1994).
  The naive test is conservative, the 1-df test ignores the correlation parameter; the
  mixture is the asymptotic null distribution for one added random slope.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bayesmir.frequentist.mle import fit_frequentist, problems_from
from bayesmir.problem import DEFAULT_NORMALISATION, reduced_problem


def mixture_pvalue(statistic: np.ndarray, df: np.ndarray) -> np.ndarray:
    """P-value under ``0.5 chi2(df - 1) + 0.5 chi2(df)`` (chi2(0) is a point mass at 0)."""
    statistic, df = np.asarray(statistic, float), np.asarray(df, float)
    lower = np.where(df > 1, stats.chi2.sf(statistic, np.maximum(df - 1, 1)), (statistic <= 0) * 1.0)
    return 0.5 * lower + 0.5 * stats.chi2.sf(statistic, df)


def slope_df(q: int) -> int:
    """Covariance parameters added by the slopes: ``q(q+1)/2 - 1`` (lme4's anova count)."""
    return q * (q + 1) // 2 - 1


def lrt(
    data_or_problems,
    formula: str = "~ group",
    coef: str | None = None,
    family: str = "nb",
    n_jobs: int = 1,
    reference: dict[str, str] | None = None,
    normalisation: str = DEFAULT_NORMALISATION,
) -> pd.DataFrame:
    """Fit full and reduced models per miRNA and test the isomiR random slopes.

    Parameters
    ----------
    data_or_problems : IsomirData or sequence of MirnaProblem
        As in :func:`~bayesmir.frequentist.fit_frequentist`; problems must carry the
        full random-effect design (intercept and slopes).
    formula, coef, family, n_jobs, reference, normalisation
        As in :func:`~bayesmir.frequentist.fit_frequentist`.

    Returns
    -------
    pandas.DataFrame
        The full model's frequentist table plus ``loglik_reduced, lrt_stat, lrt_df,
        lrt_p_naive, lrt_p_1df, lrt_p_mixture`` (statistic floored at 0; NaN when either
        fit failed).
    """
    problems, coef = problems_from(data_or_problems, formula, coef, reference, random_slope=True,
                                   normalisation=normalisation)
    full = fit_frequentist(problems, coef=coef, family=family, n_jobs=n_jobs)
    reduced = fit_frequentist([reduced_problem(p) for p in problems], coef=coef, family=family,
                              n_jobs=n_jobs)
    table = full.copy()
    ok = full["converged"].astype(bool).to_numpy() & reduced["converged"].astype(bool).to_numpy()
    table["loglik_reduced"] = reduced["loglik"].to_numpy()
    statistic = np.maximum(2 * (full["loglik"].to_numpy() - reduced["loglik"].to_numpy()), 0.0)
    table["lrt_stat"] = np.where(ok, statistic, np.nan)
    table["lrt_df"] = [slope_df(p.Z.shape[1]) for p in problems]
    table["lrt_p_naive"] = stats.chi2.sf(table["lrt_stat"], table["lrt_df"])
    table["lrt_p_1df"] = stats.chi2.sf(table["lrt_stat"], 1)
    table["lrt_p_mixture"] = mixture_pvalue(table["lrt_stat"], table["lrt_df"])
    table["seconds"] = full["seconds"].to_numpy() + reduced["seconds"].to_numpy()
    failed = ~ok & full["converged"].astype(bool).to_numpy()
    table.loc[failed, "message"] = "reduced model did not converge: " + reduced.loc[failed, "message"]
    return table
