"""Maximum-likelihood fit of the isomiR NB mixed model (the lme4 ``glmer.nb`` equivalent).

Per miRNA, the Laplace log marginal likelihood of :mod:`bayesmir.marginal` is maximised
over ``(beta, Cholesky entries of the isomiR covariance, sample SD, log theta)`` with
scipy's L-BFGS-B and JAX gradients, starting from simple moment estimates. Wald
standard errors follow lme4: the Hessian of the Laplace deviance over the variance
parameters and ``beta`` (``theta`` fixed) by central differences of the exact
gradient, inverted, ``beta`` block; when that Hessian is not positive definite (as
lme4) the SE conditional on the variance parameters is used instead.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from bayesmir import marginal, runner
from bayesmir.calls import Z_95
from bayesmir.design import build_design
from bayesmir.problem import (
    DEFAULT_NORMALISATION,
    MirnaProblem,
    mirna_problems,
    reduced_problem,
)

#: Upper bound of log theta (theta = 1e4 is practically Poisson), as a safety cap.
LOG_THETA_MAX = float(np.log(1e4))
LOG_THETA_MIN = float(np.log(1e-3))
#: A Cholesky diagonal or sample SD below this is a singular fit (lme4's isSingular tolerance).
SINGULAR_TOL = 1e-4

COLUMNS = [
    "miRNA", "coef", "estimate", "se", "ci_low", "ci_high", "wald_p", "theta", "sd_isomir",
    "sd_slope", "corr_isomir", "sd_sample", "loglik", "converged", "singular", "message",
    "n_isomirs", "n_samples",
]


class _Objective:
    """Negative Laplace log marginal with warm-started modes, for scipy."""

    def __init__(self, data: marginal.Arrays, family: str):
        self.data, self.family = data, family
        self.mode = marginal.initial_latent(data, latent_beta=False)
        self.mode_converged = True

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad, mode, converged = marginal.value_and_grad(params, self.data, self.mode, self.family)
        value, grad = float(value), np.asarray(grad)
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(params)
        self.mode, self.mode_converged = mode, bool(converged)
        return -value, -grad


def start_values(problem: MirnaProblem, family: str) -> np.ndarray:
    """Moment-based starting point ``(beta, L entries, s, log theta)``.

    ``beta`` regresses the isomiR-averaged ``log((count + 0.5) / exp(offset))`` on X; the
    isomiR intercept SD is the SD of the per-isomiR log rates; slopes, correlations and
    the sample SD start at small non-zero values (zero is a stationary point by symmetry).
    """
    rates = np.log(problem.counts + 0.5) - problem.offset[:, None]
    beta = np.linalg.lstsq(problem.X, rates.mean(1), rcond=None)[0]
    q = problem.Z.shape[1]
    entries = np.zeros(marginal.n_cholesky(q))
    rows, cols = np.tril_indices(q)
    entries[rows == cols] = 0.2
    entries[0] = max(rates.mean(0).std(), 0.2)
    log_theta = 0.0 if family == "poisson" else np.log(10.0)
    return np.concatenate([beta, entries, [0.2, log_theta]])


@marginal.in_x64
def fit_problem(problem: MirnaProblem, family: str = "nb", coef: str | None = None) -> dict:
    """Maximum-likelihood fit of one miRNA; returns one row of the frequentist table.

    Extra keys (not table columns): ``params`` (optimum), ``mode``.
    """
    if family not in marginal.FAMILIES:
        raise ValueError(f"family must be one of {marginal.FAMILIES}, not {family!r}")
    coef = coef_of_interest(problem, coef)
    data = marginal.pack_problem(problem)
    objective = _Objective(data, family)
    x0 = start_values(problem, family)
    p = problem.X.shape[1]
    bounds = [(None, None)] * (len(x0) - 1) + [(LOG_THETA_MIN, LOG_THETA_MAX)]
    if family == "poisson":
        bounds[-1] = (0.0, 0.0)
    result = optimize.minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                               options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-7, "maxcor": 20})
    params = result.x
    objective(params)  # leave the mode at the optimum
    cov, cov_message = beta_covariance(objective, params, p)
    index = problem.coef_names.index(coef)
    estimate, se = params[index], float(np.sqrt(cov[index, index]))
    variance = variance_components(params[p:], problem.Z.shape[1])
    converged = bool(result.success or _gradient_small(result)) and objective.mode_converged
    message = "" if converged else f"L-BFGS-B: {result.message}"
    if not objective.mode_converged:
        message += "; inner Newton did not converge"
    if variance["singular"]:
        message = "; ".join(m for m in (message, "singular fit (boundary)") if m)
    if family == "nb" and params[-1] >= LOG_THETA_MAX - 1e-6:
        message = "; ".join(m for m in (message, "theta at its cap 1e4 (no overdispersion)") if m)
    if cov_message:
        message = "; ".join(m for m in (message, cov_message) if m)
    return {
        "miRNA": problem.mirna, "coef": coef, "estimate": estimate, "se": se,
        "ci_low": estimate - Z_95 * se, "ci_high": estimate + Z_95 * se,
        "wald_p": float(2 * stats.norm.sf(abs(estimate / se))) if se > 0 else np.nan,
        "theta": float(np.exp(params[-1])) if family == "nb" else np.nan,
        **{k: variance[k] for k in ("sd_isomir", "sd_slope", "corr_isomir", "sd_sample", "singular")},
        "loglik": -float(result.fun), "converged": converged, "message": message,
        "n_isomirs": problem.n_isomirs, "n_samples": problem.n_samples,
        "params": params, "mode": objective.mode, "iterations": int(result.nit),
    }


def _gradient_small(result) -> bool:
    """L-BFGS-B sometimes stops on 'ABNORMAL' line searches at an optimum."""
    return bool(np.max(np.abs(result.jac)) < 1e-3)


def coef_of_interest(problem: MirnaProblem, coef: str | None) -> str:
    """``coef`` if given, else the first random-slope column, else the first non-intercept."""
    if coef is not None:
        if coef not in problem.coef_names:
            raise ValueError(f"coefficient {coef!r} is not one of {problem.coef_names}")
        return coef
    slopes = [name for name in problem.re_names if name != "Intercept"]
    return slopes[0] if slopes else next(n for n in problem.coef_names if n != "Intercept")


def variance_components(hyper: np.ndarray, q: int) -> dict:
    """SDs and correlation from ``(L entries, s, log theta)``, and lme4's singularity check."""
    L = np.asarray(marginal.cholesky_factor(np.asarray(hyper[: marginal.n_cholesky(q)]), q))
    cov = L @ L.T
    sds = np.sqrt(np.diag(cov))
    corr = cov[0, 1] / (sds[0] * sds[1]) if q >= 2 and sds[0] * sds[1] > 0 else np.nan
    diagonals = np.concatenate([np.abs(np.diag(L)), [abs(hyper[-2])]])
    return {
        "sd_isomir": float(sds[0]), "sd_slope": float(sds[1]) if q >= 2 else np.nan,
        "corr_isomir": float(corr), "sd_sample": float(abs(hyper[-2])),
        "singular": bool(np.any(diagonals < SINGULAR_TOL)),
    }


def beta_covariance(objective: _Objective, params: np.ndarray, p: int) -> tuple[np.ndarray, str]:
    """Covariance of ``beta``: inverse Hessian over (variance parameters, beta), theta fixed.

    Central differences of the exact gradient (each point re-solves the mode). When the
    Hessian is not positive definite, fall back to the Hessian of ``beta`` alone.
    """
    free = np.arange(len(params) - 1)  # every parameter but log theta
    mode = objective.mode
    hessian = np.empty((len(free), len(free)))
    for column, index in enumerate(free):
        step = 1e-4 * max(1.0, abs(params[index]))
        grads = []
        for sign in (1.0, -1.0):
            shifted = params.copy()
            shifted[index] += sign * step
            objective.mode = mode
            grads.append(objective(shifted)[1][free])
        hessian[:, column] = (grads[0] - grads[1]) / (2 * step)
    objective.mode = mode
    hessian = 0.5 * (hessian + hessian.T)
    order = np.r_[np.arange(p, len(free)), np.arange(p)]  # variance parameters first, as lme4
    hessian = hessian[np.ix_(order, order)]
    try:
        np.linalg.cholesky(hessian)
        return np.linalg.inv(hessian)[-p:, -p:], ""
    except np.linalg.LinAlgError:
        conditional = np.linalg.inv(hessian[-p:, -p:])
        return conditional, "Hessian not positive definite: SE conditional on variance parameters"


def problems_from(data, formula: str, coef: str | None, reference: dict | None,
                  random_slope: bool, normalisation: str = DEFAULT_NORMALISATION
                  ) -> tuple[list[MirnaProblem], str | None]:
    """MirnaProblems and the coefficient of interest, from problems or an IsomirData.

    A sequence of MirnaProblem is used as-is (``coef`` passed through, None meaning
    each problem's first slope); an IsomirData gets the design of ``formula`` and the
    offset of ``normalisation`` (:func:`bayesmir.problem.library_offset`).
    """
    if isinstance(data, MirnaProblem):
        data = [data]
    if isinstance(data, Sequence) and all(isinstance(p, MirnaProblem) for p in data):
        return (list(data) if random_slope else [reduced_problem(p) for p in data]), coef
    design = build_design(data.samples, formula, coef=coef, reference=reference,
                          random_slope=random_slope)
    return mirna_problems(data, design, normalisation), design.coef


def failed_row(problem: MirnaProblem, coef: str | None, error: Exception) -> dict:
    """Table row of a miRNA whose fit raised."""
    row = dict.fromkeys(COLUMNS, np.nan)
    row.update({"miRNA": problem.mirna, "coef": coef, "converged": False, "singular": False,
                "message": f"{type(error).__name__}: {error}", "n_isomirs": problem.n_isomirs,
                "n_samples": problem.n_samples})
    return row


def fit_rows(problems: list[MirnaProblem], family: str, coef: str | None, n_jobs: int = 1,
             scheduler: str = "processes", progress: bool = False) -> list[dict]:
    """Fit every problem on the runner (:mod:`bayesmir.runner`), never stopping; rows in input order."""
    tasks = [runner.Task(i, problem, 0) for i, problem in enumerate(problems)]
    rows: list = [None] * len(tasks)
    stream = runner.run(functools.partial(fit_row, family, coef), tasks, scheduler=scheduler, n_jobs=n_jobs,
                        shape_key=_shape_key, progress=progress, label="bayesmir ML fit")
    for task, row in stream:
        rows[task.key] = row
    return rows


def fit_row(family: str, coef: str | None, problem: MirnaProblem, seed: int = 0) -> dict:
    """One table row, timed; a fit that raises becomes a failed row (``seed`` is unused: the ML
    fit is deterministic)."""
    start = time.perf_counter()
    try:
        row = fit_problem(problem, family, coef)
    except Exception as error:  # noqa: BLE001 - one failure never stops the loop
        row = failed_row(problem, coef, error)
    row["seconds"] = time.perf_counter() - start
    return row


def _shape_key(problem: MirnaProblem) -> tuple:
    """What the compiled programs depend on: samples, padded isomiRs, p, q."""
    return (problem.n_samples, marginal.padded_size(problem.n_isomirs, problem.n_samples), *problem.X.shape[1:],
            problem.Z.shape[1])


def fit_frequentist(
    data_or_problems,
    formula: str = "~ group",
    coef: str | None = None,
    family: str = "nb",
    random_slope: bool = True,
    n_jobs: int = 1,
    reference: dict[str, str] | None = None,
    scheduler: str = "processes",
    progress: bool = False,
    normalisation: str = DEFAULT_NORMALISATION,
) -> pd.DataFrame:
    """Maximum-likelihood NB (or Poisson) GLMM per miRNA, as miRglmm's ``glmer.nb``.

    Parameters
    ----------
    data_or_problems : IsomirData or sequence of MirnaProblem
        Problems are used as they are (their X, Z and offset); an IsomirData gets the
        design of ``formula`` and the offset of ``normalisation``.
    formula, coef, reference : see :func:`bayesmir.design.build_design`
    family : {"nb", "poisson"}
    random_slope : bool
        Random isomiR slopes on the coefficient's term (False: intercepts only).
    n_jobs : int
        Worker processes (each compiles once; worth it for many miRNAs only).
    scheduler : str
        ``"processes"``, ``"serial"``, ``"dask"`` or a dask scheduler address, as
        :func:`bayesmir.fit` (:mod:`bayesmir.runner`).
    progress : bool
        Progress bar on stderr.
    normalisation : {"robust", "total", "median_ratio"}
        Library-size offset for an IsomirData, the default of :func:`bayesmir.fit` (so the
        two fits of one data set are comparable); ``"total"`` is miRglmm's
        ``log(T_i / 1e4)``, the setting that reproduces ``glmer.nb``.

    Returns
    -------
    pandas.DataFrame
        One row per miRNA for the coefficient of interest, columns :data:`COLUMNS`
        plus ``seconds``; log fold changes are natural logs. A failed fit has
        ``converged=False`` and the error in ``message``.
    """
    runner.check_scheduler(scheduler)
    marginal.use_compilation_cache()
    problems, coef = problems_from(data_or_problems, formula, coef, reference, random_slope, normalisation)
    rows = fit_rows(problems, family, coef, n_jobs, scheduler, progress)
    return pd.DataFrame(rows, columns=[*COLUMNS, "seconds"])
