"""Cross-miRNA pooling: empirical-Bayes priors from a first pass over every miRNA.

Two kinds of pooled prior come out of the first pass (:func:`pooled_priors`):

- normals on ``log theta``, ``log sd_isomir[Intercept]`` and ``log sd_sample``, centred on
  the median of the miRNAs' posterior medians (:func:`log_normal_centre_and_scale`);
- the half-normal scale of the isomiR slope SDs, ``Priors.sd_slope_scale``, by marginal
  maximum likelihood (type-II ML, :func:`pooled_slope_scale`). It stays a half-normal, so
  the prior keeps a positive density at ``sd_slope = 0`` and the slope Bayes factor keeps its
  meaning (the evidence for isomiR usage against none, now under a prior scaled to the data
  set's slopes rather than a vague one).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize, special

from bayesmir.errors import InputError
from bayesmir.mixture import MIXTURE_GROUP
from bayesmir.priors import Priors

MIN_POOLED = 5  # converged miRNAs needed to estimate a pooled prior
MIN_SLOPE_SCALE = 0.1  # floor of the pooled slope scale: the default delta of P(sd_slope > delta)


def pooled_priors(first, priors: Priors, family: str = "nb", slope_scale: bool = True) -> Priors:
    """Empirical-Bayes priors from a first pass ``first`` (a ``FitResult`` fitted with ``priors``).

    Normal priors on ``log theta``, ``log sd_isomir[0]`` and ``log sd_sample``
    (:func:`log_normal_centre_and_scale` of the converged miRNAs' posterior medians,
    :func:`posterior_median`: seed-free for nested Laplace) and,
    when ``slope_scale`` and the fits have isomiR slopes, ``sd_slope_scale`` from
    :func:`pooled_slope_scale`.

    Raises
    ------
    InputError
        Fewer than :data:`MIN_POOLED` converged miRNAs.
    """
    converged = set(first.diagnostics.loc[first.diagnostics["converged"], "miRNA"])
    idatas = [idata for name, idata in first.posteriors.items() if name in converged]
    if len(idatas) < MIN_POOLED:
        raise InputError(f"pooling needs at least {MIN_POOLED} converged miRNAs, the first pass has "
                         f"{len(idatas)}; fit with pooling=False")
    sd_isomir = log_normal_centre_and_scale([posterior_median(i, "sd_isomir") for i in idatas])
    sd_sample = log_normal_centre_and_scale([posterior_median(i, "sd_sample") for i in idatas])
    updates = {"pooled_log_sd_isomir_mean": sd_isomir[0], "pooled_log_sd_isomir_sd": sd_isomir[1],
               "pooled_log_sd_sample_mean": sd_sample[0], "pooled_log_sd_sample_sd": sd_sample[1]}
    if family == "nb":
        log_theta = log_normal_centre_and_scale([posterior_median(i, "theta") for i in idatas])
        updates.update(pooled_log_theta_mean=log_theta[0], pooled_log_theta_sd=log_theta[1])
    if slope_scale:
        points = [slope_sd_points(idata) for idata in idatas]
        points = [p for p in points if p is not None]
        if len(points) >= MIN_POOLED:
            updates["sd_slope_scale"] = pooled_slope_scale(points, priors.sd_slope_scale)
    return dataclasses.replace(priors, **updates)


def posterior_median(idata, name: str) -> float:
    """Posterior median of ``sd_isomir`` (the isomiR intercept's), ``sd_sample`` or ``theta``.

    From the ``mixture`` group when present (the weighted median of the deterministic design
    points of nested Laplace: the same distribution the draws are resampled from, without their
    seed), else from the draws.
    """
    posterior = idata.posterior
    if MIXTURE_GROUP in idata.groups():
        weights = np.asarray(idata[MIXTURE_GROUP]["weight"], dtype=float)
        log_sd, _, log_sd_sample, log_theta = _split_design_psi(idata)
        values = {"sd_isomir": log_sd[0], "sd_sample": log_sd_sample, "theta": log_theta}[name]
        order = np.argsort(values, kind="stable")
        cumulative = np.cumsum(weights[order]) / weights.sum()
        return float(np.exp(values[order][np.searchsorted(cumulative, 0.5)]))
    draws = posterior[name].isel(re_term=0) if name == "sd_isomir" else posterior[name]
    return float(draws.median())


def _split_design_psi(idata):
    """The mixture design's ``psi`` split as :func:`bayesmir.inference.hyper.split_psi` lays it out:
    ``(log sd_isomir (q, K), z, log sd_sample (K,), log theta (K,) or None)``."""
    from bayesmir.inference.hyper import split_psi

    q = idata.posterior["sd_isomir"].sizes.get("re_term", 1)
    family = "nb" if "theta" in idata.posterior.data_vars else "poisson"
    return split_psi(np.asarray(idata[MIXTURE_GROUP]["psi"], dtype=float).T, q, family)


def design_sds(idata) -> tuple[np.ndarray, np.ndarray]:
    """The slope SDs (K, q - 1) and ``sd_sample`` (K, 1) at every point of the mixture design
    (``inf`` where a far point overflows ``exp(psi)``)."""
    log_sd, _, log_sd_sample, _ = _split_design_psi(idata)
    with np.errstate(over="ignore"):
        return np.exp(log_sd[1:].T), np.exp(np.asarray(log_sd_sample, dtype=float))[:, None]


def log_normal_centre_and_scale(values) -> tuple[float, float]:
    """Median of ``log values`` and 1.4826 x their MAD (the SD for normal data), at least 0.1.

    The spread of estimates includes their estimation error, so a prior with this scale is
    a little wider than the population it estimates (conservative).
    """
    values = np.log(np.asarray(values, dtype=float))
    centre = float(np.median(values))
    return centre, max(0.1, 1.4826 * float(np.median(np.abs(values - centre))))


def slope_sd_points(idata) -> tuple[np.ndarray, np.ndarray] | None:
    """Posterior points of the slope SDs: weights (K,) summing to 1 and SDs (K, q - 1).

    From the ``mixture`` group (the deterministic design of nested Laplace, so the pooled
    scale does not depend on the seed), else from the posterior draws with equal weights;
    ``None`` when the fit has no slope.
    """
    q = idata.posterior["sd_isomir"].sizes.get("re_term", 1)
    if q < 2:
        return None
    if MIXTURE_GROUP in idata.groups():
        weights = np.asarray(idata[MIXTURE_GROUP]["weight"], dtype=float)
        sds = design_sds(idata)[0]
    else:
        sds = np.asarray(idata.posterior["sd_isomir"], dtype=float).reshape(-1, q)[:, 1:]
        weights = np.full(len(sds), 1.0 / len(sds))
    keep = (weights > 0) & np.isfinite(sds).all(axis=1)  # a far design point may overflow exp(psi)
    if not keep.any():
        return None
    return weights[keep] / weights[keep].sum(), sds[keep]


def pooled_slope_scale(points, first_scale: float, floor: float = MIN_SLOPE_SCALE) -> float:
    """Half-normal scale of the slope SDs maximising the marginal likelihood of every miRNA.

    Each miRNA's first-pass posterior (``points``: weights and slope SDs from
    :func:`slope_sd_points`, under ``HalfNormal(first_scale)``) is reweighted to a scale
    ``s`` by the prior ratio ``HalfNormal(sd; s) / HalfNormal(sd; first_scale)``; the mean
    of that ratio is ``p(y | s) / p(y | first_scale)``, and the sum of its logs over miRNAs
    is maximised over ``s`` in ``[floor, first_scale]``. At an interior maximum
    ``s^2 = mean over miRNAs of E_s[sd_slope^2 | y]`` (the half-normal's ``E[sd^2] =
    s^2``, made self-consistent), so a miRNA with little information about its slopes
    pulls ``s`` towards itself no more than its posterior allows. The upper bound keeps
    the reweighting stable (ratios bounded) and means pooling can only narrow the prior;
    the floor keeps slopes of the size the tables call relevant possible.
    """
    if floor >= first_scale:
        return float(first_scale)

    def negative_log_likelihood(log_scale: float) -> float:
        scale = np.exp(log_scale)
        total = 0.0
        for weights, sds in points:
            log_ratio = np.sum(np.log(first_scale / scale) - 0.5 * sds**2 * (scale**-2 - first_scale**-2), axis=1)
            total += special.logsumexp(log_ratio, b=weights)
        return -total

    best = optimize.minimize_scalar(negative_log_likelihood, bounds=(np.log(floor), np.log(first_scale)),
                                    method="bounded", options={"xatol": 1e-4})
    return float(np.exp(best.x))
