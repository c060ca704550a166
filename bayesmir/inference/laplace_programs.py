"""The compiled programs of the nested Laplace method (:mod:`bayesmir.inference.laplace`).

Two programs per array shape do the numerical work of the hyperparameter search and the
importance sampling: :func:`objective` (log posterior of ``psi``, its gradient and the latent
mode, for the optimiser and the curvature) and :func:`log_posterior_many` (log posterior and
latent mode at a chunk of design points). Compiling them costs ~7 s of CPU per shape (the
gradient through a Newton step is most of it), running them a few ms per call, so the
fast path keeps the number of shapes small (:func:`bayesmir.marginal.padded_size`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesmir import marginal
from bayesmir.inference import hyper
from bayesmir.stored_programs import stored_program


@stored_program(static_argnames=("q", "family"))
def objective(psi, data, z0, priors_vec, q, family):
    """Log posterior of ``psi`` (up to p(y)), its gradient, the latent mode and its convergence."""
    priors = _priors_from_vec(priors_vec)
    mode, converged = marginal.find_mode(hyper.to_hyper(psi, q, family), data, z0, family, True)

    def log_post(x):
        lm = marginal.log_marginal(hyper.to_hyper(x, q, family), data, mode, family, True)
        return lm + hyper.log_prior(x, q, family, priors)

    value, grad = jax.value_and_grad(log_post)(psi)
    return value, grad, mode, converged


@stored_program(static_argnames=("q", "family"))
def log_posterior_many(psis, data, centre, z_centre, extrapolate, priors_vec, q, family):
    """Log posterior of each row of ``psis``, its latent mode and whether the inner Newton
    iterations converged (sequential map: one compile).

    The iterations start from the latent mode extrapolated linearly from ``z_centre``, the mode
    at ``centre`` (:func:`latent_tangent`), if ``extrapolate``, else from ``z_centre`` itself
    (the caller's second attempt at the points where the first failed: one Newton loop in the
    program, not two, halves what it costs to compile).
    """
    priors = _priors_from_vec(priors_vec)
    tangent = latent_tangent(centre, data, z_centre, q, family)

    def one(psi):
        params = hyper.to_hyper(psi, q, family)
        guess = jax.tree_util.tree_map(lambda z, t: jnp.where(extrapolate, z + t @ (psi - centre), z), z_centre,
                                       tangent)
        mode, converged = marginal.find_mode(params, data, guess, family, True)
        lm = marginal.log_marginal(params, data, mode, family, True, n_steps=0)
        value = lm + hyper.log_prior(psi, q, family, priors)
        return jnp.where(converged & jnp.isfinite(value), value, -jnp.inf), mode, converged

    return jax.lax.map(one, psis)


def latent_tangent(psi, data, mode, q, family):
    """Derivative of the latent mode in ``psi`` at ``psi``: that of one Newton step from the mode
    (:func:`bayesmir.marginal.newton_update`). Leaves have the shape of the latent field plus a
    trailing ``psi`` axis.
    """
    return jax.jacfwd(lambda x: marginal.newton_update(hyper.to_hyper(x, q, family), data, mode, family, True))(psi)


#: The prior scales passed to the programs as one float vector, in this order.
PRIOR_FIELDS = ("intercept_sd", "beta_sd", "sd_isomir_scale", "sd_slope_scale", "sd_sample_scale", "lkj_eta",
              "inv_sqrt_theta_scale", "pooled_log_theta_mean", "pooled_log_theta_sd",
              "pooled_log_sd_isomir_mean", "pooled_log_sd_isomir_sd", "pooled_log_sd_sample_mean",
              "pooled_log_sd_sample_sd")


class _PriorsView:
    """The prior scales as attributes of JAX scalars (so jitted code can take them as data)."""

    def __init__(self, values) -> None:
        for name, value in zip(PRIOR_FIELDS, values):
            setattr(self, name, value)


def _priors_from_vec(vec) -> _PriorsView:
    return _PriorsView([vec[i] for i in range(len(PRIOR_FIELDS))])

