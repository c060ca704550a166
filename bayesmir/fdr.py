"""Benjamini-Hochberg adjustment shared by the Bayesian tables, the frequentist fits and the reports."""

from __future__ import annotations

import numpy as np
from scipy.stats import false_discovery_control


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values over the finite values; NaN stay NaN and do not count.

    Parameters
    ----------
    p_values : array-like
        P-values (or posterior tail probabilities) in [0, 1], NaN where missing.

    Returns
    -------
    numpy.ndarray
        Adjusted values, same shape and order.
    """
    values = np.asarray(p_values, dtype=float)
    adjusted = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    if finite.any():
        adjusted[finite] = false_discovery_control(values[finite], method="bh")
    return adjusted
