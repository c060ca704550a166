"""The PyMC graph of bayesmir.model: names, padding invariance, likelihood against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from mirna_sim import simulate_problem
from scipy import special, stats

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
    assert {"sd_sample", "theta"} <= set(model.named_vars)
    assert model.coords["coef"] == tuple(problem.coef_names)
    reduced = build_model(problem, Priors(), "poisson", random_slope=False)
    assert "corr_isomir" not in reduced.named_vars and "theta" not in reduced.named_vars
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
    names = ["beta", "sample_effect", "isomir_effect", "theta"]
    values = dict(zip(names, _function(model, [model[n] for n in names])(point)))
    dims = {"beta": ("coef",), "sample_effect": ("sample",), "isomir_effect": ("isomir", "re_term"),
            "theta": ()}
    return xr.Dataset(
        {n: (("chain", "draw", *dims[n]), np.asarray(values[n])[None, None]) for n in names},
        coords={"chain": [0], "draw": [0], "isomir": problem.sequences},
    ), values


def test_pointwise_log_likelihood_matches_scipy_and_model(problem):
    """Pointwise NB log-likelihood = scipy's nbinom.logpmf (independent code, 1e-9), and its sum =
    the model's likelihood potential plus the data-only constant it leaves out, -sum log(y!) (1e-8)."""
    model = build_model(problem, family="nb")
    point = _point(model, np.random.default_rng(1))
    posterior, values = _posterior_from_model(model, point, problem)
    loglik = pointwise_log_likelihood(posterior, problem, "nb").values[0, 0]
    log_mu = (problem.offset + problem.X @ values["beta"] + values["sample_effect"])[:, None] + (
        problem.Z @ values["isomir_effect"].T
    )
    theta = float(values["theta"])
    mu = np.exp(log_mu)
    reference = stats.nbinom.logpmf(problem.counts, theta, theta / (theta + mu))
    np.testing.assert_allclose(loglik, reference, rtol=1e-9, atol=1e-9)
    potential = _function(model, [model["log_likelihood"]])(point)[0]
    constant = -special.gammaln(problem.counts + 1.0).sum()
    assert loglik.sum() == pytest.approx(float(potential) + constant, abs=1e-8)


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
    theta = float(values["theta"])
    se = np.sqrt((mu + mu**2 / theta) / 4000)
    assert np.all(np.abs(replicated.mean(axis=0) - mu) < 5 * se)


def test_model_data_pads_with_zero_mask(problem):
    data = model_data(problem, 8)
    assert data["counts"].shape == (6, 8) and data["mask"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert np.all(data["counts"][:, 3:] == 0)
    with pytest.raises(ValueError):
        model_data(problem, 2)



def _log_scale_model(problem, family):
    """The previous parameterisation, written out independently: ``sd_sample ~ HalfNormal``
    (log-transformed) and ``LKJCholeskyCov`` for the isomiR covariance; the reference for
    :func:`test_signed_scales_are_the_same_model`."""
    import pymc as pm
    import pytensor.tensor as pt

    priors = Priors()
    q = len(problem.re_names)
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, priors.coef_sd(problem.coef_names))
        sd_sample = pm.HalfNormal("sd_sample", priors.sd_sample_scale)
        sample_raw = pm.Normal("sample_raw", 0.0, 1.0, shape=problem.n_samples)
        scales = np.array([priors.sd_isomir_scale, priors.sd_slope_scale][:q])
        if q == 1:
            sd = pm.HalfNormal("sd_isomir", scales)
            chol = sd[None, :]
        else:
            chol, corr, sd = pm.LKJCholeskyCov(
                "chol_isomir", n=q, eta=priors.lkj_eta, sd_dist=pm.HalfNormal.dist(scales, shape=q),
                compute_corr=True,
            )
            pm.Deterministic("corr_isomir", corr)
        level = pm.Flat("isomir_level", shape=problem.n_isomirs)
        w0 = (level - beta[0]) / sd[0]
        pm.Potential("level_prior", pt.sum(pm.logp(pm.Normal.dist(0.0, 1.0), w0)) - problem.n_isomirs * pt.log(sd[0]))
        w = w0[:, None]
        if q == 2:
            w = pt.concatenate([w, pm.Normal("isomir_slope_raw", 0.0, 1.0, shape=(problem.n_isomirs, 1))], axis=1)
        b = pt.dot(w, chol.T)
        log_mu = (problem.offset + pt.dot(problem.X, beta) + sd_sample * sample_raw)[:, None] + pt.dot(problem.Z, b.T)
        if family == "nb":
            inv_sqrt = pm.HalfNormal("inv_sqrt_theta", priors.inv_sqrt_theta_scale)
            dist = pm.NegativeBinomial.dist(mu=pt.exp(log_mu), alpha=1.0 / inv_sqrt**2)
        else:
            dist = pm.Poisson.dist(mu=pt.exp(log_mu))
        pm.Potential("log_likelihood", pt.sum(pm.logp(dist, problem.counts)))
    return model


def _log_scale_point(point, beta, q):
    """The previous model's values (transformed space) at the same beta, tau, b as ``point``."""
    sign_sample = np.sign(point["sd_sample_signed"])
    old = {
        "beta": beta, "isomir_level": point["isomir_level"],
        "sd_sample_log__": np.log(np.abs(point["sd_sample_signed"])),
        "sample_raw": sign_sample * point["sample_raw"],
    }
    if "inv_sqrt_theta_log__" in point:
        old["inv_sqrt_theta_log__"] = point["inv_sqrt_theta_log__"]
    if q == 1:
        old["sd_isomir_log__"] = point["sd_isomir_log__"]
        return old, 0.0
    sd0 = np.exp(point["sd_isomir_intercept_log__"])
    rho = 2.0 / (1.0 + np.exp(-point["corr_isomir_unit_logodds__"])) - 1.0
    sign_slope, sd1 = np.sign(point["sd_slope_signed"]), np.abs(point["sd_slope_signed"])
    corr = sign_slope * rho
    old["chol_isomir_cholesky-cov-packed__"] = np.array(
        [np.log(sd0), sd1 * corr, np.log(sd1 * np.sqrt(1.0 - corr**2))]
    )
    old["isomir_slope_raw"] = sign_slope * point["isomir_slope_raw"]
    return old, corr


@pytest.mark.parametrize(("family", "random_slope"), [("nb", True), ("poisson", True), ("nb", False)])
def test_reparameterisations_are_the_same_model(problem, family, random_slope):
    """The sampled model is the plain one written out independently (:func:`_log_scale_model`:
    half-normal SDs, LKJCholeskyCov, beta ~ N(0, sd), levels ~ N(beta_0, sd_0), PyMC's own NB and
    Poisson). At 4 random points with either sign, mapped to the old values with the same beta,
    tau and b, the densities (without transform Jacobians) differ only by changes of variables:
    (sd0, sd1, corr) -> Cholesky factor, log sd1 - log(1 - corr^2) / 2; the intercept drawn given
    the levels, beta_0 = m + u / sqrt(P) with P = 1 / intercept_sd^2 + J / sd0^2, -log(P) / 2; and
    constants the same at every point (1e-6: PyMC evaluates its constants from gammaln, off by
    ~1e-8): sum log(y!) left out of the likelihood, -log 2 for the signed sd_sample, and for q = 2
    the LKJ normalising constants (Beta(2, 2) gives log 3/4 for eta = 2; PyMC 5.28's
    _lkj_normalizing_constant returns +log 4/3, a sign slip that only shifts log p). The reported
    sd_isomir and corr_isomir agree (1e-12)."""
    from pymc.distributions.multivariate import _lkj_normalizing_constant

    from bayesmir.problem import reduced_problem

    prob = problem if random_slope else reduced_problem(problem)
    q = len(prob.re_names)
    new = build_model(prob, family=family)
    old = _log_scale_model(prob, family)
    new_logp, old_logp = new.compile_logp(jacobian=False), old.compile_logp(jacobian=False)
    constant = special.gammaln(prob.counts + 1.0).sum() - np.log(2.0)
    if q == 2:
        eta = Priors().lkj_eta
        lkj_at_zero = stats.beta(eta, eta).logpdf(0.5) - np.log(2.0)  # log density of rho at 0
        constant += lkj_at_zero - float(_lkj_normalizing_constant(eta, 2).eval())
    beta_of = _function(new, [new["beta"], new["sd_isomir"]])
    rng = np.random.default_rng(4)
    for _ in range(4):
        point = _point(new, rng)
        point["sd_sample_signed"] = rng.choice([-1, 1]) * rng.uniform(0.05, 1.0)
        if q == 2:
            point["sd_slope_signed"] = rng.choice([-1, 1]) * rng.uniform(0.05, 1.0)
        beta, sd = beta_of(point)
        old_point, corr = _log_scale_point(point, beta, q)
        jacobian = np.log(abs(point["sd_slope_signed"])) - 0.5 * np.log(1 - corr**2) if q == 2 else 0.0
        jacobian -= 0.5 * np.log(1.0 / Priors().intercept_sd**2 + prob.n_isomirs / sd[0] ** 2)
        assert new_logp(point) - old_logp(old_point) == pytest.approx(constant + jacobian, abs=1e-6)
        if q == 2:
            reported = _function(new, [new["sd_isomir"], new["corr_isomir"]])(point)
            reference = _function(old, [old["chol_isomir_stds"], old["corr_isomir"]])(old_point)
            np.testing.assert_allclose(reported[0], reference[0], atol=1e-12)
            np.testing.assert_allclose(reported[1], reference[1], atol=1e-12)


@pytest.mark.parametrize("n_isomirs", [None, 5])
def test_centred_slopes_are_the_same_model(problem, n_isomirs):
    """Centred slopes with beta_k drawn given them (``slope_centred``) against the non-centred model.
    At a random point of the centred model, mapped to the non-centred values with the same beta and b
    (``w_j1 = (b_j1 - L10 w_j0) / L11``), the densities differ only by the change of variables
    ``(beta_k, w_1) -> (u, slope_level)``, whose log Jacobian is ``-log(P) / 2 - J log|L11|``,
    ``P = 1 / beta_sd^2 + J / L11^2`` (derived by hand: block-triangular after a Schur complement);
    padded isomiRs carry N(0, 1) on their free value in both (1e-9)."""
    centred = build_model(problem, n_isomirs=n_isomirs, slope_centred=True)
    plain = build_model(problem, n_isomirs=n_isomirs)
    rng = np.random.default_rng(5)
    J = problem.n_isomirs
    for _ in range(3):
        point = _point(centred, rng)
        beta, b, sd = _function(centred, [centred["beta"], centred["isomir_effect"], centred["sd_isomir"]])(point)
        slope = point["sd_slope_signed"]
        rho = 2.0 / (1.0 + np.exp(-point["corr_isomir_unit_logodds__"])) - 1.0
        l10, l11 = slope * rho, slope * np.sqrt(1.0 - rho**2)
        plain_point = {k: v for k, v in point.items() if k not in ("isomir_slope_level", "slope_raw")}
        raw = point["isomir_slope_level"].copy()[:, None]
        raw[:J, 0] = (b[:J, 1] - l10 * b[:J, 0] / sd[0]) / l11
        plain_point["isomir_slope_raw"] = raw
        plain_point["beta_rest"] = beta[1:]
        jacobian = -0.5 * np.log(1.0 / Priors().beta_sd**2 + J / l11**2) - J * np.log(abs(l11))
        difference = centred.compile_logp(jacobian=False)(point) - plain.compile_logp(jacobian=False)(plain_point)
        assert difference == pytest.approx(jacobian, abs=1e-9)
        same = _function(plain, [plain["beta"], plain["isomir_effect"]])(plain_point)
        np.testing.assert_allclose(same[0], beta, atol=1e-12)
        np.testing.assert_allclose(same[1][:J], b[:J], atol=1e-12)
