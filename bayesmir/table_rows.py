"""One miRNA's rows of the tables of :class:`~bayesmir.results.FitResult`.

Each function takes one miRNA's fit(s) and returns its rows as dicts, so the tables can be
built miRNA by miRNA with one fit in memory at a time (:meth:`FitResult.tables`); the
run-wide columns (q-values, flags) are added by :mod:`bayesmir.results`. What the columns
mean: the docstring of :mod:`bayesmir.results` and docs/glossary.md.
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import xarray as xr

from bayesmir.likelihood import pointwise_log_likelihood
from bayesmir.mixture import EB_GROUP
from bayesmir.problem import problem_from_idata
from bayesmir.psis import loo_pointwise
from bayesmir.summaries import coefficient_summary, lfsr

#: Group of a fit holding its PSIS-LOO pointwise ELPD (:func:`with_pointwise_elpd`).
ELPD_GROUP = "pointwise_elpd"
BAYES_FACTOR_COLUMNS = ("log_bayes_factor", "log_bayes_factor_se")
ELPD_COLUMNS = ("elpd_diff", "elpd_diff_se")


def coef_names(idata) -> list[str]:
    """The fit's coefficients but the intercept."""
    return [str(c) for c in idata.posterior["coef"].values if str(c) != "Intercept"]


def mirna_rows(mirna: str, idata, coefs: list, level: float, delta: float) -> list[dict]:
    """Rows of ``mirna_table``: one per coefficient of ``coefs`` (``idata`` None: NaN summaries)."""
    return [{"miRNA": mirna, "coef": coef, **coefficient_summary(idata, coef, level, delta)} for coef in coefs]


def isomir_rows(mirna: str, idata, tail: float) -> list[dict]:
    """Rows of ``isomir_table``: per isomiR and slope coefficient; ``[{"miRNA": mirna}]`` without a fit."""
    if idata is None:
        return [{"miRNA": mirna}]
    posterior = idata.posterior
    coefs = coef_names(idata)
    effect = posterior["isomir_effect"].stack(s=("chain", "draw")).transpose("isomir", "re_term", "s")
    terms = [str(t) for t in posterior["re_term"].values]
    slopes = [t for t in terms[1:] if t in coefs] or coefs[:1]
    levels = effect.sel(re_term=terms[0]).values
    share = np.exp(levels - levels.max(axis=0))
    share /= share.sum(axis=0)
    rows = []
    for coef in slopes:
        beta = posterior["beta"].sel(coef=coef).stack(s=("chain", "draw")).values
        for j, sequence in enumerate(posterior["isomir"].values):
            deviation = effect.sel(re_term=coef).values[j] if coef in terms else np.zeros_like(beta)
            rows.append({
                "miRNA": mirna, "sequence": str(sequence), "coef": coef,
                **_interval(beta + deviation, "logfc", tail), "logfc_lfsr": lfsr(beta + deviation),
                **_interval(deviation, "deviation", tail), "deviation_lfsr": lfsr(deviation),
                "baseline_share_estimate": float(share[j].mean()),
                "baseline_share_ci_low": float(np.quantile(share[j], tail)),
                "baseline_share_ci_high": float(np.quantile(share[j], 1 - tail)),
            })
    return rows


def slope_terms(idata) -> list[str]:
    """The fit's slope terms (random-effect terms after the intercept); none without a fit."""
    return [] if idata is None else [str(t) for t in idata.posterior["re_term"].values[1:]]


def slope_rows(mirna: str, full, reduced, delta: float, tail: float) -> list[dict]:
    """Rows of ``slope_table``: per slope term of the full fit (one row of NaN without one).

    ``reduced`` is the fit without slopes (or None); it is only used when the full fit has
    slope terms.
    """
    terms = slope_terms(full)
    if not terms:
        return [{"miRNA": mirna, "term": None}]
    comparison = model_comparison(full, reduced)
    rows = []
    for term in terms:
        sd = _draws(full.posterior["sd_isomir"].sel(re_term=term))
        rows.append({
            "miRNA": mirna, "term": term,
            "sd_slope_median": float(np.median(sd)),
            "sd_slope_ci_low": float(np.quantile(sd, tail)),
            "sd_slope_ci_high": float(np.quantile(sd, 1 - tail)),
            f"p_sd_slope_gt_{delta:.3f}": float(np.mean(sd > delta)), **comparison,
        })
    return rows


def model_comparison(full, reduced) -> dict:
    """Log Bayes factor of full vs reduced (NaN when unavailable) and, when both fits carry a
    pointwise ELPD (:func:`pointwise_elpd`), their PSIS-LOO ELPD difference."""
    result = dict.fromkeys(BAYES_FACTOR_COLUMNS, math.nan)
    if full is None or reduced is None:
        return result
    lml = [fit.posterior.attrs.get("log_marginal_likelihood") for fit in (full, reduced)]
    if all(value is not None for value in lml):
        shift = full[EB_GROUP].attrs["log_marginal_likelihood_shift"] if EB_GROUP in full.groups() else 0.0
        result["log_bayes_factor"] = float(lml[0]) + float(shift) - float(lml[1])  # pooled slope prior
        se = [fit.posterior.attrs.get("log_marginal_likelihood_se", math.nan) for fit in (full, reduced)]
        result["log_bayes_factor_se"] = float(math.hypot(*se))
    pointwise = [pointwise_elpd(fit) for fit in (full, reduced)]
    if any(values is None for values in pointwise) or pointwise[0].shape != pointwise[1].shape:
        return result
    difference = pointwise[0] - pointwise[1]
    result["elpd_diff"] = float(difference.sum())
    result["elpd_diff_se"] = float(math.sqrt(difference.size * difference.var()))
    return result


def with_pointwise_elpd(idata: az.InferenceData) -> az.InferenceData:
    """``idata`` with its PSIS-LOO pointwise ELPD stored in group :data:`ELPD_GROUP` (``elpd_i``).

    Called where each fit is made (a worker), so that the slope table later only subtracts two
    stored vectors; a fit whose ELPD cannot be computed is returned as it is.
    """
    try:
        loglik = _log_likelihood(idata)
        values = _elpd(loglik, idata.posterior)
    except (KeyError, ValueError, AttributeError):
        return idata
    elpd = xr.Dataset({"elpd_i": (loglik.dims[2:], values.reshape(loglik.shape[2:]))},
                      coords={d: loglik[d].values for d in loglik.dims[2:] if d in loglik.coords})
    idata.add_groups({ELPD_GROUP: elpd}, warn_on_custom_groups=False)
    return idata


def pointwise_elpd(idata: az.InferenceData) -> np.ndarray | None:
    """PSIS-LOO pointwise ELPD: the stored one (:func:`with_pointwise_elpd`, made by
    ``fit(loo=True)``), else computed from a ``log_likelihood`` group (what ``az.loo`` needs),
    else None: it is not computed from the draws unless asked (it costs about a third of a fit)."""
    if ELPD_GROUP in idata.groups():
        return np.asarray(idata[ELPD_GROUP]["elpd_i"].values, dtype=float).ravel()
    if "log_likelihood" in idata.groups():
        return _elpd(_log_likelihood(idata), idata.posterior)
    return None


def _log_likelihood(idata: az.InferenceData) -> xr.DataArray:
    """The stored pointwise log-likelihood, else computed in numpy; dims (chain, draw, ...)."""
    if "log_likelihood" in idata.groups():
        (loglik,) = idata.log_likelihood.data_vars.values()
    else:
        problem = problem_from_idata(idata)
        loglik = pointwise_log_likelihood(idata.posterior, problem, idata.posterior.attrs.get("family", "nb"))
    return loglik.transpose("chain", "draw", ...)


def _elpd(loglik: xr.DataArray, posterior) -> np.ndarray:
    """PSIS-LOO pointwise ELPD (:func:`bayesmir.psis.loo_pointwise`, ArviZ's algorithm vectorised)."""
    values = loglik.values
    return loo_pointwise(values.reshape(values.shape[0] * values.shape[1], -1), relative_efficiency(posterior))


def relative_efficiency(posterior) -> float:
    """``az.loo``'s ``reff``: 1 for one chain, else the mean ESS of every posterior value over the draws."""
    if posterior.sizes.get("chain", 1) == 1:
        return 1.0
    ess = az.ess(posterior, method="mean")
    return float(np.hstack([ess[v].values.ravel() for v in ess.data_vars]).mean()
                 / (posterior.sizes["chain"] * posterior.sizes["draw"]))


def _draws(array) -> np.ndarray:
    return np.asarray(array.values, dtype=float).ravel()


def _interval(draws: np.ndarray, prefix: str, tail: float) -> dict:
    return {f"{prefix}_estimate": float(draws.mean()), f"{prefix}_sd": float(draws.std(ddof=1)),
            f"{prefix}_ci_low": float(np.quantile(draws, tail)),
            f"{prefix}_ci_high": float(np.quantile(draws, 1 - tail))}
