"""Marginal Laplace engine: the NB/Poisson isomiR GLMM with its random effects integrated out.

Model of one miRNA (``i`` sample, ``j`` isomiR)::

    log mu_ij = offset_i + x_i' beta + s * v_i + z_i' L w_j,    v_i, w_j ~ N(0, I)

with lme4's parameterisation: the sample effect is ``u_i = s v_i`` (``s`` = sd of the
sample effect, sign free) and the isomiR effects are ``b_j = L w_j`` (``L`` lower
triangular with unconstrained entries, ``Cov(b_j) = L L'``). A zero SD is then an
ordinary interior point of the parameter space.

The log marginal likelihood is approximated by Laplace's method,
``loglik(mode) - |latent|^2 / 2 - log det(H) / 2``, where ``H`` is the precision of
the spherical latent field with *expected* (Fisher) NB weights ``mu theta / (theta + mu)``
(this reproduces lme4's ``glmer`` objective). The mode is found by damped Newton
iterations with the observed Hessian, outside the differentiated function; gradients
come from one (or two, for exact second derivatives) Newton steps taken from the
stop-gradient mode, so they equal the implicit-function derivatives.

The Hessian is block structured: the fixed effects (``latent_beta`` mode), a diagonal
block of the sample effects, one ``q x q`` block per isomiR, and cross blocks. Systems are
solved with a Schur complement (:mod:`bayesmir.latent_blocks`): of the isomiR blocks (dense
``(beta, v)``) when there are fewer samples than isomiR columns, else of the sample block
(dense ``(beta, w)``), so the cost grows linearly in the number of samples, not cubically.
The isomiR axis is padded to size buckets with a mask so one compiled function serves many
miRNAs (:func:`~bayesmir.problem.padded_size`); padded isomiRs do not change any result.

Parameter vectors
-----------------
``hyper = (L entries (row-major lower triangle, q(q+1)/2), s, log theta)``.
Maximum likelihood (``latent_beta=False``): ``params = (beta (p), *hyper)``.
Bayesian fast path (``latent_beta=True``): ``params = hyper``; ``beta`` is part of the
latent field with prior ``N(0, diag(prior_sd^2))`` and is integrated out too.
``log theta`` is present but ignored for ``family="poisson"``.

Process-wide settings
---------------------
Importing this module changes nothing in the process. Its entry points run under
``jax.enable_x64(True)`` (:func:`in_x64`); the on-disk compile cache is switched on when
bayesmir fits (:func:`use_compilation_cache`, opt out with ``BAYESMIR_JAX_CACHE=``); XLA's
one-thread flags are set in worker processes and by the CLI (:data:`bayesmir.runner.WORKER_ENV`).
"""

from __future__ import annotations

import os
from functools import partial, wraps
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from bayesmir import latent_blocks
from bayesmir.problem import (  # noqa: F401 (the padding's names are part of this module's interface)
    BUCKET_BASE,
    LARGE_STEP,
    MIN_PADDED,
    SMALL_PAD_SAMPLES,
    MirnaProblem,
    padded_counts,
    padded_size,
)


def in_x64(function):
    """``function`` run under ``jax.enable_x64(True)``: bayesmir computes in 64-bit without
    switching the rest of the process (a user's other JAX code keeps JAX's default)."""

    @wraps(function)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return function(*args, **kwargs)

    return wrapper


def compilation_cache_dir() -> str:
    """Where compiled XLA programs are kept: ``$BAYESMIR_JAX_CACHE``, default
    ``~/.cache/bayesmir/jax``; empty (``BAYESMIR_JAX_CACHE=``) disables the cache."""
    return os.environ.get("BAYESMIR_JAX_CACHE", str(Path.home() / ".cache" / "bayesmir" / "jax"))


#: Programs compiled faster than this are not kept on disk: none, since the example's small
#: helper programs (slices, concatenations, ~0.1-0.3 s each) add up to seconds per process.
CACHE_MIN_COMPILE_SECONDS = 0.0


def use_compilation_cache() -> None:
    """Keep compiled programs on disk (:func:`compilation_cache_dir`), so a later process loads
    them instead of compiling again (~7 s per shape). Called when bayesmir fits (not on
    import); leaves a cache the user configured alone."""
    folder = compilation_cache_dir()
    if folder and jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)


FAMILIES = ("nb", "poisson")
_MAX_NEWTON = 60
_HALVINGS = 12


class Arrays(NamedTuple):
    """One miRNA as padded JAX arrays (see :func:`pack_problem`)."""

    counts: jax.Array  #: (n, J_pad) float64, zero in padded columns
    mask: jax.Array  #: (J_pad,) 1.0 for real isomiRs, 0.0 for padding
    offset: jax.Array  #: (n,)
    X: jax.Array  #: (n, p)
    Z: jax.Array  #: (n, q)
    prior_sd: jax.Array  #: (p,) prior SD of beta (used with latent_beta=True only)


class LatentGaussian(NamedTuple):
    """Gaussian approximation of the latent field given the hyperparameters.

    Spherical coordinates: ``g`` (m,) = (beta / prior_sd, v) with ``latent_beta`` or
    ``v`` alone, and ``w`` (J_pad, q). The precision ``H`` is factorised in the problem's
    elimination order (:mod:`bayesmir.latent_blocks`): with the isomiR blocks eliminated
    the dense block is ``g`` (``schur_chol`` (m, m)); with the samples eliminated (``n > J_pad q``)
    it is ``(beta / prior_sd, w)`` (``schur_chol`` (p + J_pad q, ...)). Either way ``beta``'s
    coordinates come first, so ``schur_chol``'s leading ``p`` rows and columns give ``beta``'s
    marginal covariance, the leading block of ``S^-1``.
    """

    g: jax.Array  #: (m,) mode of g
    w: jax.Array  #: (J_pad, q) mode of w
    schur_chol: jax.Array  #: lower Cholesky of the dense block's Schur complement S
    block_chol: jax.Array  #: (J_pad, q, q) Cholesky of each D_j, or (n,) sqrt of the sample block's diagonal
    cross: jax.Array  #: (m, J_pad, q) cross block B, or (p + J_pad q, n) cross block C


def pack_problem(
    problem: MirnaProblem, prior_sd: np.ndarray | float = 1.0, pad_to: int | None = None
) -> Arrays:
    """Convert a :class:`~bayesmir.problem.MirnaProblem` to padded float64 arrays.

    Parameters
    ----------
    problem : MirnaProblem
    prior_sd : float or array of shape (p,)
        Prior SD of each fixed effect (``latent_beta`` mode only).
    pad_to : int, optional
        Padded isomiR count; default :func:`~bayesmir.problem.padded_size` of its isomiRs and samples.
    """
    size = padded_size(problem.n_isomirs, problem.n_samples) if pad_to is None else int(pad_to)
    counts, mask = padded_counts(problem, size)
    p = problem.X.shape[1]
    return Arrays(
        jnp.asarray(counts),
        jnp.asarray(mask),
        jnp.asarray(problem.offset, dtype=float),
        jnp.asarray(problem.X, dtype=float),
        jnp.asarray(problem.Z, dtype=float),
        jnp.asarray(np.broadcast_to(np.asarray(prior_sd, dtype=float), (p,)).copy()),
    )


def n_cholesky(q: int) -> int:
    """Number of free entries of a q x q lower-triangular Cholesky factor."""
    return q * (q + 1) // 2


def cholesky_factor(entries: jax.Array, q: int) -> jax.Array:
    """Lower-triangular ``L`` (q, q) from its row-major entries (lme4's order for q <= 2)."""
    rows, cols = np.tril_indices(q)
    return jnp.zeros((q, q), entries.dtype).at[rows, cols].set(entries)


def split_params(params: jax.Array, data: Arrays, latent_beta: bool):
    """Return ``(beta or None, L, s, log_theta)`` from a parameter vector."""
    p, q = data.X.shape[1], data.Z.shape[1]
    beta = None if latent_beta else params[:p]
    hyper = params if latent_beta else params[p:]
    k = n_cholesky(q)
    return beta, cholesky_factor(hyper[:k], q), hyper[k], hyper[k + 1]


def initial_latent(data: Arrays, latent_beta: bool) -> tuple[jax.Array, jax.Array]:
    """Zero starting point ``(g, w)`` of the inner mode search."""
    n, p, q = data.X.shape[0], data.X.shape[1], data.Z.shape[1]
    m = n + p if latent_beta else n
    return jnp.zeros(m), jnp.zeros((data.counts.shape[1], q))


def _linear_parts(params, data, latent_beta):
    """Fixed part of eta (n,), the latent fixed effects' design ``X prior_sd`` (n, p; n x 0 without
    ``latent_beta``), ``s``, the isomiR design ``A = Z L`` (n, q) and ``log theta``."""
    beta, L, s, log_theta = split_params(params, data, latent_beta)
    if latent_beta:
        return data.offset, data.X * data.prior_sd, s, data.Z @ L, log_theta
    return data.offset + data.X @ beta, data.X[:, :0], s, data.Z @ L, log_theta


def _eliminate_samples(data) -> bool:
    """The elimination order of this problem's shapes (:func:`bayesmir.latent_blocks.eliminate_samples`)."""
    return latent_blocks.eliminate_samples(data.X.shape[0], data.counts.shape[1] * data.Z.shape[1])


def _loglik(eta, data, log_theta, family, constants=True):
    """Masked log-likelihood of all counts (``constants=False``: without the terms free of ``eta``,
    the log-gamma functions, which the mode search does not need)."""
    y = data.counts
    if family == "poisson":
        terms = y * eta - jnp.exp(eta)
        fixed = -gammaln(y + 1)
    else:
        theta = jnp.exp(log_theta)
        log_theta_mu = jnp.logaddexp(log_theta, eta)
        terms = theta * (log_theta - log_theta_mu) + y * (eta - log_theta_mu)
        fixed = gammaln(y + theta) - gammaln(theta) - gammaln(y + 1)
    return jnp.sum((terms + fixed if constants else terms) * data.mask)


def _score_and_weights(eta, data, log_theta, family, observed):
    """d loglik / d eta and the (observed or expected) weights -d2/d eta2, masked."""
    y = data.counts
    mu = jnp.exp(eta)
    if family == "poisson":
        score, weight = y - mu, mu
    else:
        theta = jnp.exp(log_theta)
        frac = jax.nn.sigmoid(eta - log_theta)  # mu / (theta + mu)
        score = y - (y + theta) * frac
        weight = (y + theta) * frac * (1 - frac) if observed else theta * frac
    return score * data.mask, weight * data.mask


def _penalised(params, data, z, family, latent_beta, constants=True):
    fixed, Xs, s, A, log_theta = _linear_parts(params, data, latent_beta)
    g, w = z
    eta = latent_blocks.eta(fixed, Xs, s, A, g, w)
    return _loglik(eta, data, log_theta, family, constants) - 0.5 * (g @ g) - 0.5 * jnp.sum(w * w)


def _blocks(params, data, z, family, latent_beta, observed):
    """Gradient of the negative log joint at ``z`` and its Hessian, factorised in this problem's
    elimination order (:mod:`bayesmir.latent_blocks`)."""
    fixed, Xs, s, A, log_theta = _linear_parts(params, data, latent_beta)
    g, w = z
    score, weight = _score_and_weights(latent_blocks.eta(fixed, Xs, s, A, g, w), data, log_theta, family, observed)
    grad = latent_blocks.gradient(Xs, s, A, g, w, score)
    return grad, latent_blocks.factor(latent_blocks.pieces(Xs, s, A, weight), _eliminate_samples(data))


def newton_update(params, data: Arrays, z, family: str = "nb", latent_beta: bool = False):
    """One full Newton step ``z - H^-1 grad`` of the latent field (observed Hessian), differentiable in ``params``.

    Taken from the mode (as a constant), its derivative in ``params`` is that of the mode
    itself (implicit function theorem), because the gradient vanishes there.
    """
    grad, factor = _blocks(params, data, z, family, latent_beta, observed=True)
    step = latent_blocks.solve(factor, *grad)
    return z[0] - step[0], z[1] - step[1]


#: Newton decrement accepted when rounding stops every step from improving the log density
#: (huge counts): 1e-3, i.e. ~5e-4 log units from the mode, far below what moves psi.
_ROUNDING_DECREMENT = 1e-3


@partial(jax.jit, static_argnames=("family", "latent_beta"))
def find_mode(params, data: Arrays, z0, family: str = "nb", latent_beta: bool = False):
    """Mode of the latent field ``(g, w)`` given the parameters (damped Newton).

    Parameters
    ----------
    params : array
        ``(beta, *hyper)`` or ``hyper`` with ``latent_beta`` (module docstring).
    data : Arrays
    z0 : tuple (g (m,), w (J_pad, q))
        Starting point, e.g. :func:`initial_latent` or the previous mode.

    Returns
    -------
    (g, w), converged : tuple of arrays, bool array
        Mode in spherical coordinates; whether the Newton iterations converged.
    """
    objective = partial(_penalised, params, data, family=family, latent_beta=latent_beta, constants=False)
    fractions = 0.5 ** jnp.arange(_HALVINGS)

    def body(state):
        z, value, iteration, _, _ = state
        grad, factor = _blocks(params, data, z, family, latent_beta, observed=True)
        step = latent_blocks.solve(factor, *grad)
        # Newton decrement at z: the log density left to gain is ~ decrement / 2 (scale-free, unlike
        # |grad|, which reaches 1e-4 by rounding alone when a miRNA has millions of reads)
        decrement = jnp.sum(grad[0] * step[0]) + jnp.sum(grad[1] * step[1])
        full = objective((z[0] - step[0], z[1] - step[1]))

        def halve(_):
            trial = jax.vmap(lambda f: objective((z[0] - f * step[0], z[1] - f * step[1])))(fractions)
            trial = jnp.where(jnp.isfinite(trial), trial, -jnp.inf)
            better = trial >= value
            first = jnp.argmax(better)
            return jnp.where(better.any(), fractions[first], 0.0), jnp.where(better.any(), trial[first], value)

        # the full Newton step is accepted almost always: search the halvings only when it is not
        fraction, new_value = jax.lax.cond(
            jnp.isfinite(full) & (full >= value), lambda _: (jnp.ones(()), full), halve, None)
        new_z = (z[0] - fraction * step[0], z[1] - fraction * step[1])
        # the step just taken only adds to the accuracy
        converged = decrement < 1e-8
        # with ~1e10+ reads, rounding of the log density hides gains below ~1e-4: when no step
        # improves it any more, a mode within 1e-3 log units is as close as float64 can tell
        converged = converged | ((fraction == 0.0) & (decrement < _ROUNDING_DECREMENT))
        return new_z, new_value, iteration + 1, converged | (fraction == 0.0), converged

    def keep_going(state):
        return (~state[3]) & (state[2] < _MAX_NEWTON)

    start = (z0, objective(z0), 0, False, False)
    z, _, _, _, converged = jax.lax.while_loop(keep_going, body, start)
    return z, converged


def log_marginal(params, data: Arrays, mode, family: str = "nb", latent_beta: bool = False,
                 n_steps: int = 1):
    """Laplace log marginal likelihood, differentiable in ``params``.

    Parameters
    ----------
    params : array
        ``(beta, *hyper)``, or ``hyper`` with ``latent_beta`` (module docstring).
    data : Arrays
    mode : tuple (g (m,), w (J_pad, q))
        The latent mode at ``params`` from :func:`find_mode` (treated as a constant).
    n_steps : int
        Newton steps taken from the stop-gradient mode: 1 gives exact gradients,
        2 exact second derivatives as well.

    Returns
    -------
    scalar
        ``loglik(mode) - |latent|^2/2 - log det(H)/2``, H with expected weights.
    """
    z = jax.tree_util.tree_map(jax.lax.stop_gradient, mode)
    for _ in range(n_steps):
        z = newton_update(params, data, z, family, latent_beta)
    _, factor = _blocks(params, data, z, family, latent_beta, observed=False)
    return _penalised(params, data, z, family, latent_beta) - 0.5 * latent_blocks.log_det(factor)


@partial(jax.jit, static_argnames=("family", "latent_beta"))
def value_and_grad(params, data: Arrays, z0, family: str = "nb", latent_beta: bool = False):
    """Laplace log marginal, its gradient in ``params``, the mode and its convergence flag.

    One compiled call: :func:`find_mode` from ``z0`` then the gradient of
    :func:`log_marginal` (one Newton step from the mode). Returns
    ``(value, grad (len(params),), mode, converged)``.
    """
    mode, converged = find_mode(params, data, z0, family, latent_beta)
    value, grad = jax.value_and_grad(log_marginal)(params, data, mode, family, latent_beta)
    return value, grad, mode, converged


@partial(jax.jit, static_argnames=("family", "latent_beta"))
def hessian(params, data: Arrays, mode, family: str = "nb", latent_beta: bool = False):
    """Exact Hessian (len(params), len(params)) of :func:`log_marginal` at ``params``.

    Uses two Newton steps from ``mode`` (the mode at ``params`` from :func:`find_mode`);
    one step would give wrong second derivatives. For the Gaussian/grid approximation of
    the hyperparameters' posterior add the Hessian of their log-prior.
    """
    return jax.hessian(log_marginal)(params, data, mode, family, latent_beta, 2)


@partial(jax.jit, static_argnames=("family", "latent_beta", "observed"))
def latent_gaussian(params, data: Arrays, mode, family: str = "nb", latent_beta: bool = True,
                    observed: bool = True) -> LatentGaussian:
    """Gaussian approximation of the latent field at its mode given ``params``.

    Parameters
    ----------
    params : array
        ``hyper`` (k+2,) with ``latent_beta`` else ``(beta, *hyper)``.
    mode : tuple
        From :func:`find_mode` at the same ``params``.
    observed : bool
        Observed (True, as INLA) or expected Fisher weights in the precision.
    """
    _, factor = _blocks(params, data, mode, family, latent_beta, observed)
    return LatentGaussian(mode[0], mode[1], *factor)


@partial(jax.jit, static_argnames=("latent_beta",))
def draw_latent(gaussian: LatentGaussian, params, data: Arrays, normals_g, normals_w,
                latent_beta: bool = True):
    """Draws of ``beta``, sample and isomiR effects from a :class:`LatentGaussian`.

    Parameters
    ----------
    gaussian : LatentGaussian
    params : array
        The parameters the Gaussian was built at.
    normals_g : array (S, m)
        Standard normal draws (m = p + n with ``latent_beta``, else n).
    normals_w : array (S, J_pad, q)
        Standard normal draws.

    Returns
    -------
    dict
        ``beta`` (S, p) (the fixed ``beta`` repeated without ``latent_beta``),
        ``sample_effect`` (S, n) = s v, ``isomir_effect`` (S, J_pad, q) = L w
        (rows of padded isomiRs are meaningless: drop them with the mask).

    Notes
    -----
    The normals are regrouped by elimination order (:func:`split_normals`): the draws are a
    linear map of them with covariance ``H^-1`` in either order, not the same map.
    """
    dense, rest = split_normals(data, normals_g, normals_w, latent_beta)
    # all draws' right-hand sides in one unbatched triangular solve (module block_algebra says why)
    schur_noise = jax.scipy.linalg.solve_triangular(gaussian.schur_chol, dense.T, lower=True, trans="T").T
    return latent_from_noise(gaussian, params, data, schur_noise, rest, latent_beta)


def split_normals(data: Arrays, normals_g, normals_w, latent_beta: bool = True):
    """Standard normals for ``g`` (..., m) and ``w`` (..., J_pad, q) regrouped as ``(dense, rest)``:
    those of the Gaussian's dense block (``schur_chol``'s size) and of its eliminated block,
    the inputs of :func:`latent_from_noise` (``dense`` after the triangular solve)."""
    p = data.X.shape[1] if latent_beta else 0
    return latent_blocks.split_normals(data.X.shape[0], p, _eliminate_samples(data), normals_g, normals_w)


def latent_from_noise(gaussian: LatentGaussian, params, data: Arrays, schur_noise, normals_rest,
                      latent_beta: bool = True):
    """:func:`draw_latent` given the dense block's noise ``schur_noise = chol(S)'^-1 dense`` (S, k)
    and the eliminated block's normals ``rest`` (:func:`split_normals`): explicit block algebra
    only, so it may be vectorised over Gaussians as well."""
    beta, L, s, _ = split_params(params, data, latent_beta)
    g, w = latent_blocks.from_noise(latent_blocks.Factor(*gaussian[2:]), gaussian.g, gaussian.w, schur_noise, normals_rest)
    p = data.X.shape[1]
    if latent_beta:
        betas, v = g[:, :p] * data.prior_sd, g[:, p:]
    else:
        betas, v = jnp.broadcast_to(beta, (g.shape[0], p)), g
    return {"beta": betas, "sample_effect": s * v, "isomir_effect": w @ L.T}


#: Entry points run in 64-bit (:func:`in_x64`); the private helpers are traced inside them.
for _name in ("pack_problem", "cholesky_factor", "split_params", "initial_latent", "newton_update",
              "find_mode", "log_marginal", "value_and_grad", "hessian", "latent_gaussian", "draw_latent",
              "latent_from_noise", "split_normals"):
    globals()[_name] = in_x64(globals()[_name])
del _name
