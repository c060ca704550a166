"""Variational method (experimental): full-rank ADVI (PyMC).

Shipped flagged *experimental*: on this model the probe
(``../shared/notes/inference-probe.md``) measured mean-field ADVI and Pathfinder intervals
for ``beta`` 3-8 times too narrow and ``sd_slope`` off, because variational methods
approximate the joint posterior of ~2J + n + 7 parameters with a Gaussian instead of
integrating the random effects out. Every fit's diagnostics row says so in ``message`` and
``converged`` is only about the optimiser (parameter relative change below ``tolerance``)
and the PSIS k-hat below 0.7, not calibration. Use ``"laplace"`` or ``"nuts"`` for
results; ADVI is for exploration and comparison.

Each fit compiles its own PyMC model (no padding); ``pareto_k`` is the PSIS k-hat of the
importance weights ``log p(theta, y) - log q(theta)`` over fresh draws of the Gaussian
(Yao et al. 2018):
above 0.7 the approximation is unreliable.
"""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import arviz as az
import numpy as np
import pymc as pm

from bayesmir.inference.base import Inference, data_groups, diagnostics_row
from bayesmir.model import build_model, drop_padding, pointwise_log_likelihood
from bayesmir.problem import MirnaProblem

EXPERIMENTAL_MESSAGE = "experimental method: intervals known to be too narrow on this model"


class AdviInference(Inference):
    """Full-rank ADVI (``pm.fit(method="fullrank_advi")``), experimental.

    Options: ``iterations`` (default 20,000), ``draws`` (default 2,000),
    ``learning_rate`` (Adam; default 3e-3, retried at 1e-3 if the ELBO turns NaN), ``tolerance`` (ELBO-parameter relative change
    for the convergence callback, default 1e-3), ``log_likelihood`` (default True).
    """

    name = "advi"
    experimental = True
    process_parallel = True
    defaults: ClassVar[dict] = {"iterations": 20_000, "draws": 2000, "tolerance": 1e-3, "log_likelihood": True,
                "learning_rate": None}

    def __init__(self, family: str = "nb", priors=None, **options) -> None:
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise TypeError(f"unknown {self.name} options {sorted(unknown)}; known: {sorted(self.defaults)}")
        super().__init__(family, priors, **{**self.defaults, **options})

    def fit_one(self, problem: MirnaProblem, seed: int) -> tuple[az.InferenceData, dict]:
        """Fit and draw from the approximation; see :meth:`Inference.fit_one`."""
        model = build_model(problem, self.priors, self.family)
        trace, optimiser_converged, approx = self._approximate(model, seed)
        posterior = drop_padding(trace.posterior, problem.sequences)
        posterior.attrs = {"method": self.name, "family": self.family, "mirna": problem.mirna}
        groups = {"posterior": posterior, **data_groups(problem)}
        if self.options["log_likelihood"]:
            groups["log_likelihood"] = pointwise_log_likelihood(posterior, problem, self.family).to_dataset()
        idata = az.InferenceData(**groups)
        k_hat = self._pareto_k(model, approx)
        status = "converged" if optimiser_converged else "iteration limit"
        converged = optimiser_converged and not k_hat >= 0.7  # NaN k-hat: optimiser only
        row = diagnostics_row(
            problem.mirna, self.name, converged=converged, pareto_k=k_hat,
            message=f"{EXPERIMENTAL_MESSAGE}; optimiser: {status}", optimizer_status=status,
        )
        return idata, row

    def _approximate(self, model: pm.Model, seed: int):
        """Run the optimiser (retrying with a smaller step on NaN); return draws and convergence."""
        rates = [self.options["learning_rate"]] if self.options["learning_rate"] else [3e-3, 1e-3]
        for attempt, rate in enumerate(rates):
            callback = pm.callbacks.CheckParametersConvergence(tolerance=self.options["tolerance"])
            try:
                with model, warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    approx = pm.fit(
                        n=self.options["iterations"], method="fullrank_advi", random_seed=seed + attempt,
                        progressbar=False, callbacks=[callback], obj_optimizer=pm.adam(learning_rate=rate),
                    )
                    trace = approx.sample(self.options["draws"], random_seed=seed)
                break
            except FloatingPointError:
                if attempt == len(rates) - 1:
                    raise
        return trace, len(approx.hist) < self.options["iterations"], approx

    def _pareto_k(self, model: pm.Model, approx) -> float:
        """PSIS k-hat of ``log p - log q`` over 1,000 fresh draws of the Gaussian (NaN on failure)."""
        try:
            return _gaussian_pareto_k(model, approx)
        except Exception:  # noqa: BLE001 - a diagnostic must not fail the fit
            return math.nan


def _gaussian_pareto_k(model: pm.Model, approx, n_draws: int = 1000, seed: int = 0) -> float:
    """PSIS k-hat of importance weights p/q for a full-rank Gaussian approximation."""
    from scipy import stats

    mean, cov = approx.mean.eval(), approx.cov.eval()
    ordering = approx.groups[0].ordering
    flat = np.random.default_rng(seed).multivariate_normal(mean, cov, size=n_draws)
    log_q = stats.multivariate_normal(mean, cov, allow_singular=True).logpdf(flat)
    logp = model.compile_logp()
    log_p = np.array([
        logp({name: row[sl].reshape(shape) for name, (_, sl, shape, _) in ordering.items()}) for row in flat
    ])
    _, k_hat = az.psislw(log_p - log_q)
    return float(k_hat)
