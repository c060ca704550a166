"""Posterior assembly of the nested Laplace method: latent Gaussians, mixture group and draws.

Given the hyperparameter design of :mod:`bayesmir.inference.laplace` (points ``psi_k``, their
normalised weights and latent modes), build at each point the Gaussian approximation of the
latent field, ``beta``'s conditional mean and marginal SD (the ``mixture`` group, from which
the tables are computed exactly) and, for plots and isomiR effects, posterior draws: ``psi``
resampled by weight, the latent field drawn from its Gaussian given that ``psi``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from bayesmir import marginal
from bayesmir.inference import hyper
from bayesmir.problem import MirnaProblem
from bayesmir.stored_programs import stored_program

_DRAW_BATCH = 100  # draws vectorised at once (memory ~ batch x latent size x isomiRs)


@stored_program(static_argnames=("q", "family"))
def gaussians_at(points, modes, data, q, family):
    """Engine parameters, latent Gaussians and ``beta``'s conditional mean and SD at each point.

    ``beta``'s marginal covariance under the latent Gaussian is the leading block of the
    inverse Schur complement ``S^-1`` (the isomiR blocks integrated out), so its SDs are
    the column norms of ``chol(S)^-1`` restricted to the first ``p`` columns, scaled by
    the prior SDs (``g = beta / prior_sd``).
    """
    p = data.X.shape[1]

    def one(args):
        psi, g, w = args
        params = hyper.to_hyper(psi, q, family)
        gaussian = marginal.latent_gaussian(params, data, (g, w), family, True)
        unit = jnp.eye(gaussian.schur_chol.shape[0])[:, :p]
        inverse_cols = jax.scipy.linalg.solve_triangular(gaussian.schur_chol, unit, lower=True)
        sd = jnp.sqrt(jnp.sum(inverse_cols**2, axis=0)) * data.prior_sd
        return params, gaussian, gaussian.g[:p] * data.prior_sd, sd

    return jax.lax.map(one, (points, *modes))


@stored_program
def latent_draws(params, gaussians, chosen, data, normals_g, normals_w):
    """Latent draws for each resampled hyperparameter point from the Gaussians of :func:`gaussians_at`.

    The normals are regrouped by the Gaussians' elimination order (:func:`bayesmir.marginal.split_normals`).
    The Schur factors' triangular solves run one draw at a time (a batched LAPACK call can
    deadlock XLA's CPU pool, :mod:`bayesmir.block_algebra`); the isomiR blocks' algebra runs
    on batches of draws.
    """
    def schur_noise(args):
        index, e_g, e_w = args
        dense, _ = marginal.split_normals(data, e_g, e_w)
        return jax.scipy.linalg.solve_triangular(gaussians.schur_chol[index], dense, lower=True, trans="T")

    def one(args):
        index, noise, e_g, e_w = args
        pick = jax.tree_util.tree_map(lambda leaf: leaf[index], gaussians)
        _, rest = marginal.split_normals(data, e_g, e_w)
        draws = marginal.latent_from_noise(pick, params[index], data, noise[None], rest[None], True)
        return jax.tree_util.tree_map(lambda leaf: leaf[0], draws)

    noises = jax.lax.map(schur_noise, (chosen, normals_g, normals_w))
    return jax.lax.map(one, (chosen, noises, normals_g, normals_w), batch_size=_DRAW_BATCH)


def mixture_dataset(problem: MirnaProblem, weights, beta_mean, beta_sd, points) -> xr.Dataset:
    """The ``mixture`` group: per design point its weight, ``beta``'s conditional mean and SD, and ``psi``."""
    return xr.Dataset(
        {"weight": (("point",), np.asarray(weights, dtype=float)),
         "beta_mean": (("point", "coef"), beta_mean), "beta_sd": (("point", "coef"), beta_sd),
         "psi": (("point", "psi_dim"), np.asarray(points, dtype=float))},
        coords={"point": np.arange(weights.size), "coef": list(problem.coef_names),
                "psi_dim": np.arange(points.shape[1])},
    )


def systematic_resample(weights: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices drawn by systematic resampling (each point ``floor`` or ``ceil`` of ``size x weight``
    times, less noise than multinomial draws), in random order."""
    positions = (rng.random() + np.arange(size)) / size
    chosen = np.minimum(np.searchsorted(np.cumsum(weights), positions), weights.size - 1)
    return rng.permutation(chosen)


def posterior_dataset(problem: MirnaProblem, latent: dict, values: dict, S: int) -> xr.Dataset:
    """Posterior Dataset with one chain and the contract's names, dims and coords."""
    def var(array, dims):
        return (("chain", "draw", *dims), np.asarray(array)[None])

    content = {
        "beta": var(latent["beta"], ("coef",)),
        "sd_isomir": var(values["sd_isomir"], ("re_term",)),
        "sd_sample": var(values["sd_sample"], ()),
        "isomir_effect": var(latent["isomir_effect"], ("isomir", "re_term")),
        "sample_effect": var(latent["sample_effect"], ("sample",)),
    }
    coords = {"chain": [0], "draw": np.arange(S), "coef": list(problem.coef_names),
              "re_term": list(problem.re_names), "isomir": list(problem.sequences),
              "sample": list(problem.samples)}
    if "corr_isomir" in values:
        content["corr_isomir"] = var(values["corr_isomir"], ("re_term", "re_term_bis"))
        coords["re_term_bis"] = list(problem.re_names)
    if "theta" in values:
        content["theta"] = var(values["theta"], ())
    return xr.Dataset(content, coords=coords)
