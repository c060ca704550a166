"""Hyperparameters of the nested Laplace method: unconstrained coordinates and their log prior.

The nested Laplace method (:mod:`bayesmir.inference.laplace`) works on an
unconstrained vector ``psi`` of the model's variance parameters::

    psi = (log sd_isomir (q), atanh of the canonical partial correlations (q(q-1)/2),
           log sd_sample, [log theta])                     # log theta for NB only

and maps it to the engine's lme4-style vector ``hyper = (L entries, s, log theta)`` of
:mod:`bayesmir.marginal`, with ``L = diag(sd_isomir) W`` and ``W`` the Cholesky factor of
the correlation matrix built from the partial correlations (the LKJ "C-vine"
construction, as Stan and PyMC do).

The log prior is the one of :mod:`bayesmir.model` (so ``laplace`` and ``nuts`` target
the same posterior), written in ``psi`` with the log-Jacobian of every transform:

- ``sd ~ HalfNormal(scale)``: ``log p(log sd) = log HalfNormal(sd) + log sd``;
- LKJ(eta) correlation: the canonical partial correlation at column ``j`` (0-based) is
  ``Beta(b_j, b_j)`` on (-1, 1) with ``b_j = eta + (q - 2 - j) / 2`` (Lewandowski,
  Kurowicka & Joe 2009), plus ``log(1 - r^2)`` for ``r = tanh(z)``;
- ``1/sqrt(theta) ~ HalfNormal(scale)``: with ``a = exp(-log theta / 2)``,
  ``log p(log theta) = log HalfNormal(a) + log(a / 2)``;
- pooled priors (:class:`~bayesmir.priors.Priors`), when set, are normal in ``log theta``,
  ``log sd_isomir[0]`` and ``log sd_sample`` directly.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betaln

from bayesmir.priors import Priors

HALF_NORMAL_CONST = 0.5 * np.log(2.0 / np.pi)


def initial_psi(q: int, family: str) -> np.ndarray:
    """Starting point: sd_isomir (1, 0.3, ...), no correlation, sd_sample 0.2, theta 10."""
    sds = np.log(np.r_[1.0, np.full(q - 1, 0.3)])
    tail = [np.log(0.2)] + ([np.log(10.0)] if family == "nb" else [])
    return np.r_[sds, np.zeros(q * (q - 1) // 2), tail]


def correlation_cholesky(z, q: int):
    """Lower Cholesky factor ``W`` of a correlation matrix from unconstrained ``z``."""
    r = jnp.tanh(z)
    rows, cols = np.tril_indices(q, -1)
    W = jnp.zeros((q, q), z.dtype)
    for k, (i, j) in enumerate(zip(rows, cols)):
        remaining = 1.0 - jnp.sum(W[i, :j] ** 2)
        W = W.at[i, j].set(r[k] * jnp.sqrt(remaining))
    diagonal = [jnp.sqrt(jnp.maximum(1.0 - jnp.sum(W[i, :i] ** 2), 1e-300)) for i in range(q)]
    return W.at[np.arange(q), np.arange(q)].set(jnp.stack(diagonal))


@partial(jax.jit, static_argnums=1)
def _correlation_cholesky_rows(z, q: int):
    """:func:`correlation_cholesky` of each row of ``z`` (one compiled call, not one per operation)."""
    return jax.vmap(partial(correlation_cholesky, q=q))(z)


def split_psi(psi, q: int, family: str):
    """``(log sd_isomir (q,), z (q(q-1)/2,), log sd_sample, log theta or None)``."""
    k = q * (q - 1) // 2
    log_theta = psi[q + k + 1] if family == "nb" else None
    return psi[:q], psi[q:q + k], psi[q + k], log_theta


def to_hyper(psi, q: int, family: str):
    """The engine's vector ``(L entries (row-major lower triangle), s, log theta)``."""
    log_sd, z, log_sd_sample, log_theta = split_psi(psi, q, family)
    L = jnp.exp(log_sd)[:, None] * correlation_cholesky(z, q)
    rows, cols = np.tril_indices(q)
    log_theta = jnp.zeros(()) if log_theta is None else log_theta
    return jnp.concatenate([L[rows, cols], jnp.stack([jnp.exp(log_sd_sample), log_theta])])


def _log_half_normal_of_log(log_x, scale):
    """Log density of ``log x`` when ``x ~ HalfNormal(scale)``."""
    x = jnp.exp(log_x)
    return HALF_NORMAL_CONST - jnp.log(scale) - 0.5 * (x / scale) ** 2 + log_x


def log_prior(psi, q: int, family: str, priors: Priors):
    """Log prior density of ``psi`` (with Jacobians), normalised."""
    log_sd, z, log_sd_sample, log_theta = split_psi(psi, q, family)
    scales = jnp.asarray([priors.sd_isomir_scale] + [priors.sd_slope_scale] * (q - 1))
    half_normal = _log_half_normal_of_log(log_sd, scales)
    first = _pooled_or(log_sd[0], priors.pooled_log_sd_isomir_mean, priors.pooled_log_sd_isomir_sd,
                       half_normal[0])
    total = first + jnp.sum(half_normal[1:])
    total += _pooled_or(log_sd_sample, priors.pooled_log_sd_sample_mean, priors.pooled_log_sd_sample_sd,
                        _log_half_normal_of_log(log_sd_sample, priors.sd_sample_scale))
    _, cols = np.tril_indices(q, -1)
    b = priors.lkj_eta + (q - 2 - cols) / 2.0
    r = jnp.tanh(z)
    total += jnp.sum((b - 1.0) * jnp.log1p(-r**2) - (2 * b - 1) * np.log(2.0) - betaln(b, b) + jnp.log1p(-r**2))
    if log_theta is not None:
        log_a = -0.5 * log_theta
        default = _log_half_normal_of_log(log_a, priors.inv_sqrt_theta_scale) + np.log(0.5)
        total += _pooled_or(log_theta, priors.pooled_log_theta_mean, priors.pooled_log_theta_sd, default)
    return total


def _pooled_or(x, mean, sd, default):
    """``log N(x; mean, sd)`` where a pooled prior is set (mean not NaN), else ``default``."""
    safe_mean, safe_sd = jnp.nan_to_num(mean), jnp.where(jnp.isnan(sd), 1.0, sd)
    pooled = -0.5 * ((x - safe_mean) / safe_sd) ** 2 - jnp.log(safe_sd) - 0.5 * np.log(2 * np.pi)
    return jnp.where(jnp.isnan(mean), default, pooled)


def constrained(psi: np.ndarray, q: int, family: str) -> dict[str, np.ndarray]:
    """Model-scale values of draws ``psi`` (S, len(psi)): sd_isomir, corr_isomir, sd_sample, theta (NB size)."""
    psi = np.atleast_2d(psi)
    out = {"sd_isomir": np.exp(psi[:, :q]), "sd_sample": np.exp(psi[:, q + q * (q - 1) // 2])}
    if q >= 2:
        W = np.asarray(_correlation_cholesky_rows(jnp.asarray(psi[:, q:q + q * (q - 1) // 2]), q))
        out["corr_isomir"] = np.einsum("sik,sjk->sij", W, W)
    if family == "nb":
        out["theta"] = np.exp(psi[:, -1])
    return out
