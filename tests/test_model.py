"""The PyMC graph of bayesmir.model: names, padding invariance, likelihood against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from mirna_sim import simulate_problem
from scipy import stats

from bayesmir.model import (
    build_model,
    model_data,
    pointwise_log_likelihood,
    posterior_predictive_draws,
)
from bayesmir.priors import Priors


@pytest.fixture(scope="module")
def problem():
    return simulate_problem(n_samples=6, n_isomirs=3, seed=3)


def _point(model, rng):
    """A random point of the model's value variables (transformed space)."""
    return {v.name: rng.normal(0, 0.5, size=model.initial_point()[v.name].shape) for v in model.value_vars}


def test_model_variables_follow_contract(problem):
    model = build_model(problem, Priors(), "nb")
    for name, dims in {
        "beta": ("coef",), "sd_isomir": ("re_term",), "corr_isomir": ("re_term", "re_term_bis"),
        "isomir_effect": ("isomir", "re_term"), "sample_effect": ("sample",),
    }.items():
        assert model.named_vars_to_dims[name] == dims
    assert {"sd_sample", "dispersion"} <= set(model.named_vars)
    assert model.coords["coef"] == tuple(problem.coef_names)
    reduced = build_model(problem, Priors(), "poisson", random_slope=False)
    assert "corr_isomir" not in reduced.named_vars and "dispersion" not in reduced.named_vars
    assert reduced.coords["re_term"] == ("Intercept",)


@pytest.mark.parametrize("family", ["nb", "poisson"])
def test_padding_adds_only_standard_normal_terms(problem, family):
    """Padded isomiRs must not touch the likelihood: log p(padded) - log p(unpadded) equals the
    N(0, 1) log densities of the padded isomiRs' free values (exact up to float error, 1e-8)."""
    rng = np.random.default_rng(0)
    plain = build_model(problem, family=family)
    padded = build_model(problem, family=family, n_isomirs=5)
    point = _point(plain, rng)
    padded_point = dict(point)
    extra_level = rng.normal(size=2)
    extra_slope = rng.normal(size=(2, 1))
    padded_point["isomir_level"] = np.concatenate([point["isomir_level"], extra_level])
    padded_point["isomir_slope_raw"] = np.concatenate([point["isomir_slope_raw"], extra_slope])
    difference = padded.compile_logp()(padded_point) - plain.compile_logp()(point)
    expected = stats.norm.logpdf(extra_level).sum() + stats.norm.logpdf(extra_slope).sum()
    assert difference == pytest.approx(expected, abs=1e-8)


def _function(model, outputs):
    """Compiled function of the value variables returning ``outputs``."""
    outputs = model.replace_rvs_by_values(outputs)
    return model.compile_fn(outputs, inputs=model.value_vars, on_unused_input="ignore")


def _posterior_from_model(model, point, problem):
    """Deterministics of ``model`` at ``point`` as a one-draw posterior Dataset."""
    names = ["beta", "sample_effect", "isomir_effect", "dispersion"]
    values = dict(zip(names, _function(model, [model[n] for n in names])(point)))
    dims = {"beta": ("coef",), "sample_effect": ("sample",), "isomir_effect": ("isomir", "re_term"),
            "dispersion": ()}
    return xr.Dataset(
        {n: (("chain", "draw", *dims[n]), np.asarray(values[n])[None, None]) for n in names},
        coords={"chain": [0], "draw": [0], "isomir": problem.sequences},
    ), values


def test_pointwise_log_likelihood_matches_scipy_and_model(problem):
    """Pointwise NB log-likelihood = scipy's nbinom.logpmf (independent code, 1e-9), and its sum =
    the model's likelihood potential (1e-8)."""
    model = build_model(problem, family="nb")
    point = _point(model, np.random.default_rng(1))
    posterior, values = _posterior_from_model(model, point, problem)
    loglik = pointwise_log_likelihood(posterior, problem, "nb").values[0, 0]
    log_mu = (problem.offset + problem.X @ values["beta"] + values["sample_effect"])[:, None] + (
        problem.Z @ values["isomir_effect"].T
    )
    theta = float(values["dispersion"])
    mu = np.exp(log_mu)
    reference = stats.nbinom.logpmf(problem.counts, theta, theta / (theta + mu))
    np.testing.assert_allclose(loglik, reference, rtol=1e-9, atol=1e-9)
    potential = _function(model, [model["log_likelihood"]])(point)[0]
    assert loglik.sum() == pytest.approx(float(potential), abs=1e-8)


def test_posterior_predictive_mean_matches_mu(problem):
    """Replicated NB counts average to mu: 4,000 draws at one parameter value, 5 SE tolerance."""
    model = build_model(problem, family="nb")
    posterior, values = _posterior_from_model(model, _point(model, np.random.default_rng(2)), problem)
    many = posterior.isel(draw=[0] * 4000).assign_coords(draw=np.arange(4000))
    replicated = posterior_predictive_draws(many, problem, "nb", seed=5).values[0]
    mu = np.exp(
        (problem.offset + problem.X @ values["beta"] + values["sample_effect"])[:, None]
        + problem.Z @ values["isomir_effect"].T
    )
    theta = float(values["dispersion"])
    se = np.sqrt((mu + mu**2 / theta) / 4000)
    assert np.all(np.abs(replicated.mean(axis=0) - mu) < 5 * se)


def test_model_data_pads_with_zero_mask(problem):
    data = model_data(problem, 8)
    assert data["counts"].shape == (6, 8) and data["mask"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert np.all(data["counts"][:, 3:] == 0)
    with pytest.raises(ValueError):
        model_data(problem, 2)
