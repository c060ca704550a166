"""Empirical-Bayes shrinkage after the fits: exact reweightings of the nested Laplace mixtures.

A nested Laplace fit stores, per deterministic design point ``psi_k`` of the hyperparameters,
its normalised weight ``w_k`` and ``beta``'s conditional Gaussian ``N(m_k, s_k^2)`` (the
``mixture`` group, :mod:`bayesmir.mixture`). Three priors can then be learned across miRNAs and
applied without fitting again, exactly:

1. **Pooled slope-SD prior.** The half-normal scale of the isomiR slope SDs is estimated by
   marginal maximum likelihood across miRNAs (:func:`bayesmir.pooling.pooled_slope_scale`), and
   each miRNA's design weights are multiplied by the prior ratio
   ``HalfNormal(sd; pooled) / HalfNormal(sd; default)`` at its points. The log marginal
   likelihood of the full model moves by ``log sum_k w_k ratio_k``, so the isomiR-usage Bayes
   factor stays the evidence for slopes against none, under the pooled half-normal. The Kish
   effective sample size of the new weights is reported (``ess_shrinkage``); a miRNA whose
   reweighting leaves fewer than :data:`MIN_REWEIGHTED_ESS` keeps its default prior.
2. **Pooled sample-SD prior.** The same for the half-normal scale of ``sd_sample`` (the
   per-sample effect shared by a miRNA's isomiRs), from the weights of step 1. With few samples
   a group difference can be explained by per-sample effects instead of ``beta`` (their group
   means differ with SD ``sd_sample sqrt(1/n_1 + 1/n_2)``); under the default ``HalfNormal(1)``
   that explanation is cheap and step 3 learns a ``g`` too concentrated at 0 (at 3 + 3 samples
   the MSE of DE miRNAs' estimates doubled). The pooled scale prices it at the data set's level.
   It is in the reduced model too, so it does not move the log evidence (the Bayes factor's prior
   on ``sd_sample`` stays the fits').
3. **Adaptive prior on the log fold change** (ashr's scale mixture, Stephens 2017): ``beta ~
   g = sum_j pi_j N(0, sigma_j^2)`` on a grid of ``sigma_j`` (ratio sqrt 2, as ashr's), ``pi`` by
   marginal maximum likelihood across miRNAs (:data:`NULL_PENALTY` 1: no Dirichlet weight on the
   smallest SD, which a weight of 3 barely moved once step 2 is in). The grid starts at a third of the smallest likelihood SD
   (:data:`GRID_FLOOR_DIVISOR`), not ashr's tenth or point mass: a prior spike narrower than any
   miRNA's data can resolve shrinks small true effects into it and their intervals miss them
   (measured: coverage of DE miRNAs 0.70-0.80 with ashr's settings, docs/calibration_notes.md). The fit's own ``N(0, beta_sd^2)``
   prior is divided out of each point's Gaussian, leaving ``beta``'s Gaussian likelihood
   ``N(b_k; beta, v_k)``; under ``g`` the posterior is again a Gaussian mixture, over points
   and grid components, so the tables (intervals, lfsr, q-values) stay exact. ``prior="location"``
   adds components ``N(mu, h^2)`` with means every ``h`` (the smallest likelihood SD), a smoothed
   NPMLE (Efron's g-modelling) that can put mass at +-log 2; measured worse (intervals too narrow:
   coverage 0.88 on the held-out simulation), it is kept for ``benchmarks/bench_shrinkage_variants.py``.

The result goes in the ``mixture_eb`` group (:data:`EB_GROUP`) of each fit, the ``mixture``
group is kept, so applying the shrinkage again gives the same numbers. With fewer than
:data:`MIN_MIRNAS` converged miRNAs the priors are not learned: the fits keep their default
priors and ``options["shrinkage_note"]`` says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import arviz as az
import numpy as np
import xarray as xr
from scipy import optimize, special

from bayesmir.mixture import EB_GROUP, MIXTURE_GROUP
from bayesmir.pooling import design_sds, pooled_slope_scale, slope_sd_points
from bayesmir.priors import Priors

MIN_MIRNAS = 20  # converged miRNAs needed to learn the priors
MIN_REWEIGHTED_ESS = 5.0  # Kish ESS below which a miRNA keeps its default slope prior
NULL_PENALTY = 1.0  # Dirichlet weight of the smallest component: 1, plain marginal ML (ashr's "nullbiased": 10)
_GRID_STEP = math.sqrt(2.0)  # ratio of consecutive grid SDs (ashr's default)
GRID_FLOOR_DIVISOR = 3.0  # smallest grid SD: the smallest likelihood SD over this (ashr: 10)
_OPTIMISER_STEPS = 1000


def shrink(posteriors: dict, converged: set, priors: Priors, coefs: list[str],
           slope_prior: bool = True, null_penalty: float = NULL_PENALTY, prior: str = "scale",
           floor_divisor: float = GRID_FLOOR_DIVISOR, location_sd: float = 1.0,
           sample_prior: bool = True) -> tuple[dict, str]:
    """Add :data:`EB_GROUP` to every fit of ``posteriors`` (miRNA to InferenceData) that has a mixture.

    Parameters
    ----------
    posteriors : dict
        Full-model fits by miRNA; fits without a ``mixture`` group are left alone.
    converged : set
        miRNAs whose fits are used to learn the priors (the priors are applied to every fit).
    priors : Priors
        The fits' priors: ``beta_sd`` (their normal prior on ``coefs``) and ``sd_slope_scale``.
    coefs : list of str
        Coefficients given the adaptive prior (each its own ``g``); the others keep the fit's.
    slope_prior : bool
        Also learn and apply the pooled slope-SD prior.
    null_penalty : float
        Dirichlet weight of ``g``'s smallest component (1: plain marginal ML).
    prior : {"scale", "location"}
        ``g`` over zero-mean SDs only, or also over a grid of means (module docstring).
    floor_divisor : float
        The smallest grid SD is the smallest likelihood SD over this.
    location_sd : float
        SD of the location components, in grid steps.
    sample_prior : bool
        Also learn and apply the pooled ``sd_sample`` prior (after the slope prior).

    Returns
    -------
    (dict, str)
        The fits (new InferenceData objects where changed) and a note: the learned slope scale
        and grid, or why nothing was learned.
    """
    mixtures = {name: idata for name, idata in posteriors.items() if MIXTURE_GROUP in idata.groups()}
    learners = [name for name in mixtures if name in converged]
    if len(learners) < MIN_MIRNAS:
        return posteriors, (f"shrinkage off: {len(learners)} converged miRNAs with a mixture, "
                            f"fewer than {MIN_MIRNAS}; default priors")
    weights = {name: np.asarray(idata[MIXTURE_GROUP]["weight"], dtype=float) for name, idata in mixtures.items()}
    shifts = dict.fromkeys(mixtures, 0.0)
    notes = []
    if slope_prior:
        weights, shifts, slope_note = _pooled_slope_weights(mixtures, learners, weights, priors.sd_slope_scale)
        notes.append(slope_note)
    if sample_prior:
        weights, sample_note = _pooled_sample_weights(mixtures, learners, weights, priors.sd_sample_scale)
        notes.append(sample_note)
    result = dict(posteriors)
    groups = {name: {} for name in mixtures}
    beta_sd = priors.beta_sd
    for coef in coefs:
        likelihoods = {name: beta_likelihood(*_beta_at(mixtures[name], coef), beta_sd) for name in mixtures}
        grid = scale_grid([likelihoods[name] for name in learners], weights, learners, floor_divisor)
        means = np.zeros_like(grid)
        if prior == "location":
            extra_means, extra_sds = location_grid([likelihoods[name] for name in learners], weights, learners,
                                                   location_sd)
            means, grid = np.r_[means, extra_means], np.r_[grid, extra_sds]
        log_marginals = np.array([log_marginal_by_component(weights[name], *likelihoods[name], beta_sd, grid, means)
                                  for name in learners])
        pi = mixture_proportions(log_marginals, null_penalty)
        notes.append(f"{coef}: g over {len(grid)} components, SDs {grid.min():.3g}..{grid.max():.3g}, "
                     f"P(0, sd <= {grid[0]:.3g}) = {pi[0]:.2f}")
        for name in mixtures:
            groups[name][coef] = posterior_components(weights[name], *likelihoods[name], beta_sd, grid, pi, means)
    for name, idata in mixtures.items():
        new = _without_eb(idata).copy()
        new.add_groups({EB_GROUP: _eb_dataset(idata[MIXTURE_GROUP], weights[name], groups[name], shifts[name])},
                       warn_on_custom_groups=False)
        result[name] = new
    return result, "; ".join(notes)


def shrink_result(result) -> tuple[Mapping, str | None]:
    """:func:`shrink` of a :class:`~bayesmir.results.FitResult`'s full-model fits, with its priors,
    converged miRNAs and non-intercept coefficients, when ``result.options["shrinkage"]``; else its
    fits without :data:`EB_GROUP` (a shrunk run read back with the option off) and no note.

    The priors are learned from each fit's small ``mixture`` group (one pass over the fits, each
    dropped before the next), and the returned mapping attaches a fit's :data:`EB_GROUP` when it
    is looked up: a run read from its folder stays on disk, so memory does not grow with the
    number of miRNAs.
    """
    if not result.options.get("shrinkage"):
        return ShrunkPosteriors(result.posteriors, {}), None
    converged = set(result.diagnostics.loc[result.diagnostics["converged"].astype(bool), "miRNA"])
    priors = Priors(**result.options.get("priors", {}))
    coefs = [coef for coef in result._default_coefs() if coef is not None]
    light = {name: _mixture_only(idata) for name, idata in result.posteriors.items()}
    shrunk, note = shrink({name: idata for name, idata in light.items() if idata is not None},
                          converged, priors, coefs)
    groups = {name: idata[EB_GROUP] for name, idata in shrunk.items() if EB_GROUP in idata.groups()}
    return ShrunkPosteriors(result.posteriors, groups), note


class ShrunkPosteriors(Mapping):
    """``miRNA -> InferenceData`` of ``fits`` with each one's :data:`EB_GROUP` (``groups``) attached
    when looked up (and any stored one dropped); fits are otherwise read as ``fits`` gives them."""

    def __init__(self, fits: Mapping, groups: dict) -> None:
        self.fits = fits
        self.groups = dict(groups)

    def __getitem__(self, mirna: str):
        idata = self.fits[mirna]
        parts = {group: idata[group] for group in idata.groups() if group != EB_GROUP}
        if mirna in self.groups:
            parts[EB_GROUP] = self.groups[mirna]
        return az.InferenceData(**parts, warn_on_custom_groups=False)

    def __contains__(self, mirna) -> bool:
        return mirna in self.fits

    def __iter__(self) -> Iterator[str]:
        return iter(self.fits)

    def __len__(self) -> int:
        return len(self.fits)


def _mixture_only(idata):
    """What :func:`shrink` reads of a fit: its ``mixture`` group and the posterior's SDs (``None``
    without a mixture)."""
    if MIXTURE_GROUP not in idata.groups():
        return None
    names = [name for name in ("sd_isomir", "theta") if name in idata.posterior.data_vars]
    return az.InferenceData(posterior=idata.posterior[names], **{MIXTURE_GROUP: idata[MIXTURE_GROUP]},
                            warn_on_custom_groups=False)


def _without_eb(idata):
    if EB_GROUP not in idata.groups():
        return idata
    copy = idata.copy()
    delattr(copy, EB_GROUP)
    return copy


def _pooled_slope_weights(mixtures: dict, learners: list[str], weights: dict, first_scale: float):
    """Design weights under the pooled slope-SD half-normal, log evidence shifts and a note."""
    points = {name: slope_sd_points(mixtures[name]) for name in mixtures}
    sds = {name: design_sds(mixtures[name])[0] for name in mixtures if points[name] is not None}
    learned = [points[name] for name in learners if points[name] is not None]
    if len(learned) < MIN_MIRNAS:
        return weights, dict.fromkeys(mixtures, 0.0), f"slope prior: default ({len(learned)} miRNAs with slopes)"
    new_weights, shifts, scale, kept = _pooled_half_normal(learned, sds, weights, first_scale)
    return new_weights, shifts, _pooled_note("slope", scale, len(learned), first_scale, kept)


def _pooled_sample_weights(mixtures: dict, learners: list[str], weights: dict, first_scale: float):
    """Design weights (given, e.g. under the pooled slope prior) moved to a pooled half-normal scale of
    ``sd_sample`` by marginal maximum likelihood, and a note.

    The log evidence is not moved: ``sd_sample`` is in the full and the reduced model alike, so, as
    for the fold-change prior, the isomiR-usage Bayes factor stays under the fits' own prior on it
    (adding this shift to the full model alone gave 47 false usage calls of 90 on the held-out
    simulation)."""
    sds = {name: design_sds(idata)[1] for name, idata in mixtures.items()}
    learned = [(weights[name], sds[name]) for name in learners]
    new_weights, _, scale, kept = _pooled_half_normal(learned, sds, weights, first_scale)
    return new_weights, _pooled_note("sample", scale, len(learned), first_scale, kept)


def _pooled_half_normal(learned: list, sds: dict, weights: dict, first_scale: float):
    """One pooled half-normal scale, learned from ``learned`` ((weights, SDs) per learning miRNA), applied
    to the design SDs ``sds`` of each miRNA: new weights, log evidence shifts, the scale, and how many
    fits kept their weights (Kish ESS of the reweighting below :data:`MIN_REWEIGHTED_ESS`)."""
    scale = pooled_slope_scale(learned, first_scale)
    new_weights, shifts, kept = dict(weights), dict.fromkeys(weights, 0.0), 0
    for name, design in sds.items():
        reweighted, shift = reweight(weights[name], slope_log_ratio(design, first_scale, scale))
        if kish_ess(reweighted) < MIN_REWEIGHTED_ESS:
            kept += 1
            continue
        new_weights[name], shifts[name] = reweighted, shift
    return new_weights, shifts, scale, kept


def _pooled_note(what: str, scale: float, n_learned: int, first_scale: float, kept: int) -> str:
    return (f"{what} prior: HalfNormal({scale:.3g}) pooled from {n_learned} miRNAs (default {first_scale:g}); "
            f"{kept} kept the default (ESS < {MIN_REWEIGHTED_ESS:g})")


def slope_log_ratio(sds: np.ndarray, old_scale: float, new_scale: float) -> np.ndarray:
    """``log HalfNormal(sds; new) - log HalfNormal(sds; old)`` summed over slopes, per point (K,)."""
    sds = np.atleast_2d(np.asarray(sds, dtype=float))
    per_slope = math.log(old_scale / new_scale) - 0.5 * sds**2 * (new_scale**-2 - old_scale**-2)
    return np.sum(np.where(np.isfinite(per_slope), per_slope, -np.inf), axis=1)


def reweight(weights: np.ndarray, log_ratio: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights times ``exp(log_ratio)``, renormalised, and ``log sum_k w_k ratio_k`` (the evidence shift)."""
    with np.errstate(divide="ignore"):
        log_new = np.log(weights) + log_ratio
    shift = float(special.logsumexp(log_new))
    return np.exp(log_new - shift), shift


def kish_ess(weights: np.ndarray) -> float:
    """Kish effective sample size ``(sum w)^2 / sum w^2``."""
    return float(np.sum(weights) ** 2 / np.sum(weights**2))


def _beta_at(idata, coef: str) -> tuple[np.ndarray, np.ndarray]:
    mixture = idata[MIXTURE_GROUP]
    return (np.asarray(mixture["beta_mean"].sel(coef=coef), dtype=float),
            np.asarray(mixture["beta_sd"].sel(coef=coef), dtype=float))


def beta_likelihood(mean: np.ndarray, sd: np.ndarray, prior_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """``beta``'s Gaussian likelihood ``N(b; beta, v)`` at each point from its posterior ``N(mean, sd^2)``
    under the prior ``N(0, prior_sd^2)``: precision ``1/sd^2 - 1/prior_sd^2`` (floored at 1e-8 of the
    prior's: a point with no information keeps a near-flat likelihood), ``b = mean / sd^2 / precision``."""
    precision = np.maximum(sd**-2.0 - prior_sd**-2.0, 1e-8 * prior_sd**-2.0)
    return mean / sd**2 / precision, 1.0 / precision


def location_grid(likelihoods: list, weights: dict, names: list[str], sd_factor: float):
    """Means and SDs of g's location components: means every ``h`` (the smallest likelihood SD)
    from ``-max |b|`` to ``max |b|`` (0 excluded: the scale grid's), each with SD ``sd_factor * h``."""
    b = np.array([weights[name] @ lik[0] for name, lik in zip(names, likelihoods, strict=True)])
    v = np.array([weights[name] @ lik[1] for name, lik in zip(names, likelihoods, strict=True)])
    step = float(np.sqrt(v.min()))
    half = step * np.arange(1, math.ceil(np.abs(b).max() / step) + 1)
    means = np.r_[-half[::-1], half]
    return means, np.full(means.size, sd_factor * step)


def scale_grid(likelihoods: list, weights: dict, names: list[str],
               floor_divisor: float = GRID_FLOOR_DIVISOR) -> np.ndarray:
    """ashr's grid of prior SDs: from the smallest likelihood SD over ``floor_divisor`` to twice the
    largest ``sqrt(b^2 - v)``, by factors of sqrt 2 (each miRNA's ``b``, ``v`` averaged over its points)."""
    b = np.array([weights[name] @ lik[0] for name, lik in zip(names, likelihoods, strict=True)])
    v = np.array([weights[name] @ lik[1] for name, lik in zip(names, likelihoods, strict=True)])
    smallest = float(np.sqrt(v.min())) / floor_divisor
    largest = max(2.0 * float(np.sqrt(np.max(b**2 - v, initial=0.0))), 2.0 * smallest)
    count = math.ceil(math.log(largest / smallest) / math.log(_GRID_STEP)) + 1
    return smallest * _GRID_STEP ** np.arange(count)


def _log_normal0(x, variance):
    return -0.5 * (np.log(2 * np.pi * variance) + x**2 / variance)


def _component_log_terms(weights, b, v, prior_sd, grid, means=None):
    """``log w_k + log N(b_k; mu_j, v_k + sigma_j^2) - log N(b_k; 0, v_k + prior_sd^2)``, (K, J)
    (``mu_j`` the component means, zero when ``means`` is None)."""
    means = np.zeros_like(grid) if means is None else means
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)[:, None]
    return (log_w + _log_normal0(b[:, None] - means[None], v[:, None] + grid[None] ** 2)
            - _log_normal0(b, v + prior_sd**2)[:, None])


def log_marginal_by_component(weights, b, v, prior_sd, grid, means=None) -> np.ndarray:
    """``log p(y | beta ~ N(mu_j, sigma_j^2)) - log p(y | default prior)`` for each component (J,)."""
    return special.logsumexp(_component_log_terms(weights, b, v, prior_sd, grid, means), axis=0)


def mixture_proportions(log_marginals: np.ndarray, null_penalty: float = NULL_PENALTY) -> np.ndarray:
    """Proportions ``pi`` maximising ``sum_i log sum_j pi_j L_ij`` plus ashr's Dirichlet penalty
    ``(null_penalty - 1) log pi_0`` on the smallest SD (``log_marginals``: (miRNAs, J)).

    The objective is concave in ``pi``; it is maximised on the simplex by SLSQP with its exact
    gradient (EM, ashr's old method, needs tens of thousands of steps when the small SDs compete).
    """
    n, count = log_marginals.shape
    scaled = np.exp(log_marginals - log_marginals.max(axis=1, keepdims=True))
    extra = np.zeros(count)
    extra[0] = null_penalty - 1.0

    def negative(pi):
        mixed = np.maximum(scaled @ pi, 1e-300)
        penalty = extra @ np.log(np.maximum(pi, 1e-300))
        gradient = scaled.T @ (1.0 / mixed) + extra / np.maximum(pi, 1e-300)
        return -(np.sum(np.log(mixed)) + penalty) / n, -gradient / n

    start = np.full(count, 1.0 / count)
    best = optimize.minimize(negative, start, jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * count,
                             constraints=[{"type": "eq", "fun": lambda pi: pi.sum() - 1.0,
                                           "jac": lambda pi: np.ones_like(pi)}],
                             options={"ftol": 1e-12, "maxiter": _OPTIMISER_STEPS})
    pi = np.clip(best.x, 0.0, None)
    return pi / pi.sum()


def posterior_components(weights, b, v, prior_sd, grid, pi, means=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and SDs (K * J,) of ``beta``'s posterior under ``g`` given the design weights."""
    means = np.zeros_like(grid) if means is None else means
    with np.errstate(divide="ignore"):
        log_weight = _component_log_terms(weights, b, v, prior_sd, grid, means) + np.log(pi)[None]
    weight = np.exp(log_weight - special.logsumexp(log_weight))
    shrink_factor = grid[None] ** 2 / (v[:, None] + grid[None] ** 2)
    mean = means[None] + shrink_factor * (b[:, None] - means[None])
    sd = np.sqrt(shrink_factor * v[:, None])
    return weight.ravel(), mean.ravel(), sd.ravel()


def _eb_dataset(mixture: xr.Dataset, weights: np.ndarray, by_coef: dict, shift: float) -> xr.Dataset:
    """The :data:`EB_GROUP` Dataset: per coefficient, weights, means and SDs over one component axis.

    Coefficients without an adaptive prior (the intercept) keep their point Gaussians under the
    reweighted design, spread evenly over the grid components so every coefficient shares the axis.
    """
    coefs = [str(c) for c in mixture["coef"].values]
    size = max((len(parts[0]) for parts in by_coef.values()), default=len(weights))
    repeat = size // len(weights)
    columns = {"weight": [], "beta_mean": [], "beta_sd": []}
    for coef in coefs:
        if coef in by_coef:
            parts = by_coef[coef]
        else:
            mean, sd = (np.asarray(mixture[key].sel(coef=coef), dtype=float) for key in ("beta_mean", "beta_sd"))
            parts = (np.repeat(weights, repeat) / repeat, np.repeat(mean, repeat), np.repeat(sd, repeat))
        for key, part in zip(columns, parts, strict=True):
            columns[key].append(part)
    data = {key: (("component", "coef"), np.stack(value, axis=1)) for key, value in columns.items()}
    return xr.Dataset(data, coords={"coef": coefs},
                      attrs={"log_marginal_likelihood_shift": shift, "ess_shrinkage": kish_ess(weights)})
