"""Invariants of the marginal-Laplace engine (bayesmir/marginal.py).

Checks against quantities computed independently of the engine: the Poisson GLM
log-likelihood (the limit of vanishing random effects), finite differences with
re-solved modes (the implicit-function gradient), a dense Hessian inverse (the
block-structured sampler) and brute-force quadrature over beta (the latent_beta
Laplace integral), and the two elimination orders of the latent blocks
(bayesmir/latent_blocks.py) against each other on problems with few and many samples.
"""

from __future__ import annotations

from contextlib import contextmanager

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from anchor_problems import se_example_problems
from scipy import special
from scipy.special import logsumexp

from bayesmir import latent_blocks, marginal
from bayesmir.inference import hyper, laplace_posterior
from bayesmir.problem import MirnaProblem


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


def _many_samples_problem(n=30, J=4, seed=0) -> MirnaProblem:
    """NB GLMM counts simulated here (fixed seed): 30 samples in two groups, 4 isomiRs with random
    intercepts and slopes, so n = 30 > J q = 8 and the engine eliminates the sample block."""
    rng = np.random.default_rng(seed)
    group = np.repeat([0.0, 1.0], n // 2)
    X = np.column_stack([np.ones(n), group])
    offset = rng.normal(0.0, 0.3, n)
    isomir = rng.normal(0.0, 1.0, (J, 2)) @ np.array([[1.0, 0.3], [0.0, 0.5]])
    eta = offset[:, None] + (X @ [2.5, 0.4])[:, None] + rng.normal(0, 0.3, n)[:, None] + X @ isomir.T
    theta = 11.0
    counts = rng.poisson(rng.gamma(theta, np.exp(eta) / theta)).astype(np.int64)
    return MirnaProblem("sim", counts, [f"s{j}" for j in range(J)], [f"x{i}" for i in range(n)], offset, X, X.copy(),
                        ["Intercept", "group"], ["Intercept", "group"])


@pytest.fixture(scope="module")
def many_samples():
    return _many_samples_problem()


@contextmanager
def _order(name):
    """Force the elimination order (read at trace time: JAX's caches are cleared around it)."""
    latent_blocks.FORCE_ORDER = name
    jax.clear_caches()
    try:
        yield
    finally:
        latent_blocks.FORCE_ORDER = None
        jax.clear_caches()


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


def test_padding_and_order_do_not_change_objective_with_many_samples(many_samples):
    """30 samples, 4 isomiRs x 2 terms: padded to 4 columns the sample block is eliminated (30 > 8),
    to 16 or 64 the isomiR blocks (30 < 32): value and gradient agree to rounding across pads."""
    results = [_value(PARAMS, marginal.pack_problem(many_samples, pad_to=size)) for size in (4, 16, 64)]
    assert all(bool(converged) for *_, converged in results)
    for value, grad, _, _ in results[1:]:
        assert abs(float(value) - float(results[0][0])) < 1e-9
        np.testing.assert_allclose(np.asarray(grad), np.asarray(results[0][1]), rtol=0, atol=1e-8)


def _problems(name, problem, many_samples):
    return {"few": problem, "many": many_samples}[name]


@pytest.mark.parametrize("latent_beta", [False, True])
@pytest.mark.parametrize("which", ["few", "many"])
def test_elimination_orders_agree(problem, many_samples, which, latent_beta):
    """Both elimination orders (isomiR blocks or sample block) give the same mode, value, gradient
    and exact Hessian of the log marginal, on 6 samples x 5 isomiRs (n < J q) and 30 x 4 (n > J q).

    Both are exact block eliminations of one linear system, so they differ by rounding only:
    1e-9 relative (values ~1e3, Hessian entries up to ~1e3); the dense blocks' sizes show that
    the two programs really differ.
    """
    chosen = _problems(which, problem, many_samples)
    data = marginal.pack_problem(chosen, prior_sd=3.0, pad_to=chosen.n_isomirs)
    params = jnp.asarray(PARAMS[2:] if latent_beta else PARAMS)
    z0 = marginal.initial_latent(data, latent_beta)
    out = {}
    for name in ("isomirs", "samples"):
        with _order(name):
            value, grad, mode, converged = marginal.value_and_grad(params, data, z0, "nb", latent_beta)
            assert bool(converged)
            exact = marginal.hessian(params, data, mode, "nb", latent_beta)
            gaussian = marginal.latent_gaussian(params, data, mode, "nb", latent_beta)
            out[name] = (float(value), np.asarray(grad), np.asarray(mode[0]), np.asarray(mode[1]), np.asarray(exact),
                         gaussian.schur_chol.shape[0])
    (n, J_pad), q, p = data.counts.shape, data.Z.shape[1], data.X.shape[1] if latent_beta else 0
    assert out["isomirs"][5] == p + n and out["samples"][5] == p + J_pad * q
    first, second = out["isomirs"], out["samples"]
    assert abs(first[0] - second[0]) < 1e-9 * abs(first[0])
    for a, b in zip(first[1:5], second[1:5]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(a).max())


def _dense_covariance(hyper_params, data, mode):
    """Inverse of the dense Hessian of the penalised negative log joint (jax.hessian), in the
    coordinates (beta / prior_sd, v, w)."""
    m, (J, q) = mode[0].shape[0], mode[1].shape

    def negative_joint(x):
        return -marginal._penalised(hyper_params, data, (x[:m], x[m:].reshape(J, q)), "nb", True)

    return np.linalg.inv(np.asarray(jax.hessian(negative_joint)(jnp.r_[mode[0], mode[1].ravel()])))


@pytest.mark.parametrize("order", ["isomirs", "samples"])
def test_draws_and_beta_sd_in_both_orders(many_samples, order):
    """In either order the draws (draw_latent and the fast path's latent_draws) have covariance H^-1
    and gaussians_at's beta SDs are sqrt of its leading diagonal (dense inverse, 1e-8).

    30 samples, 4 isomiRs x 2 terms, no padding; draws are linear in the normals, so unit vectors
    give a factor M with Cov = M M'. L = I and s = 1, so the natural effects are the spherical ones.
    """
    prior_sd = np.array([3.0, 2.0])
    data = marginal.pack_problem(many_samples, prior_sd=prior_sd, pad_to=4)
    q, family = 2, "nb"
    psi = jnp.asarray(hyper.initial_psi(q, family))
    with _order(order):
        params = hyper.to_hyper(psi, q, family)
        params = params.at[:4].set(jnp.array([1.0, 0.0, 1.0, 1.0]))  # L = I, s = 1
        mode, converged = marginal.find_mode(params, data, marginal.initial_latent(data, True), family, True)
        assert bool(converged)
        m, (J, _) = mode[0].shape[0], mode[1].shape
        size = m + J * q
        eye = np.eye(size)
        normals_g, normals_w = eye[:, :m], eye[:, m:].reshape(size, J, q)
        gaussian = marginal.latent_gaussian(params, data, mode, family, True)
        draws = marginal.draw_latent(gaussian, params, data, normals_g, normals_w)
        stacked = jax.tree_util.tree_map(lambda leaf: leaf[None], gaussian)
        fast = laplace_posterior.latent_draws(params[None], stacked, jnp.zeros(size, int), data, normals_g, normals_w)
        # gaussians_at builds the parameters from psi itself
        psi_params = hyper.to_hyper(psi, q, family)
        psi_mode, _ = marginal.find_mode(psi_params, data, marginal.initial_latent(data, True), family, True)
        _, _, beta_mean, beta_sd = laplace_posterior.gaussians_at(
            psi[None], jax.tree_util.tree_map(lambda leaf: leaf[None], psi_mode), data, q, family)
    covariance = _dense_covariance(params, data, mode)
    for result in (draws, fast):
        flat = np.hstack([np.asarray(result["beta"]) / prior_sd, np.asarray(result["sample_effect"]),
                          np.asarray(result["isomir_effect"]).reshape(size, -1)])
        flat -= np.r_[mode[0], np.asarray(mode[1]).ravel()]
        np.testing.assert_allclose(flat.T @ flat, covariance, atol=1e-8)
    psi_covariance = _dense_covariance(psi_params, data, psi_mode)
    np.testing.assert_allclose(np.asarray(beta_sd)[0], np.sqrt(np.diag(psi_covariance)[:2]) * prior_sd, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(beta_mean)[0], np.asarray(psi_mode[0][:2]) * prior_sd, rtol=1e-12)


@pytest.mark.parametrize(("n_isomirs", "n_samples", "size"),
                         [(3, None, 64), (3, 40, 64), (70, 40, 256), (3, 64, 4), (5, 500, 8), (12, 500, 16),
                          (1052, 500, 2048)])
def test_padding_is_tight_with_many_samples(n_isomirs, n_samples, size):
    """From SMALL_PAD_SAMPLES samples on, the isomiR axis is padded to powers of 2 from 4 (the dense
    block then grows with the padding); with fewer samples as before (at least 64 columns)."""
    assert marginal.padded_size(n_isomirs, n_samples) == size


def test_sample_elimination_programs_have_no_batched_lapack_call(many_samples):
    """The programs of the sample-eliminating order (30 samples, 4 isomiRs padded to 4) call LAPACK
    unbatched only, as tests/test_block_algebra.py checks for the isomiR order."""
    from test_block_algebra import _batched_lapack_calls

    from bayesmir.inference import laplace_programs

    data = marginal.pack_problem(many_samples, prior_sd=2.5, pad_to=4)
    assert marginal._eliminate_samples(data)
    q, family = 2, "nb"
    psi = jnp.asarray(hyper.initial_psi(q, family))
    params = hyper.to_hyper(psi, q, family)
    z0 = marginal.initial_latent(data, True)
    stacked = jax.tree_util.tree_map(lambda leaf: jnp.stack([leaf, leaf]),
                                     marginal.latent_gaussian(params, data, z0, family, True))
    modes = jax.tree_util.tree_map(lambda leaf: jnp.stack([leaf, leaf]), z0)
    ml_params = jnp.concatenate([jnp.zeros(2), params])
    ml_start = marginal.initial_latent(data, False)
    m, (J, _) = z0[0].shape[0], z0[1].shape

    def compiled(function, *args, **static):
        return jax.jit(lambda *a: function(*a, **static)).lower(*args).compile().as_text()

    programs = {
        "objective": compiled(laplace_programs.objective, psi, data, z0, jnp.ones(len(laplace_programs.PRIOR_FIELDS)),
                              q=q, family=family),
        "gaussians_at": compiled(laplace_posterior.gaussians_at, jnp.stack([psi, psi]), modes, data, q=q, family=family),
        "latent_draws": compiled(laplace_posterior.latent_draws, jnp.stack([params, params]), stacked,
                                 jnp.array([0, 1, 1]), data, jnp.zeros((3, m)), jnp.zeros((3, J, q))),
        "hessian (ML)": compiled(marginal.hessian, ml_params, data, ml_start, family=family),
    }
    assert all("lapack_" in hlo for hlo in programs.values())
    offenders = {name: _batched_lapack_calls(hlo) for name, hlo in programs.items()}
    assert not any(offenders.values()), offenders
