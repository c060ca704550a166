"""The model's likelihood evaluated on posterior draws, in numpy (no PyMC, no compile).

``log mu`` per draw (:func:`linear_predictor`), the log-likelihood of every count under every
draw for PSIS-LOO (:func:`pointwise_log_likelihood`) and replicated counts for
posterior-predictive checks (:func:`posterior_predictive_draws`), for the model of
:mod:`bayesmir.model`. Kept apart from the PyMC graph so that the tables and the report do
not import PyMC (about 2 s).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import special

from bayesmir.problem import MirnaProblem


def linear_predictor(posterior: xr.Dataset, problem: MirnaProblem) -> np.ndarray:
    """``log mu`` per draw, shape (chain, draw, sample, isomir), from posterior draws."""
    beta = posterior["beta"].transpose("chain", "draw", "coef").values
    tau = posterior["sample_effect"].transpose("chain", "draw", "sample").values
    b = posterior["isomir_effect"].transpose("chain", "draw", "isomir", "re_term").values
    fixed = np.einsum("np,cdp->cdn", problem.X, beta) + tau + np.asarray(problem.offset)
    log_mu = np.matmul(np.asarray(problem.Z, dtype=float), np.swapaxes(b, -1, -2))  # (chain, draw, sample, isomir)
    log_mu += fixed[..., None]
    return log_mu


def pointwise_log_likelihood(
    posterior: xr.Dataset, problem: MirnaProblem, family: str = "nb"
) -> xr.DataArray:
    """Log-likelihood of every observation under every draw (for PSIS-LOO).

    Parameters
    ----------
    posterior : xarray.Dataset
        Posterior with the contract variables (no padding).
    problem : MirnaProblem
    family : {"nb", "poisson"}

    Returns
    -------
    xarray.DataArray
        Named ``count``, dims (chain, draw, sample, isomir).
    """
    log_mu = linear_predictor(posterior, problem)
    y = problem.counts.astype(float)
    if family == "nb":
        theta = posterior["theta"].values[..., None, None]
        log_theta = np.log(theta)
        # theta (log theta - log(theta + mu)) + y (log mu - log(theta + mu)), in place: the arrays are
        # draws x counts (25 million doubles for 4,000 draws of a miRNA with 1,000 isomiRs)
        log_theta_mu = np.logaddexp(log_theta, log_mu)
        values = np.subtract(log_mu, log_theta_mu)
        values *= y
        np.subtract(log_theta, log_theta_mu, out=log_theta_mu)
        log_theta_mu *= theta
        values += log_theta_mu
        values += _log_gamma_terms(posterior["theta"].values, y)
    else:
        values = y * log_mu - np.exp(log_mu) - special.gammaln(y + 1)
    return xr.DataArray(
        values,
        dims=("chain", "draw", "sample", "isomir"),
        coords={
            "chain": posterior["chain"].values, "draw": posterior["draw"].values,
            "sample": list(problem.samples), "isomir": list(problem.sequences),
        },
        name="count",
    )


def _log_gamma_terms(theta: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``gammaln(y + theta) - gammaln(theta) - gammaln(y + 1)`` per draw (theta's shape + y's shape).

    The laplace draws resample a fixed design, so ``theta`` takes a few hundred distinct values
    over thousands of draws: the log-gamma functions (most of the cost of the ELPD of a miRNA with
    many isomiRs) are evaluated once per distinct value, the same numbers.
    """
    distinct, inverse = np.unique(theta, return_inverse=True)
    if 2 * distinct.size > theta.size:  # e.g. NUTS draws: nothing to share
        theta = theta[..., None, None]
        return special.gammaln(y + theta) - special.gammaln(theta) - special.gammaln(y + 1)
    per_value = special.gammaln(y + distinct[:, None, None]) - special.gammaln(distinct)[:, None, None]
    per_value -= special.gammaln(y + 1)
    return per_value[inverse.reshape(theta.shape)]


def posterior_predictive_draws(
    posterior: xr.Dataset, problem: MirnaProblem, family: str = "nb", seed: int = 0
) -> xr.DataArray:
    """Replicated counts, one per posterior draw (numpy; no model compile)."""
    rng = np.random.default_rng(seed)
    mu = np.exp(linear_predictor(posterior, problem))
    if family == "nb":
        theta = posterior["theta"].values[..., None, None]
        values = rng.poisson(rng.gamma(theta, mu / theta))
    else:
        values = rng.poisson(mu)
    return xr.DataArray(
        values.astype(np.int64),
        dims=("chain", "draw", "sample", "isomir"),
        coords={
            "chain": posterior["chain"].values, "draw": posterior["draw"].values,
            "sample": list(problem.samples), "isomir": list(problem.sequences),
        },
        name="count",
    )
