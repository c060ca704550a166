"""Invariants of the marginal-Laplace engine (bayesmir/marginal.py).

Checks against quantities computed independently of the engine: the Poisson GLM
log-likelihood (the limit of vanishing random effects), finite differences with
re-solved modes (the implicit-function gradient), a dense Hessian inverse (the
block-structured sampler) and brute-force quadrature over beta (the latent_beta
Laplace integral).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from anchor_problems import se_example_problems
from scipy import special
from scipy.special import logsumexp

from bayesmir import marginal


@pytest.fixture(autouse=True)
def _in_x64():
    """The tests build their own JAX arrays and finite differences: 64-bit, as bayesmir's entry
    points compute (bayesmir no longer switches the whole process to 64-bit)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def problem(test_data_dir):
    """miR-19b-3p of the miRglmm example: 6 samples, 5 isomiRs."""
    return se_example_problems(test_data_dir)["hsa-miR-19b-3p"]


PARAMS = np.array([2.9, 0.3, 2.6, 0.2, 0.5, 0.2, np.log(11.0)])  # beta, L entries, s, log theta


def _value(params, data, family="nb"):
    z0 = marginal.initial_latent(data, False)
    return marginal.value_and_grad(jnp.asarray(params), data, z0, family)


def test_padding_does_not_change_objective(problem):
    """Padded isomiRs are masked out: value and gradient equal to 1e-10 across pad sizes.

    Masked columns add exact zeros; only the order of floating-point sums changes with the
    array size (rounding ~1e-13 of a value ~1e3), hence 1e-10 / 1e-9.
    """
    results = [_value(PARAMS, marginal.pack_problem(problem, pad_to=size)) for size in (5, 16, 64)]
    for value, grad, _, converged in results[1:]:
        assert bool(converged)
        assert abs(float(value) - float(results[0][0])) < 1e-10
        np.testing.assert_allclose(np.asarray(grad), np.asarray(results[0][1]), rtol=0, atol=1e-9)


def test_poisson_tiny_variance_is_glm_loglik(problem):
    """Random-effect SDs of 1e-9: the Laplace marginal equals the Poisson GLM log-likelihood.

    The GLM log-likelihood is computed with scipy here, not with the engine; the
    residual difference is about sd^2 |score|^2 / 2 < 1e-7 (scores here are < 1e5).
    """
    beta = np.array([2.5, 0.4])
    params = np.r_[beta, 1e-9, 0.0, 1e-9, 1e-9, 0.0]
    value, *_ = _value(params, marginal.pack_problem(problem), family="poisson")
    eta = problem.offset[:, None] + (problem.X @ beta)[:, None]
    y = problem.counts
    glm = np.sum(y * eta - np.exp(eta) - special.gammaln(y + 1))
    assert abs(float(value) - glm) < 1e-6  # float64 rounding of a 1e5 sum ~1e-10


@pytest.mark.parametrize("latent_beta", [False, True])
def test_gradient_matches_finite_differences(problem, latent_beta):
    """One Newton step from the stop-gradient mode gives the exact gradient.

    Central differences (h = 1e-5) of the value with the mode re-solved at every point;
    agreement to 1e-4 relative (finite-difference error ~h^2 times third derivatives).
    """
    data = marginal.pack_problem(problem, prior_sd=3.0)
    params = PARAMS[2:] if latent_beta else PARAMS
    z0 = marginal.initial_latent(data, latent_beta)
    _, grad, *_ = marginal.value_and_grad(jnp.asarray(params), data, z0, "nb", latent_beta)
    numeric = []
    for index in range(len(params)):
        step = np.zeros(len(params))
        step[index] = 1e-5
        values = [float(marginal.value_and_grad(jnp.asarray(params + sign * step), data, z0, "nb",
                                                latent_beta)[0]) for sign in (1, -1)]
        numeric.append((values[0] - values[1]) / 2e-5)
    np.testing.assert_allclose(np.asarray(grad), numeric, rtol=1e-4, atol=1e-4)


def test_hessian_matches_finite_differences_of_gradient(problem):
    """marginal.hessian (two Newton steps) equals central differences of the exact gradient.

    latent_beta mode; h = 1e-4, modes re-solved at each point; 1e-4 relative agreement
    (one Newton step would be off by ~70% here).
    """
    data = marginal.pack_problem(problem, prior_sd=3.0)
    hyper = jnp.asarray(PARAMS[2:])
    mode, _ = marginal.find_mode(hyper, data, marginal.initial_latent(data, True), "nb", True)
    exact = np.asarray(marginal.hessian(hyper, data, mode, "nb", True))
    numeric = np.zeros_like(exact)
    for index in range(len(hyper)):
        step = np.zeros(len(hyper))
        step[index] = 1e-4
        grads = [np.asarray(marginal.value_and_grad(hyper + sign * step, data, mode, "nb", True)[1])
                 for sign in (1, -1)]
        numeric[:, index] = (grads[0] - grads[1]) / 2e-4
    np.testing.assert_allclose(exact, numeric, rtol=1e-4, atol=1e-4)


def test_latent_draws_have_inverse_hessian_covariance(problem):
    """The Schur-complement sampler draws with covariance exactly H^-1 (dense inverse).

    Draws are linear in the standard normals, so feeding unit vectors gives the
    factor M with Cov = M M'; compared with the inverse of the dense Hessian of the
    penalised log joint (jax.hessian) to 1e-8 (both exact in exact arithmetic; float64 inversion
    and Cholesky solves of a well-conditioned 18 x 18 matrix round far below that).
    """
    data = marginal.pack_problem(problem, prior_sd=1.0, pad_to=5)
    hyper = jnp.array([1.0, 0.0, 1.0, 1.0, np.log(11.0)])  # L = I, s = 1: natural = spherical
    mode, converged = marginal.find_mode(hyper, data, marginal.initial_latent(data, True), "nb", True)
    assert bool(converged)
    gaussian = marginal.latent_gaussian(hyper, data, mode, "nb", True, observed=True)
    m, (J, q) = mode[0].shape[0], mode[1].shape
    size = m + J * q
    eye = np.eye(size)
    draws = marginal.draw_latent(gaussian, hyper, data, eye[:, :m], eye[:, m:].reshape(size, J, q))
    flat = np.hstack([draws["beta"], draws["sample_effect"], np.asarray(draws["isomir_effect"]).reshape(size, -1)])
    flat -= np.r_[mode[0], np.asarray(mode[1]).ravel()]
    covariance = flat.T @ flat

    def negative_joint(x):
        return -marginal._penalised(hyper, data, (x[:m], x[m:].reshape(J, q)), "nb", True)

    dense = jax.hessian(negative_joint)(jnp.r_[mode[0], mode[1].ravel()])
    np.testing.assert_allclose(covariance, np.linalg.inv(np.asarray(dense)), atol=1e-8)


def test_latent_beta_laplace_matches_quadrature(problem):
    """latent_beta integrates beta: compare with quadrature over beta on a fine grid.

    Poisson with random-effect SDs of 1e-9 leaves a Poisson GLM with prior
    beta ~ N(0, 3^2); its evidence by a 401 x 401 grid vs the Laplace value. With
    ~57,000 counts the posterior is near Gaussian: agreement to 0.01 on the log scale.
    """
    data = marginal.pack_problem(problem, prior_sd=3.0)
    hyper = jnp.array([1e-9, 0.0, 1e-9, 1e-9, 0.0])
    value, _, mode, _ = marginal.value_and_grad(hyper, data, marginal.initial_latent(data, True),
                                                "poisson", True)
    centre = np.asarray(mode[0][:2]) * 3.0
    y = problem.counts
    grid = [np.linspace(c - 0.3, c + 0.3, 401) for c in centre]
    b0, b1 = np.meshgrid(*grid, indexing="ij")
    eta = problem.offset[None, None, :] + b0[..., None] + b1[..., None] * problem.X[None, None, :, 1]
    loglik = (y.sum(1) * eta - y.shape[1] * np.exp(eta)).sum(-1) - special.gammaln(y + 1).sum()
    log_prior = -0.5 * (b0**2 + b1**2) / 9.0 - np.log(2 * np.pi * 9.0)
    cell = (grid[0][1] - grid[0][0]) * (grid[1][1] - grid[1][0])
    evidence = logsumexp(loglik + log_prior) + np.log(cell)
    assert abs(float(value) - evidence) < 0.01
