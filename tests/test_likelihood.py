"""The model's log-likelihood on posterior draws (bayesmir/likelihood.py) against scipy.stats.nbinom."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from mirna_sim import simulate_problem
from scipy import stats

from bayesmir.likelihood import pointwise_log_likelihood


@pytest.mark.parametrize("distinct_thetas", [3, 400])
def test_pointwise_log_likelihood_is_scipy_nbinom(distinct_thetas):
    """Every count under every draw, with draws sharing a few thetas (laplace's resampled design)
    or each its own (NUTS): equal to scipy's NB log pmf (mean mu, size theta) to 1e-9."""
    problem = simulate_problem(8, 5, seed=3)
    rng = np.random.default_rng(4)
    n, m, p = problem.n_samples, problem.n_isomirs, problem.X.shape[1]
    theta = rng.choice(rng.gamma(10.0, 1.0, distinct_thetas), size=(1, 400))
    posterior = xr.Dataset(
        {"beta": (("chain", "draw", "coef"), rng.normal(2.0, 0.2, (1, 400, p))),
         "sample_effect": (("chain", "draw", "sample"), rng.normal(0, 0.1, (1, 400, n))),
         "isomir_effect": (("chain", "draw", "isomir", "re_term"), rng.normal(0, 0.3, (1, 400, m, 2))),
         "theta": (("chain", "draw"), theta)},
        coords={"coef": problem.coef_names, "re_term": problem.re_names, "isomir": problem.sequences,
                "sample": problem.samples},
    )
    values = pointwise_log_likelihood(posterior, problem).values
    post = {name: posterior[name].values for name in posterior.data_vars}
    log_mu = (problem.offset + np.einsum("np,cdp->cdn", problem.X, post["beta"]) + post["sample_effect"])[..., None]
    log_mu = log_mu + np.einsum("nq,cdjq->cdnj", problem.Z, post["isomir_effect"])
    size = theta[..., None, None]
    expected = stats.nbinom.logpmf(problem.counts, size, size / (size + np.exp(log_mu)))
    np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-9)
