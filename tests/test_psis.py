"""Vectorised PSIS-LOO against ArviZ's az.loo (the reference implementation), observation by observation."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr

from bayesmir.psis import loo_pointwise
from bayesmir.table_rows import pointwise_elpd


def arviz_loo_i(loglik: np.ndarray) -> np.ndarray:
    """``az.loo(...).loo_i`` of ``loglik`` (chain, draw, observation)."""
    idata = az.InferenceData(posterior=xr.Dataset({"mu": (("chain", "draw"), loglik[..., 0])}),
                             log_likelihood=xr.Dataset({"y": (("chain", "draw", "obs"), loglik)}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo(idata, pointwise=True).loo_i.values


def awkward_loglik(rng, n_draws: int, n_obs: int) -> np.ndarray:
    """Heavy tails of varied weight, a constant column, ties at the top and a rounded column."""
    loglik = rng.normal(-3, 1, (n_draws, n_obs)) + rng.standard_t(2, (n_draws, n_obs)) * rng.uniform(0, 3, n_obs)
    loglik[:, 0] = -2.0
    loglik[:5, 1] = loglik[:, 1].min() - 1.0
    loglik[:, 2] = np.round(loglik[:, 2])
    return loglik


@pytest.mark.parametrize(("n_draws", "n_obs"), [(1000, 400), (400, 60), (20, 10)])
def test_pointwise_elpd_equals_arviz(n_draws, n_obs):
    loglik = awkward_loglik(np.random.default_rng(n_draws), n_draws, n_obs)
    np.testing.assert_allclose(loo_pointwise(loglik), arviz_loo_i(loglik[None]), rtol=1e-12, atol=1e-12)


def test_several_chains_use_arviz_relative_efficiency():
    """With 4 chains az.loo smooths with reff = mean ESS / draws (not 1); so does pointwise_elpd."""
    rng = np.random.default_rng(1)
    loglik = awkward_loglik(rng, 4 * 300, 50).reshape(4, 300, 50)
    idata = az.InferenceData(
        posterior=xr.Dataset({"mu": (("chain", "draw"), np.cumsum(rng.normal(size=(4, 300)), axis=1))}),
        log_likelihood=xr.Dataset({"count": (("chain", "draw", "sample", "isomir"), loglik.reshape(4, 300, 10, 5))}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = az.loo(idata, pointwise=True).loo_i.values.ravel()
    np.testing.assert_allclose(pointwise_elpd(idata), expected, rtol=1e-12, atol=1e-12)
    assert not np.allclose(loo_pointwise(loglik.reshape(1200, 50)), expected, rtol=1e-6)  # reff matters here
