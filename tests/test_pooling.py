"""Empirical-Bayes priors from a first pass (bayesmir.pooling), on fake first passes with known truth."""

from __future__ import annotations

import math
from types import SimpleNamespace

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from bayesmir.errors import InputError
from bayesmir.mixture import MIXTURE_GROUP
from bayesmir.pooling import MIN_SLOPE_SCALE, pooled_priors, pooled_slope_scale
from bayesmir.priors import Priors

GRID = np.linspace(1e-4, 4.0, 400)  # slope-SD design of the fake posteriors


def grid_posterior(observed: float, se: float, first_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Weights and slope SDs (K, 1) of the posterior of ``sd`` under ``HalfNormal(first_scale)``
    when an estimate ``observed ~ N(sd, se^2)`` is the data (a stand-in for one miRNA's fit)."""
    weights = stats.halfnorm.pdf(GRID, scale=first_scale) * stats.norm.pdf(observed, GRID, se)
    return weights / weights.sum(), GRID[:, None]


def fake_idata(rng, theta: float, sd_isomir: float, sd_sample: float, points) -> az.InferenceData:
    """A first-pass fit: draws around the given values and a ``mixture`` group of slope SDs ``points``."""
    weights, sds = points

    def draws(value):
        return value * np.exp(0.05 * rng.standard_normal((1, 50)))

    posterior = xr.Dataset({
        "theta": (("chain", "draw"), draws(theta)),
        "sd_sample": (("chain", "draw"), draws(sd_sample)),
        "sd_isomir": (("chain", "draw", "re_term"),
                      np.stack([draws(sd_isomir), rng.uniform(0, 3, (1, 50))], axis=-1)),
    })
    # psi = (log sd_isomir, log sd_slope, atanh corr, log sd_sample, log theta) at each design point
    k = len(weights)
    psi = np.c_[np.full(k, np.log(sd_isomir)), np.log(sds[:, 0]), np.zeros(k), np.full(k, np.log(sd_sample)),
                np.full(k, np.log(theta))]
    mixture = xr.Dataset({"weight": (("point",), weights), "psi": (("point", "psi_dim"), psi)})
    return az.InferenceData(posterior=posterior, **{MIXTURE_GROUP: mixture})


def fake_first_pass(rng, n: int, slope_points, converged=None):
    names = [f"m{i}" for i in range(n)]
    thetas = np.exp(rng.normal(np.log(10.0), 0.3, n))
    posteriors = {name: fake_idata(rng, thetas[i], 2.0, 0.2, slope_points[i]) for i, name in enumerate(names)}
    converged = np.ones(n, dtype=bool) if converged is None else converged
    return SimpleNamespace(posteriors=posteriors, diagnostics=pd.DataFrame({"miRNA": names, "converged": converged}))


def test_exact_slope_sds_give_the_half_normal_mle():
    # Posteriors concentrated on the true SDs: the marginal MLE is the half-normal MLE sqrt(mean sd^2).
    rng = np.random.default_rng(1)
    sds = np.abs(rng.normal(0, 0.3, 300))
    points = [(np.ones(1), np.array([[sd]])) for sd in sds]
    expected = math.sqrt(np.mean(sds**2))
    assert pooled_slope_scale(points, 1.0) == pytest.approx(expected, rel=1e-3)  # optimizer xatol 1e-4 in log
    assert expected == pytest.approx(0.3, rel=0.15)  # the truth, within sampling error (SE ~ 0.3/sqrt(600))


def test_noisy_posteriors_match_the_closed_form_marginal_likelihood():
    # Independent reference: observed = |N(0, s^2)| + N(0, se^2) is skew-normal (shape s/se, scale
    # sqrt(s^2 + se^2)), so the marginal likelihood of s is closed-form; maximised on a fine grid.
    rng = np.random.default_rng(2)
    se = 0.2
    truth = np.abs(rng.normal(0, 0.4, 200))
    observed = truth + rng.normal(0, se, truth.size)
    estimate = pooled_slope_scale([grid_posterior(o, se) for o in observed], 1.0)
    scales = np.linspace(0.2, 0.7, 501)
    log_marginal = [stats.skewnorm.logpdf(observed, s / se, scale=math.hypot(s, se)).sum() for s in scales]
    reference = scales[np.argmax(log_marginal)]
    assert estimate == pytest.approx(reference, abs=0.005)  # the fake posteriors' SD grid has step 0.01
    assert estimate == pytest.approx(0.4, abs=0.1)  # truth; SE of the estimate ~ 0.04 at se 0.2


def test_no_slopes_floor_and_wide_slopes_keep_the_first_scale():
    rng = np.random.default_rng(3)
    flat = [grid_posterior(o, 0.3) for o in np.abs(rng.normal(0, 0.01, 100))]
    assert pooled_slope_scale(flat, 1.0) == pytest.approx(MIN_SLOPE_SCALE, rel=1e-3)
    wide = [(np.ones(1), np.array([[sd]])) for sd in np.abs(rng.normal(0, 3.0, 100))]
    assert pooled_slope_scale(wide, 1.0) == pytest.approx(1.0, rel=1e-3)  # pooling only narrows


def test_pooled_priors_from_a_fake_first_pass():
    rng = np.random.default_rng(4)
    n = 60
    slope_points = [(np.ones(1), np.array([[sd]])) for sd in np.abs(rng.normal(0, 0.3, n))]
    converged = np.ones(n, dtype=bool)
    converged[:3] = False
    slope_points[:3] = [(np.ones(1), np.array([[50.0]]))] * 3  # unconverged and absurd: must be ignored
    first = fake_first_pass(rng, n, slope_points, converged)
    priors = pooled_priors(first, Priors())
    sds = np.array([p[1][0, 0] for p in slope_points[3:]])
    assert priors.sd_slope_scale == pytest.approx(math.sqrt(np.mean(sds**2)), rel=1e-3)
    assert priors.pooled_log_theta_mean == pytest.approx(np.log(10.0), abs=0.1)  # 57 draws of N(log 10, 0.3)
    assert priors.pooled_log_sd_isomir_mean == pytest.approx(np.log(2.0), abs=0.02)  # draws 5% around 2
    assert priors.sd_isomir_scale == Priors().sd_isomir_scale
    assert pooled_priors(first, Priors(), slope_scale=False).sd_slope_scale == Priors().sd_slope_scale


def test_slope_scale_comes_from_the_design_not_the_draws():
    # The draws of sd_slope are uniform noise here; the mixture design alone must decide (seed-free).
    first = fake_first_pass(np.random.default_rng(5), 20, [(np.ones(1), np.array([[0.25]]))] * 20)
    again = fake_first_pass(np.random.default_rng(6), 20, [(np.ones(1), np.array([[0.25]]))] * 20)
    assert pooled_priors(first, Priors()).sd_slope_scale == pytest.approx(0.25, rel=1e-3)
    assert pooled_priors(again, Priors()).sd_slope_scale == pooled_priors(first, Priors()).sd_slope_scale


def test_overflowing_design_points_are_dropped():
    first = fake_first_pass(np.random.default_rng(8), 10, [(np.array([0.5, 0.5]), np.array([[0.3], [np.inf]]))] * 10)
    assert pooled_priors(first, Priors()).sd_slope_scale == pytest.approx(0.3, rel=1e-3)


def test_too_few_converged_is_an_input_error():
    rng = np.random.default_rng(7)
    converged = np.array([True] * 4 + [False] * 6)
    first = fake_first_pass(rng, 10, [(np.ones(1), np.array([[0.2]]))] * 10, converged)
    with pytest.raises(InputError, match="pooling needs at least"):
        pooled_priors(first, Priors())
