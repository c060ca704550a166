"""The Bayesian isomiR mixed model as a PyMC graph (its pointwise likelihood in numpy: :mod:`bayesmir.likelihood`).

One miRNA: counts ``C_ij`` of isomiR ``j`` in sample ``i`` follow

    C_ij ~ NegativeBinomial(mu_ij, theta)      (or Poisson(mu_ij))
    log mu_ij = offset_i + x_i' beta + tau_i + z_i' b_j
    tau_i = sd_sample * v_i,  v_i ~ N(0, 1)                   (non-centred)
    b_j = L w_j,  w_j ~ N(0, I_q),  L L' = Sigma              (slopes non-centred,
                                                               intercepts centred)
    Sigma = diag(sd_isomir) Omega diag(sd_isomir),  Omega ~ LKJ(lkj_eta)
    sd_isomir ~ HalfNormal([sd_isomir_scale, sd_slope_scale, ...])
    1 / sqrt(theta) ~ HalfNormal(inv_sqrt_theta_scale)
    beta ~ N(0, intercept_sd) for the intercept, N(0, beta_sd) otherwise

``sd_sample`` and (for one slope, q = 2) the slope SD are sampled as signed scales,
``sd = |s|`` with ``s ~ N(0, scale)`` (the same half-normal prior); see
:func:`_signed_scale`. The isomiR intercepts are centred (``level_j = beta_0 + b_j0``) and
``beta_0`` is drawn from its exact conditional given the levels (:func:`_fixed_effects`). With
``slope_centred`` the isomiR slopes are centred the same way, ``beta_k`` drawn given them
(:func:`_centred_slopes`). The likelihood is written out for speed, without the constant ``-log y!``
(:func:`_log_likelihood`).

The graph knows nothing of the inference method (numpyro style). Its data are
``pm.Data`` containers (``counts``, ``mask``, ``offset``, ``X``, ``Z``) so one
compiled model serves every miRNA with the same shapes: the isomiR dimension can be
padded to a bucket size, and ``mask`` (1 for real isomiRs, 0 for padding) removes the
padded columns from the likelihood. Padded isomiRs then only carry prior draws of
their (non-centred, hence independent) ``w_j`` and do not change the posterior of
anything else; :func:`drop_padding` removes them from the output.

Posterior variable names and dims follow docs/architecture.md.

PyMC and PyTensor are imported by the functions that build the graph, not by this module: the
numpy functions (:func:`pointwise_log_likelihood` for the tables, :func:`drop_padding`) do not
pay for importing PyMC (~2-3 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from bayesmir.errors import InputError
from bayesmir.likelihood import pointwise_log_likelihood, posterior_predictive_draws  # noqa: F401 - re-exported
from bayesmir.priors import Priors
from bayesmir.problem import MirnaProblem, padded_counts, reduced_problem

if TYPE_CHECKING:
    import pymc as pm

FAMILIES = ("nb", "poisson")

#: Variables every method reports in ``InferenceData.posterior`` (``theta``, the NB size: NB only,
#: ``corr_isomir``: q >= 2 only).
POSTERIOR_VARIABLES = (
    "beta",
    "sd_isomir",
    "corr_isomir",
    "sd_sample",
    "theta",
    "isomir_effect",
    "sample_effect",
)


def model_coords(
    coef_names: list[str], re_names: list[str], samples: list[str], isomirs: list[str]
) -> dict[str, list[str]]:
    """Coordinates of the model's dims."""
    return {
        "coef": list(coef_names),
        "re_term": list(re_names),
        "re_term_bis": list(re_names),
        "sample": list(samples),
        "isomir": list(isomirs),
    }


def padded_isomir_names(sequences: list[str], n_isomirs: int) -> list[str]:
    """The sequences followed by ``"<pad k>"`` placeholders up to ``n_isomirs``."""
    return list(sequences) + [f"<pad {k}>" for k in range(n_isomirs - len(sequences))]


def build_model(
    problem: MirnaProblem,
    priors: Priors | None = None,
    family: str = "nb",
    n_isomirs: int | None = None,
    random_slope: bool = True,
    slope_centred: bool = False,
) -> pm.Model:
    """PyMC model of one miRNA, optionally with the isomiR dimension padded.

    Parameters
    ----------
    problem : MirnaProblem
        Counts (n, J), offset, X (n, p) and Z (n, q). ``q = 1`` gives the reduced
        model (isomiR intercepts only); ``q >= 2`` adds correlated random slopes.
    priors : Priors, optional
        Prior scales; default ``Priors()``.
    family : {"nb", "poisson"}
        Count distribution.
    n_isomirs : int, optional
        Size of the (padded) isomiR dimension, ``>= J``; default ``J`` (no padding).
    random_slope : bool
        ``False`` drops the slope columns of ``Z`` (the reduced model, q = 1).
    slope_centred : bool
        With one slope (q = 2): sample the isomiR slope levels ``beta_k + b_j1`` and draw
        ``beta_k`` from its exact conditional (:func:`_centred_slopes`) instead of the
        non-centred ``b_j1 = L w_j``. The same posterior; which samples better depends on
        the data (:func:`bayesmir.inference.nuts.slope_parameterisation`). Ignored for q != 2.

    Returns
    -------
    pymc.Model
        With ``pm.Data`` containers ``counts`` (n, n_isomirs), ``mask`` (n_isomirs,),
        ``offset`` (n,), ``X`` and ``Z``; see :func:`model_data`.
    """
    import pymc as pm
    import pytensor.tensor as pt

    priors = priors or Priors()
    if priors.pooled:
        raise InputError("cross-miRNA pooled priors are supported by method='laplace' only")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    if not random_slope:
        problem = reduced_problem(problem)
    n_isomirs = problem.n_isomirs if n_isomirs is None else int(n_isomirs)
    coords = model_coords(
        problem.coef_names, problem.re_names, problem.samples,
        padded_isomir_names(problem.sequences, n_isomirs),
    )
    data = model_data(problem, n_isomirs)
    q = len(problem.re_names)
    with pm.Model(coords=coords) as model:
        counts = pm.Data("counts", data["counts"], dims=("sample", "isomir"))
        mask = pm.Data("mask", data["mask"], dims="isomir")
        offset = pm.Data("offset", data["offset"], dims="sample")
        X = pm.Data("X", data["X"], dims=("sample", "coef"))
        Z = pm.Data("Z", data["Z"], dims=("sample", "re_term"))

        signed_sd_sample = _signed_scale("sd_sample", priors.sd_sample_scale)
        sample_raw = pm.Normal("sample_raw", 0.0, 1.0, dims="sample")
        sample_effect = pm.Deterministic("sample_effect", signed_sd_sample * sample_raw, dims="sample")
        chol, sd = _isomir_covariance(priors, q)
        level = pm.Flat("isomir_level", dims="isomir")
        if slope_centred and q == 2:
            beta, isomir_effect = _centred_slopes(problem, priors, chol, sd[0], level, mask)
        else:
            beta = _fixed_effects(problem.coef_names, priors, level, mask, sd[0])
            intercept = beta[problem.coef_names.index("Intercept")]
            isomir_effect = _isomir_effects(chol, sd[0], q, level, intercept, mask, n_isomirs)

        log_mu = (
            offset[:, None]
            + pt.dot(X, beta)[:, None]
            + sample_effect[:, None]
            + pt.dot(Z, isomir_effect.T)
        )
        theta = None
        if family == "nb":
            inv_sqrt = pm.HalfNormal("inv_sqrt_theta", priors.inv_sqrt_theta_scale)
            theta = pm.Deterministic("theta", 1.0 / inv_sqrt**2)
        pm.Potential("log_likelihood", _log_likelihood(counts, mask, log_mu, theta))
    return model


def _log_likelihood(counts, mask, log_mu, theta=None):
    """Sum of the NB (Poisson when ``theta`` is None) log-likelihood over unmasked cells.

    Written out rather than through ``pm.logp(pm.NegativeBinomial.dist(...))``, which NUTS
    calls once per leapfrog step: PyMC's form evaluates three ``gammaln`` per cell (and three
    ``digamma`` in the gradient), a Poisson-limit branch and a parameter check. Here each
    cell costs one ``gammaln(y + theta)`` (``gammaln(theta)`` is a scalar) and ``log(theta + mu)``
    is taken directly (``softplus`` of ``log mu - log theta`` costs twice as much in pytensor's
    numba backend), and the data-only ``-gammaln(y + 1)`` is left out: a constant, so the
    posterior is unchanged (the pointwise ``log_likelihood`` group keeps it,
    :func:`pointwise_log_likelihood`). Measured with numba on 39 x 2,048 cells, value and
    gradient (``/tmp`` probe): 38 ns per cell, against 59 ns for PyMC's form and 65 ns with
    ``softplus``; ``exp(log mu)`` overflows only beyond ``log mu = 709``.
    """
    import pytensor.tensor as pt

    weights = mask[None, :]
    if theta is None:
        return pt.sum(weights * (counts * log_mu - pt.exp(log_mu)))
    log_theta_mu = pt.log(theta + pt.exp(log_mu))
    cells = pt.gammaln(counts + theta) + counts * (log_mu - log_theta_mu) - theta * log_theta_mu
    n_cells = pt.sum(weights) * counts.shape[0]
    return pt.sum(weights * cells) + n_cells * (theta * pt.log(theta) - pt.gammaln(theta))


def _signed_scale(name: str, scale: float):
    """A half-normal SD sampled as ``s ~ N(0, scale)``, reported as ``name = |s|``; returns ``s``.

    ``|s|`` has exactly the half-normal prior, and the model only uses ``s`` through
    products with symmetric standard normals (``s * v``), so both signs give the same
    reported posterior. The point is the sampling geometry: SDs of sample effects and
    isomiR slopes often have posterior mass down to 0, which the default log transform
    turns into a long left tail NUTS explores slowly, while ``s`` is smooth through 0.
    Measured on hsa-miR-9000 of the 39-sample simulation (reduced model, 4 x 1,000
    draws, same seed): ``sd_sample`` bulk/tail ESS 466/295 with the log transform,
    882/1,488 signed, for the same number of leapfrog steps.
    """
    import pymc as pm
    import pytensor.tensor as pt

    signed = pm.Normal(f"{name}_signed", 0.0, scale)
    pm.Deterministic(name, pt.abs(signed))
    return signed


def _one_slope_cholesky(scales: np.ndarray, lkj_eta: float):
    """Cholesky factor and SDs of a 2 x 2 isomiR covariance, the slope SD signed.

    Same prior as ``LKJCholeskyCov`` with half-normal SDs: for 2 x 2, LKJ(eta) is
    ``(rho + 1) / 2 ~ Beta(eta, eta)``. The slope SD is a signed scale ``s``
    (:func:`_signed_scale`); flipping the sign of ``s``, ``rho`` and the slope draws
    ``w_j1`` leaves ``b_j`` unchanged, so the reported correlation is
    ``sign(s) * rho``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    sd0 = pm.HalfNormal("sd_isomir_intercept", scales[0])
    slope = pm.Normal("sd_slope_signed", 0.0, scales[1])
    rho = 2.0 * pm.Beta("corr_isomir_unit", lkj_eta, lkj_eta) - 1.0
    sd = pt.stack([sd0, pt.abs(slope)])
    corr = pt.sign(slope) * rho
    pm.Deterministic("sd_isomir", sd, dims="re_term")
    pm.Deterministic(
        "corr_isomir", pt.stack([pt.stack([1.0, corr]), pt.stack([corr, 1.0])]), dims=("re_term", "re_term_bis")
    )
    chol = pt.stack([pt.stack([sd0, 0.0]), pt.stack([slope * rho, slope * pt.sqrt(1.0 - rho**2)])])
    return chol, sd


def _isomir_covariance(priors: Priors, q: int):
    """Cholesky factor and SDs of the isomiR effects' covariance (and its correlation for q >= 2)."""
    import pymc as pm

    scales = np.array([priors.sd_isomir_scale] + [priors.sd_slope_scale] * (q - 1))
    if q == 1:
        sd = pm.HalfNormal("sd_isomir", scales, dims="re_term")
        return sd[None, :], sd
    if q == 2:
        return _one_slope_cholesky(scales, priors.lkj_eta)
    chol, corr, sd = pm.LKJCholeskyCov(
        "chol_isomir", n=q, eta=priors.lkj_eta,
        sd_dist=pm.HalfNormal.dist(scales, shape=q), compute_corr=True,
    )
    pm.Deterministic("sd_isomir", sd, dims="re_term")
    pm.Deterministic("corr_isomir", corr, dims=("re_term", "re_term_bis"))
    return chol, sd


def _fixed_effects(coef_names: list[str], priors: Priors, level, mask, sd_level):
    """``beta`` with its intercept drawn given the isomiR levels; adds the levels' prior.

    The model is ``beta_0 ~ N(0, s0)``, ``level_j ~ N(beta_0, sd_level)`` for the ``J``
    real isomiRs, and ``beta_0`` enters nothing else (in ``log mu`` it cancels against
    ``b_j0 = level_j - beta_0``). So, exactly, ``beta_0 | levels ~ N(m, v)`` with
    ``1 / v = 1 / s0^2 + J / sd_level^2`` and ``m = v * sum(level) / sd_level^2``, and the
    levels' marginal prior is ``N(0, sd_level^2 I + s0^2 11')``. The intercept is sampled
    as ``beta_0 = m + sqrt(v) * u`` with ``u ~ N(0, 1)`` and the levels with that
    marginal prior (:func:`_conditional_coefficient`): the same posterior, without the funnel
    of ``beta_0`` against ``sd_level`` (with 2-4 isomiRs, NUTS diverged where ``sd_level`` is
    small). Padded isomiRs (``mask = 0``) keep ``level_j ~ N(0, 1)``. Other coefficients:
    ``N(0, beta_sd)``.
    """
    return _coefficients(coef_names, priors, {"Intercept": _intercept(coef_names, priors, level, mask, sd_level)})


def _intercept(coef_names: list[str], priors: Priors, level, mask, sd_level):
    """``beta_0`` drawn given the isomiR levels (:func:`_fixed_effects`)."""
    var_prior = float(priors.coef_sd(coef_names)[coef_names.index("Intercept")]) ** 2
    return _conditional_coefficient("intercept_raw", "isomir_level_prior", level, level, mask, sd_level**2, var_prior)


def _coefficients(coef_names: list[str], priors: Priors, drawn: dict):
    """``beta``: the coefficients named in ``drawn`` as given, the others ``N(0, beta_sd)``."""
    import pymc as pm
    import pytensor.tensor as pt

    coef_sd = priors.coef_sd(coef_names)
    others = [k for k, name in enumerate(coef_names) if name not in drawn]
    beta = pt.zeros(len(coef_names))
    if others:
        beta = pt.set_subtensor(beta[others], pm.Normal("beta_rest", 0.0, coef_sd[others], shape=len(others)))
    for name, value in drawn.items():
        beta = pt.set_subtensor(beta[coef_names.index(name)], value)
    return pm.Deterministic("beta", beta, dims="coef")


def _conditional_coefficient(name: str, prior_name: str, deviations, values, mask, var_within, var_prior: float):
    """A coefficient ``c ~ N(0, var_prior)`` drawn from its exact conditional; adds the values' prior.

    ``deviations_j ~ N(c, var_within)`` independently for the real isomiRs (``mask = 1``), and
    ``c`` enters nothing else. Adds (as ``prior_name``) the deviations' marginal prior
    ``N(0, var_within I + var_prior 11')`` and ``N(0, 1)`` on the padded ``values``, and returns
    ``c = m + u / sqrt(P)`` with ``u ~ N(0, 1)`` (named ``name``), ``P = 1 / var_prior + J / var_within``
    and ``m = sum(deviations) / var_within / P``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    n = pt.sum(mask)
    mean = pt.sum(mask * deviations) / n
    spread = pt.sum(mask * (deviations - mean) ** 2)
    marginal = -0.5 * (
        spread / var_within + n * mean**2 / (var_within + n * var_prior)
        + (n - 1) * pt.log(var_within) + pt.log(var_within + n * var_prior) + n * np.log(2 * np.pi)
    )
    padding = pt.sum((1.0 - mask) * pm.logp(pm.Normal.dist(0.0, 1.0), values))
    pm.Potential(prior_name, marginal + padding)
    precision = 1.0 / var_prior + n / var_within
    return n * mean / var_within / precision + pm.Normal(name, 0.0, 1.0) / pt.sqrt(precision)


def _centred_slopes(problem: MirnaProblem, priors: Priors, chol, sd_level, level, mask):
    """``beta`` and the isomiR effects with centred slopes, ``beta_k`` drawn given them (q = 2).

    The slope column of ``Z`` is column ``k`` of ``X``, so ``log mu`` holds
    ``slope_level_j = beta_k + b_j1`` and ``beta_k`` cancels, as ``beta_0`` does against the
    levels. With ``b_j1 | b_j0 ~ N(L10 b_j0 / sd_level, L11^2)`` (``L`` the Cholesky factor),
    ``slope_level_j - L10 b_j0 / sd_level ~ N(beta_k, L11^2)``, and
    :func:`_conditional_coefficient` draws ``beta_k`` exactly given them. Where every isomiR's
    counts pin its slope down (slope SD well above the slopes' standard errors), the
    non-centred ``w_j1`` leave ``beta_k``, the slope SD and the ``w_j1`` on a curved ridge
    (``beta_k + s w_j1`` fixed by the data).
    """
    import pymc as pm
    import pytensor.tensor as pt

    coef_names = problem.coef_names
    slope_name = problem.re_names[1]
    intercept = _intercept(coef_names, priors, level, mask, sd_level)
    slope_level = pm.Flat("isomir_slope_level", dims="isomir")
    b0 = level - intercept
    var_prior = float(priors.coef_sd(coef_names)[coef_names.index(slope_name)]) ** 2
    slope = _conditional_coefficient(
        "slope_raw", "isomir_slope_level_prior", slope_level - chol[1, 0] / sd_level * b0, slope_level,
        mask, chol[1, 1] ** 2, var_prior,
    )
    beta = _coefficients(coef_names, priors, {"Intercept": intercept, slope_name: slope})
    effect = pt.stack([b0, slope_level - slope], axis=1)
    return beta, pm.Deterministic("isomir_effect", effect, dims=("isomir", "re_term"))


def _isomir_effects(chol, sd_level, q: int, level, intercept, mask, n_isomirs: int):
    """IsomiR effects ``b_j = L w_j``.

    The slopes are non-centred (their SD is often near 0 and weakly identified). The
    isomiR intercepts are centred, ``level_j = beta_0 + b_j0`` (prior in
    :func:`_fixed_effects`), because every isomiR's own counts pin its level down: the
    non-centred form leaves ``beta_0`` and the mean of ``b_j0`` strongly correlated
    (measured: bulk ESS ~250 of 2,000 draws). Padded isomiRs keep ``w_j0 = level_j``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    w0 = mask * (level - intercept) / sd_level + (1.0 - mask) * level
    if q == 1:
        w = w0[:, None]
    else:
        slope_raw = pm.Normal("isomir_slope_raw", 0.0, 1.0, shape=(n_isomirs, q - 1))
        w = pt.concatenate([w0[:, None], slope_raw], axis=1)
    return pm.Deterministic("isomir_effect", pt.dot(w, chol.T), dims=("isomir", "re_term"))


def model_data(problem: MirnaProblem, n_isomirs: int | None = None) -> dict[str, np.ndarray]:
    """Values of the model's ``pm.Data`` containers, with the isomiR dimension padded.

    Parameters
    ----------
    problem : MirnaProblem
    n_isomirs : int, optional
        Padded isomiR dimension (``>= problem.n_isomirs``); default no padding.

    Returns
    -------
    dict
        ``counts`` (n, n_isomirs) float (padded columns 0), ``mask`` (n_isomirs,),
        ``offset`` (n,), ``X`` (n, p), ``Z`` (n, q), all float64.
    """
    counts, mask = padded_counts(problem, problem.n_isomirs if n_isomirs is None else int(n_isomirs))
    return {
        "counts": counts,
        "mask": mask,
        "offset": np.asarray(problem.offset, dtype=float),
        "X": np.asarray(problem.X, dtype=float),
        "Z": np.asarray(problem.Z, dtype=float),
    }


def drop_padding(posterior: xr.Dataset, sequences: list[str]) -> xr.Dataset:
    """Keep the contract variables and the first ``len(sequences)`` isomiRs, named by sequence."""
    names = [v for v in POSTERIOR_VARIABLES if v in posterior.data_vars]
    trimmed = posterior[names].isel(isomir=slice(0, len(sequences)))
    return trimmed.assign_coords(isomir=list(sequences))
