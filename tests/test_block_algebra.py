"""The isomiR blocks' explicit algebra (bayesmir/block_algebra.py), and no batched LAPACK call in
any compiled program of the fast path.

The algebra is checked against NumPy's LAPACK on random positive-definite blocks, its
derivatives against JAX's own Cholesky. The programs are checked in their optimised HLO: in
jaxlib 0.10 a LAPACK call with batch axes waits on XLA's CPU pool for its pieces, and two of
them at once deadlocked real-data fits; the check is shown to catch such a call.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from anchor_problems import se_example_problems

from bayesmir import block_algebra, marginal
from bayesmir.inference import hyper, laplace_posterior, laplace_programs
from bayesmir.priors import Priors


@pytest.fixture(autouse=True)
def _in_x64():
    with jax.enable_x64(True):
        yield


def _blocks(q: int, batch=(7,), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((*batch, q, q + 2))
    return a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(q)


@pytest.mark.parametrize("q", [1, 2, 3])
def test_cholesky_and_solves_match_lapack(q):
    """Factor, forward, transposed and Cholesky solves equal NumPy's LAPACK to 1e-12."""
    blocks = _blocks(q)
    rhs = np.random.default_rng(1).standard_normal((5, 7, q))  # 5 vectors per block, broadcast
    factor = np.asarray(block_algebra.cholesky(jnp.asarray(blocks)))
    np.testing.assert_allclose(factor, np.linalg.cholesky(blocks), atol=1e-12)
    lower = np.linalg.solve(factor, rhs[..., None])[..., 0]
    upper = np.linalg.solve(np.swapaxes(factor, -1, -2), rhs[..., None])[..., 0]
    full = np.linalg.solve(blocks, rhs[..., None])[..., 0]
    np.testing.assert_allclose(block_algebra.solve_lower(factor, rhs), lower, atol=1e-10)
    np.testing.assert_allclose(block_algebra.solve_lower(factor, rhs, transpose=True), upper, atol=1e-10)
    np.testing.assert_allclose(block_algebra.cho_solve(factor, rhs), full, atol=1e-9)


def test_not_positive_definite_gives_nan_like_lapack():
    blocks = np.array([[[1.0, 2.0], [2.0, 1.0]]])
    assert np.isnan(np.asarray(block_algebra.cholesky(jnp.asarray(blocks)))).any()
    assert np.isnan(np.asarray(jnp.linalg.cholesky(jnp.asarray(blocks)))).any()


def test_second_derivatives_match_jax_cholesky():
    """The Hessian of a log determinant through the unrolled factor equals JAX's (LAPACK) one."""
    blocks = jnp.asarray(_blocks(2, batch=(3,)))

    def log_det(scale, chol):
        return jnp.sum(jnp.log(jnp.diagonal(chol(blocks * jnp.exp(scale[:, None, None])), axis1=-2, axis2=-1)))

    x = jnp.array([0.1, -0.2, 0.3])
    ours = jax.hessian(log_det)(x, block_algebra.cholesky)
    reference = jax.hessian(log_det)(x, jnp.linalg.cholesky)
    np.testing.assert_allclose(ours, reference, atol=1e-10)


def _batched_lapack_calls(hlo: str) -> list[str]:
    """The LAPACK custom calls of an optimised HLO module that have batch axes."""
    calls = [line for line in hlo.splitlines() if re.search(r'custom_call_target="lapack_', line)]
    return [line.strip()[:160] for line in calls if 'num_batch_dims="0"' not in line]


def test_the_check_finds_a_batched_lapack_call():
    hlo = jax.jit(jnp.linalg.cholesky).lower(jnp.asarray(_blocks(2))).compile().as_text()
    assert _batched_lapack_calls(hlo)


@pytest.fixture(scope="module")
def packed(test_data_dir):
    """miR-19b-3p of the miRglmm example (6 samples, 5 isomiRs), padded, with a starting point."""
    problem = se_example_problems(test_data_dir)["hsa-miR-19b-3p"]
    with jax.enable_x64(True):
        data = marginal.pack_problem(problem, prior_sd=2.5)
        z0 = marginal.initial_latent(data, True)
    return data, z0


def _compiled(function, *args, **static) -> str:
    return jax.jit(lambda *a: function(*a, **static)).lower(*args).compile().as_text()


def test_no_compiled_program_has_a_batched_lapack_call(packed):
    """Every program of the laplace fit and of the ML fit: LAPACK calls are unbatched only."""
    data, z0 = packed
    q, family = 2, "nb"
    psi = jnp.asarray(hyper.initial_psi(q, family))
    params = hyper.to_hyper(psi, q, family)
    priors_vec = jnp.asarray([getattr(Priors(), f) for f in laplace_programs.PRIOR_FIELDS], dtype=float)
    points = jnp.stack([psi, psi + 0.1])
    modes = jax.tree_util.tree_map(lambda leaf: jnp.stack([leaf, leaf]), z0)
    gaussians = marginal.latent_gaussian(params, data, z0, family, True)
    stacked = jax.tree_util.tree_map(lambda leaf: jnp.stack([leaf, leaf]), gaussians)
    m, (J, _) = z0[0].shape[0], z0[1].shape
    ml_params = jnp.concatenate([jnp.zeros(data.X.shape[1]), params])
    ml_start = marginal.initial_latent(data, False)
    programs = {
        "objective": _compiled(laplace_programs.objective, psi, data, z0, priors_vec, q=q, family=family),
        "log_posterior_many": _compiled(laplace_programs.log_posterior_many, points, data, psi, z0, True, priors_vec,
                                        q=q, family=family),
        "gaussians_at": _compiled(laplace_posterior.gaussians_at, points, modes, data, q=q, family=family),
        "latent_draws": _compiled(laplace_posterior.latent_draws, jnp.stack([params, params]), stacked,
                                  jnp.array([0, 1, 1]), data, jnp.zeros((3, m)), jnp.zeros((3, J, q))),
        "value_and_grad (ML)": _compiled(marginal.value_and_grad, ml_params, data, ml_start, family=family),
        "hessian (ML)": _compiled(marginal.hessian, ml_params, data, ml_start, family=family),
    }
    offenders = {name: _batched_lapack_calls(hlo) for name, hlo in programs.items()}
    assert all("lapack_" in hlo for hlo in programs.values())  # the check reads real LAPACK calls
    assert not any(offenders.values()), offenders
