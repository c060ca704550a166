"""PSIS-LOO pointwise ELPD, vectorised over observations.

The same algorithm as ArviZ's ``az.loo`` (Pareto-smoothed importance sampling, Vehtari et al.
2024: ``psislw`` with the generalized Pareto fit ``_gpdfit`` of Zhang and Stephens, and the
same constants), computed for all observations at once instead of one Python call per
observation: ``az.loo`` took 4 s for the 10,000 counts of one miRNA with 500 samples and 20
isomiRs, which at 2,000 miRNAs and two models is hours. Results agree with ``az.loo`` to
float rounding (a test checks it; sums are taken in another order).
"""

from __future__ import annotations

import numpy as np
from arviz.stats.stats_utils import logsumexp

PRIOR_BS, PRIOR_K = 3, 10
_CHUNK = 512  # observations per block of the Pareto fits (memory ~ m * tail * block doubles)


def loo_pointwise(log_likelihood: np.ndarray, reff: float = 1.0) -> np.ndarray:
    """Pointwise PSIS-LOO ELPD of ``log_likelihood`` (draws x observations), as ``az.loo(...).loo_i``.

    Parameters
    ----------
    log_likelihood : numpy.ndarray
        Shape ``(n_draws, n_observations)``.
    reff : float
        Relative efficiency of the draws (``az.loo`` uses 1 for a single chain).

    Returns
    -------
    numpy.ndarray
        Shape ``(n_observations,)``.
    """
    log_likelihood = np.asarray(log_likelihood, dtype=float)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # as az.loo, whose warnings were muted
        log_weights = smoothed_log_weights(-log_likelihood, reff)
    return logsumexp(log_weights + log_likelihood, axis=0)


def smoothed_log_weights(log_weights: np.ndarray, reff: float = 1.0) -> np.ndarray:
    """ArviZ's ``psislw`` (normalised) of every column of ``log_weights`` (draws x observations)."""
    n_draws = log_weights.shape[0]
    x = np.ascontiguousarray((log_weights - log_weights.max(axis=0)).T)  # one row per observation
    kth = n_draws - int(np.ceil(min(n_draws / 5.0, 3 * (n_draws / reff) ** 0.5))) - 1
    cutoff = np.maximum(np.partition(x, kth, axis=1)[:, kth], np.log(np.finfo(float).tiny))
    tail_len = (x > cutoff[:, None]).sum(axis=1)
    for n in np.unique(tail_len):
        if n <= 4:  # too few tail draws for the Pareto fit: not smoothed
            continue
        same = np.flatnonzero(tail_len == n)
        for start in range(0, same.size, _CHUNK):
            _smooth_tail(x, cutoff, same[start:start + _CHUNK], int(n))
    return (x - logsumexp(x, axis=1, keepdims=True)).T


def _smooth_tail(x, cutoff, rows, n) -> None:
    """Replace the ``n`` largest log weights of ``rows`` of ``x`` (all above ``cutoff``) by the
    fitted Pareto quantiles; then cap them at 0, as ArviZ does."""
    block = x[rows]
    positions = np.argpartition(block, -n, axis=1)[:, -n:]  # the n values above the cutoff
    values = np.take_along_axis(block, positions, axis=1)
    ranks = np.argsort(values, axis=1)
    positions = np.take_along_axis(positions, ranks, axis=1)
    exp_cutoff = np.exp(cutoff[rows])
    k, sigma = _gpdfit((np.exp(np.take_along_axis(values, ranks, axis=1)) - exp_cutoff[:, None]).T)
    fitted = np.isfinite(k)
    if not fitted.any():
        return
    probabilities = np.arange(0.5, n) / n
    smoothed = np.log(_gpinv(probabilities, k[fitted], sigma[fitted]) + exp_cutoff[fitted]).T
    block = block[fitted]
    np.put_along_axis(block, positions[fitted], smoothed, axis=1)
    block[block > 0] = 0
    x[rows[fitted]] = block


def _gpdfit(tail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ArviZ's ``_gpdfit`` (empirical Bayes generalized Pareto fit) of each column of sorted ``tail``."""
    n = tail.shape[0]
    m = 30 + int(n**0.5)
    b = 1 - np.sqrt(m / (np.arange(1, m + 1, dtype=float) - 0.5))
    b = b[:, None] / (PRIOR_BS * tail[int(n / 4 + 0.5) - 1])[None, :] + (1 / tail[-1])[None, :]
    k = np.log1p(-b[:, None, :] * tail[None, :, :]).mean(axis=1)
    length_scale = n * (np.log(-(b / k)) - k - 1)
    weights = 1 / np.exp(length_scale[None, :, :] - length_scale[:, None, :]).sum(axis=1)
    weights = np.where(weights >= 10 * np.finfo(float).eps, weights, 0.0)
    weights /= weights.sum(axis=0)
    b_post = (b * weights).sum(axis=0)
    k_post = np.log1p(-b_post[None, :] * tail).mean(axis=0)
    sigma = -k_post / b_post
    k_post = (n * k_post + PRIOR_K * 0.5) / (n + PRIOR_K)
    return k_post, sigma


def _gpinv(probabilities: np.ndarray, k: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Generalized Pareto quantiles, one column per ``(k, sigma)`` (NaN where ``sigma <= 0``)."""
    p = probabilities[:, None]
    small = np.abs(k) < np.finfo(float).eps
    safe_k = np.where(small, 1.0, k)
    x = np.where(small, -np.log1p(-p), np.expm1(-safe_k * np.log1p(-p)) / safe_k) * sigma
    return np.where(sigma > 0, x, np.nan)
