"""Posterior summaries of one coefficient: exact from a Gaussian mixture, else from draws.

A fit that carries the ``mixture`` group (the nested Laplace method,
:mod:`bayesmir.mixture`) is summarised exactly from it, with the integration error as
standard errors; any other fit (NUTS, ADVI) from its draws, with ArviZ's Monte Carlo
standard errors (``az.mcse``) in the same columns. Column names: docs/glossary.md.
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np

from bayesmir.calls import DEFAULT_DELTA, DEFAULT_LEVEL
from bayesmir.mixture import (
    EB_GROUP,
    MIXTURE_GROUP,
    GaussianMixture,
    p_abs_column,
    summarise_mixture,
)


def summary_columns(delta: float) -> list[str]:
    """Columns of :func:`coefficient_summary`, in table order."""
    p_abs = p_abs_column(delta)
    return ["estimate", "sd", "median", "ci_low", "ci_high", "ci_low_se", "ci_high_se", "hdi_low", "hdi_high",
            "lfsr", "lfsr_se", p_abs, f"{p_abs}_se"]


def coefficient_summary(idata, coef: str, level: float = DEFAULT_LEVEL, delta: float = DEFAULT_DELTA) -> dict:
    """Summary of ``beta[coef]`` of one fit (``idata`` None: every column NaN)."""
    if idata is None:
        return dict.fromkeys(summary_columns(delta), math.nan)
    group = EB_GROUP if EB_GROUP in idata.groups() else MIXTURE_GROUP  # shrunk (bayesmir.shrinkage) if present
    if group in idata.groups():
        mixture = idata[group].sel(coef=coef)  # the mixture group's weights have no coef
        return summarise_mixture(GaussianMixture.of(mixture["weight"].values, mixture["beta_mean"].values,
                                                    mixture["beta_sd"].values), level, delta)
    draws = idata.posterior["beta"].sel(coef=coef).transpose("chain", "draw").values
    return summarise_draws(draws, level, delta)


def summarise_draws(draws: np.ndarray, level: float = DEFAULT_LEVEL, delta: float = DEFAULT_DELTA) -> dict:
    """The columns of :func:`summary_columns` from draws ``(chain, draw)``, SEs by ``az.mcse``."""
    draws = np.atleast_2d(np.asarray(draws, dtype=float))
    if draws.size == 0:
        return dict.fromkeys(summary_columns(delta), math.nan)
    flat = draws.ravel()
    tail = (1 - level) / 2
    hdi = az.hdi(flat, hdi_prob=level)
    below = np.mean(flat <= 0)
    sign = (draws <= 0) if below <= 0.5 else (draws >= 0)
    outside = np.abs(draws) > delta
    p_abs = p_abs_column(delta)
    return {
        "estimate": float(flat.mean()), "sd": float(flat.std(ddof=1)), "median": float(np.median(flat)),
        "ci_low": float(np.quantile(flat, tail)), "ci_high": float(np.quantile(flat, 1 - tail)),
        "ci_low_se": _mcse(draws, "quantile", tail), "ci_high_se": _mcse(draws, "quantile", 1 - tail),
        "hdi_low": float(hdi[0]), "hdi_high": float(hdi[1]),
        "lfsr": lfsr(flat), "lfsr_se": _mcse(sign.astype(float), "mean"),
        p_abs: float(outside.mean()), f"{p_abs}_se": _mcse(outside.astype(float), "mean"),
    }


def lfsr(draws: np.ndarray) -> float:
    """Local false sign rate ``min(P(x >= 0), P(x <= 0))`` estimated from draws."""
    draws = np.asarray(draws)
    return float(min(np.mean(draws >= 0), np.mean(draws <= 0)))


def _mcse(draws: np.ndarray, method: str, prob: float | None = None) -> float:
    """ArviZ's Monte Carlo SE of draws ``(chain, draw)``; 0 for a constant indicator, NaN if it fails."""
    if np.ptp(draws) == 0:
        return 0.0
    try:
        value = az.mcse(draws, method=method, prob=prob) if prob is not None else az.mcse(draws, method=method)
    except (ValueError, TypeError):
        return math.nan
    return float(np.asarray(value).ravel()[0])
