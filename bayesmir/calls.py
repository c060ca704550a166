"""The two decisions bayesmir reports, each defined once: differential expression and isomiR usage.

Every consumer (the tables of :mod:`bayesmir.results`, the CLI summary line,
``compare`` and the HTML report) calls these functions, so a count printed anywhere is
the same count.

Rules
-----
- **DE** (Bayesian): ``qvalue < ALPHA``, where ``qvalue`` is the Benjamini-Hochberg
  adjustment of the two-sided posterior tail probability ``2 * lfsr``, over every miRNA of
  the run that has a posterior (per coefficient). ``2 * lfsr`` equals the two-sided Wald
  p-value for a Gaussian posterior under a flat prior, so the rule behaves like DESeq2's
  ``padj < 0.05``. Frequentist DE: ``qvalue < ALPHA`` with ``qvalue`` the BH adjustment of
  the Wald p-values over the same miRNAs.
- **isomiR usage** (Bayesian): ``log_bayes_factor > USAGE_LOG_BF`` = log 3, the full model
  (isomiR-specific slopes) against the reduced one (none), "positive evidence" on Kass &
  Raftery's scale. Frequentist usage: ``qvalue < ALPHA`` of the LRT p-values (boundary
  mixture, :func:`bayesmir.frequentist.lrt.mixture_pvalue`).
- **Flagged fits** (not converged, failed): they keep their values and take part in the
  BH adjustment (leaving them out would make the others' adjustment depend on the
  diagnostics), but are never called: a call needs ``converged``. A failed fit has no
  value (NaN) and does not count in the adjustment.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from bayesmir.errors import InputError
from bayesmir.fdr import benjamini_hochberg

ALPHA = 0.05  # FDR level of the DE and frequentist calls
USAGE_LOG_BF = math.log(3.0)  # log Bayes factor above which isomiR usage is called
DEFAULT_LEVEL = 0.95  # mass of the reported intervals
DEFAULT_DELTA = math.log(1.5)  # |log fold change| of P(|beta| > delta): a 1.5-fold change
Z_95 = float(stats.norm.ppf(0.975))  # z of the frequentist fits' Wald 95% intervals


def checked_level(level: float) -> float:
    """``level`` (mass of the reported intervals) as a float; InputError unless in (0, 1)."""
    if not 0 < level < 1:
        raise InputError(f"level {level}: the interval mass must be between 0 and 1 (e.g. 0.95)")
    return float(level)


def bayes_qvalues(lfsr) -> np.ndarray:
    """BH-adjusted two-sided posterior tail probabilities ``BH(min(2 lfsr, 1))``; NaN stay NaN."""
    return benjamini_hochberg(np.minimum(2 * np.asarray(lfsr, dtype=float), 1.0))


def svalues(lfsr) -> np.ndarray:
    """ashr's s-values: the running mean of the sorted lfsr, mapped back to the input order; NaN stay NaN.

    A Bayesian false *sign* rate; it calls more than ``qvalue`` (under a continuous prior an
    effect of exactly 0 has no mass), so no call is made on it.
    """
    values = np.asarray(lfsr, dtype=float)
    result = np.full(values.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(values[finite], kind="stable")]
    result[order] = np.cumsum(values[order]) / np.arange(1, order.size + 1)
    return result


def _converged(converged, size: int) -> np.ndarray:
    if converged is None:
        return np.ones(size, dtype=bool)
    return pd.Series(np.asarray(converged, dtype=object)).map(lambda v: False if pd.isna(v) else bool(v)).to_numpy(bool)


def de_calls(qvalue, converged=None, alpha: float = ALPHA) -> np.ndarray:
    """DE call per row: ``qvalue < alpha`` and the fit converged (module docstring)."""
    q = np.asarray(qvalue, dtype=float)
    return (np.nan_to_num(q, nan=1.0) < alpha) & _converged(converged, q.size)


def usage_calls(log_bayes_factor, converged=None, threshold: float = USAGE_LOG_BF) -> np.ndarray:
    """isomiR-usage call per row: ``log_bayes_factor > threshold`` and both fits converged."""
    values = np.asarray(log_bayes_factor, dtype=float)
    return (np.nan_to_num(values, nan=-np.inf) > threshold) & _converged(converged, values.size)


def frequentist_calls(qvalue, converged=None, alpha: float = ALPHA) -> np.ndarray:
    """Frequentist DE or usage call per row: BH-adjusted p-value ``qvalue < alpha`` and converged
    (the rule of :func:`de_calls`, applied to frequentist q-values)."""
    return de_calls(qvalue, converged, alpha)


def count_de(mirna_table: pd.DataFrame, alpha: float = ALPHA) -> int:
    """miRNAs with a DE call on any reported coefficient of a :meth:`FitResult.mirna_table`."""
    called = de_calls(mirna_table["qvalue"], mirna_table["converged"], alpha)
    return int(mirna_table.loc[called, "miRNA"].nunique())


def count_usage(slope_table: pd.DataFrame, threshold: float = USAGE_LOG_BF) -> int:
    """miRNAs with an isomiR-usage call in a :meth:`FitResult.slope_table`."""
    called = usage_calls(slope_table["log_bayes_factor"], slope_table["converged"], threshold)
    return int(slope_table.loc[called, "miRNA"].nunique())
