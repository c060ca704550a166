"""Empirical-Bayes shrinkage of the fitted mixtures (bayesmir.shrinkage): Gaussian algebra checked by
invariants, the learned priors against simulated truth, the slope reweighting against quadrature."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy import integrate, stats

from bayesmir.inference import diagnostics_row
from bayesmir.mixture import EB_GROUP, MIXTURE_GROUP, GaussianMixture
from bayesmir.priors import Priors
from bayesmir.results import FitResult
from bayesmir.shrinkage import (
    MIN_MIRNAS,
    NULL_PENALTY,
    beta_likelihood,
    kish_ess,
    log_marginal_by_component,
    mixture_proportions,
    posterior_components,
    reweight,
    scale_grid,
    shrink,
    slope_log_ratio,
)

COEFS = ["Intercept", "group[T.b]"]
PRIOR_SD = Priors().beta_sd


def conjugate_posterior(b, v, prior_sd=PRIOR_SD):
    """Posterior mean and SD of beta under N(0, prior_sd^2) given b ~ N(beta, v)."""
    precision = 1 / v + 1 / prior_sd**2
    return b / v / precision, np.sqrt(1 / precision)


def fake_fit(b: float, v: float, slope_sds=(0.3,), weights=None) -> az.InferenceData:
    """A nested-Laplace-like fit: at each design point beta's posterior under N(0, 2.5^2) given b ~ N(beta, v)."""
    slope_sds = np.asarray(slope_sds, dtype=float)
    k = slope_sds.size
    weights = np.full(k, 1 / k) if weights is None else np.asarray(weights, dtype=float)
    mean, sd = conjugate_posterior(np.full(k, b), np.full(k, v))
    psi = np.c_[np.zeros(k), np.log(slope_sds), np.zeros(k), np.zeros(k), np.zeros(k)]
    mixture = xr.Dataset(
        {"weight": (("point",), weights),
         "beta_mean": (("point", "coef"), np.c_[np.ones(k), mean]),
         "beta_sd": (("point", "coef"), np.c_[np.ones(k), sd]),
         "psi": (("point", "psi_dim"), psi)},
        coords={"point": np.arange(k), "coef": COEFS})
    posterior = xr.Dataset({"beta": (("chain", "draw", "coef"), np.zeros((1, 4, 2))),
                            "sd_isomir": (("chain", "draw", "re_term"), np.ones((1, 4, 2))),
                            "theta": (("chain", "draw"), np.ones((1, 4)))},
                           coords={"coef": COEFS, "re_term": ["Intercept", "group[T.b]"]})
    posterior.attrs["log_marginal_likelihood"] = 0.0
    idata = az.InferenceData(posterior=posterior)
    idata.add_groups({MIXTURE_GROUP: mixture}, warn_on_custom_groups=False)
    return idata


def null_and_effects(n: int, seed: int, null_fraction=0.7, effect_sd=1.0, v=0.09):
    rng = np.random.default_rng(seed)
    beta = np.where(rng.random(n) < null_fraction, 0.0, rng.normal(0, effect_sd, n))
    return beta, beta + rng.normal(0, math.sqrt(v), n)


def test_dividing_out_the_prior_recovers_the_likelihood():
    b, v = np.array([0.7, -2.0, 0.0]), np.array([0.04, 1.0, 9.0])
    mean, sd = conjugate_posterior(b, v)
    got_b, got_v = beta_likelihood(mean, sd, PRIOR_SD)
    assert got_b == pytest.approx(b, rel=1e-10)
    assert got_v == pytest.approx(v, rel=1e-10)


def test_a_single_component_at_the_fit_prior_gives_back_the_fit():
    rng = np.random.default_rng(0)
    b, v = rng.normal(0, 1, 6), rng.uniform(0.05, 1, 6)
    weights = rng.dirichlet(np.ones(6))
    mean, sd = conjugate_posterior(b, v)
    got_w, got_m, got_s = posterior_components(weights, b, v, PRIOR_SD, np.array([PRIOR_SD]), np.ones(1))
    assert got_w == pytest.approx(weights, rel=1e-10)
    assert got_m == pytest.approx(mean, rel=1e-10)
    assert got_s == pytest.approx(sd, rel=1e-10)
    assert log_marginal_by_component(weights, b, v, PRIOR_SD, np.array([PRIOR_SD])) == pytest.approx([0.0], abs=1e-12)


def test_learned_prior_recovers_the_null_fraction_and_covers():
    # 70% exact nulls, 30% N(0, 1) effects, estimates with SE 0.3: ashr's setting with known truth.
    beta, b = null_and_effects(3000, seed=1)
    v = np.full(b.size, 0.09)
    weights = {i: np.ones(1) for i in range(b.size)}

    def proportions(grid, penalty):
        log_marginals = np.array([log_marginal_by_component(np.ones(1), b[i:i + 1], v[i:i + 1], PRIOR_SD, grid)
                                  for i in range(b.size)])
        return mixture_proportions(log_marginals, penalty)

    # On a fine grid (from 0.003), without penalty, g's mass within +-0.1: truth 0.7 + 0.3 P(|N(0, 1)| < 0.1)
    # = 0.724 (sigma << SE 0.3 are alike, so the split among small components is not identified, their total is)
    fine = 0.003 * np.sqrt(2.0) ** np.arange(18)
    near_zero = proportions(fine, 1.0) @ (2 * stats.norm.cdf(0.1 / fine) - 1)
    assert near_zero == pytest.approx(0.724, abs=0.06)
    # the default grid and penalty: intervals cover at the nominal rate
    grid = scale_grid([(b[i:i + 1], v[i:i + 1]) for i in range(b.size)], weights, list(range(b.size)))
    pi = proportions(grid, NULL_PENALTY)
    covered, null_means = [], []
    for i in range(0, b.size, 10):
        mixture = GaussianMixture.of(*posterior_components(np.ones(1), b[i:i + 1], v[i:i + 1], PRIOR_SD, grid, pi))
        low, high = mixture.eti(0.95)
        covered.append(low <= beta[i] <= high)
        if beta[i] == 0:
            null_means.append(abs(mixture.mean()))
    assert np.mean(covered) == pytest.approx(0.95, abs=0.035)  # 300 intervals: binomial SE 0.013
    assert np.mean(null_means) < 0.5 * np.mean(np.abs(b[beta == 0]))  # nulls shrink towards 0


def test_null_penalty_biases_towards_the_smallest_component():
    _beta, b = null_and_effects(200, seed=2)
    v = np.full(b.size, 0.09)
    grid = np.array([0.01, 0.1, 1.0])
    log_marginals = np.array([log_marginal_by_component(np.ones(1), b[i:i + 1], v[i:i + 1], PRIOR_SD, grid)
                              for i in range(b.size)])
    assert mixture_proportions(log_marginals, 10.0)[0] > mixture_proportions(log_marginals, 1.0)[0]
    assert mixture_proportions(log_marginals, 1.0).sum() == pytest.approx(1.0)


def test_slope_reweighting_shift_is_the_log_evidence_ratio():
    # One miRNA: an estimate ~ N(sd, 0.2^2) of its slope SD; the posterior on a fine grid under
    # HalfNormal(1). Reweighting to HalfNormal(0.3) must move the log evidence by log Z(0.3) / Z(1)
    # (quadrature) and give the posterior under the new prior.
    grid = np.linspace(1e-4, 5.0, 4000)
    likelihood = stats.norm.pdf(0.25, grid, 0.2)
    weights = stats.halfnorm.pdf(grid, scale=1.0) * likelihood
    weights /= weights.sum()
    new, shift = reweight(weights, slope_log_ratio(grid[:, None], 1.0, 0.3))

    def evidence(scale):
        return integrate.quad(lambda s: stats.halfnorm.pdf(s, scale=scale) * stats.norm.pdf(0.25, s, 0.2), 0, 8)[0]

    assert shift == pytest.approx(math.log(evidence(0.3) / evidence(1.0)), abs=1e-3)  # grid step 1.25e-3
    direct = stats.halfnorm.pdf(grid, scale=0.3) * likelihood
    assert new == pytest.approx(direct / direct.sum(), abs=1e-12)
    assert 1.0 < kish_ess(new) < grid.size


def fake_run(n: int, seed: int, slope_sd=0.3):
    """Fake fits: beta as in :func:`null_and_effects`; slope SDs |N(0, slope_sd^2)| each seen with
    error 0.1, the posterior on 60 design points under the default HalfNormal(1)."""
    beta, b = null_and_effects(n, seed)
    rng = np.random.default_rng(seed + 100)
    observed = np.abs(rng.normal(0, slope_sd, n)) + rng.normal(0, 0.1, n)
    points = np.linspace(0.02, 2.0, 60)
    posteriors = {}
    for i in range(n):
        weights = stats.halfnorm.pdf(points, scale=1.0) * stats.norm.pdf(observed[i], points, 0.1)
        posteriors[f"m{i}"] = fake_fit(b[i], 0.09, points, weights / weights.sum())
    return beta, posteriors


def test_shrink_narrows_the_slope_prior_and_keeps_the_bayes_factor_consistent():
    _, posteriors = fake_run(60, seed=3)
    shrunk, note = shrink(posteriors, set(posteriors), Priors(), ["group[T.b]"])
    assert "slope prior: HalfNormal(" in note
    scale = float(note.split("HalfNormal(")[1].split(")")[0])
    group = shrunk["m0"][EB_GROUP]
    weight = group["weight"].sel(coef="group[T.b]").values
    assert weight.sum() == pytest.approx(1.0)
    assert group["weight"].sel(coef="Intercept").values.sum() == pytest.approx(1.0)
    # the evidence shift is log E[prior ratio] under the first posterior (the marginal-likelihood ratio)
    assert 0.15 < scale < 0.5  # the slope SDs' population scale is 0.3
    first = posteriors["m0"][MIXTURE_GROUP]
    sds = np.linspace(0.02, 2.0, 60)[:, None]  # fake_run's design
    expected = np.log(np.sum(first["weight"].values * np.exp(slope_log_ratio(sds, 1.0, scale))))
    assert group.attrs["log_marginal_likelihood_shift"] == pytest.approx(expected, abs=0.01)  # scale rounded
    again, _ = shrink(shrunk, set(shrunk), Priors(), ["group[T.b]"])
    xr.testing.assert_allclose(again["m0"][EB_GROUP], group)  # idempotent


def test_shrink_learns_the_sample_sd_scale_from_known_truth():
    # sd_sample of each miRNA |N(0, 0.3^2)|, seen with error 0.1; its posterior on 60 design points
    # under the default HalfNormal(1) (slope SD fixed, so the slope prior moves nothing): the pooled
    # half-normal scale must come out near 0.3, and off (sample_prior=False) the note says nothing.
    rng = np.random.default_rng(6)
    n, points = 100, np.linspace(0.02, 2.0, 60)
    observed = np.abs(rng.normal(0, 0.3, n)) + rng.normal(0, 0.1, n)
    _beta, b = null_and_effects(n, seed=6)
    posteriors = {}
    for i in range(n):
        weights = stats.halfnorm.pdf(points, scale=1.0) * stats.norm.pdf(observed[i], points, 0.1)
        idata = fake_fit(b[i], 0.09, np.full(points.size, 0.3), weights / weights.sum())
        idata[MIXTURE_GROUP]["psi"].values[:, 3] = np.log(points)
        posteriors[f"m{i}"] = idata
    shrunk, note = shrink(posteriors, set(posteriors), Priors(), ["group[T.b]"])
    scale = float(note.split("sample prior: HalfNormal(")[1].split(")")[0])
    assert 0.2 < scale < 0.45
    # the sample prior (in the reduced model too) leaves the log evidence: the shift is the slope prior's
    # alone, one constant here (every point has slope SD 0.3)
    slope_scale = float(note.split("slope prior: HalfNormal(")[1].split(")")[0])
    slope_shift = slope_log_ratio(np.array([[0.3]]), 1.0, slope_scale)[0]
    assert shrunk["m0"][EB_GROUP].attrs["log_marginal_likelihood_shift"] == pytest.approx(slope_shift, abs=0.01)
    # and the weights moved towards small sd_sample: the posterior mean of sd_sample fell
    first = posteriors["m0"][MIXTURE_GROUP]["weight"].values
    moved = shrunk["m0"][EB_GROUP]["weight"].sel(coef="Intercept").values.reshape(points.size, -1).sum(axis=1)
    assert moved @ points < first @ points
    _, off = shrink(posteriors, set(posteriors), Priors(), ["group[T.b]"], sample_prior=False)
    assert "sample prior" not in off


def test_few_mirnas_keep_the_default_priors_and_say_so():
    _, posteriors = fake_run(MIN_MIRNAS - 1, seed=4)
    shrunk, note = shrink(posteriors, set(posteriors), Priors(), ["group[T.b]"])
    assert shrunk == posteriors
    assert note.startswith("shrinkage off")


def test_fit_result_tables_use_the_shrunk_mixture():
    beta, posteriors = fake_run(80, seed=5)
    rows = [diagnostics_row(name, "laplace", converged=True) for name in posteriors]
    options = {"priors": Priors().to_dict()}
    plain = FitResult(posteriors, rows, options=options).mirna_table()
    shrunk_fit = FitResult(posteriors, rows, options={**options, "shrinkage": True})
    shrunk = shrunk_fit.mirna_table()
    assert "group[T.b]" in shrunk_fit.options["shrinkage_note"]
    null = beta == 0
    assert np.mean(np.abs(shrunk["estimate"][null])) < 0.6 * np.mean(np.abs(plain["estimate"][null]))
    assert np.median(shrunk["sd"][null]) < 0.8 * np.median(plain["sd"][null])
