"""NUTS with nutpie: compile the model once per shape bucket, swap each miRNA's data in.

The model's parameter shapes are fixed at compile time, so the isomiR dimension is
padded to a bucket size (powers of two, at least 4) and a mask removes padded
isomiRs from the likelihood (see :mod:`bayesmir.model`). One compiled model then
serves every miRNA with the same (samples, bucket, coefficients, random-effect
terms, family); ``compiled.with_data(...)`` swaps the counts, mask, offset and
designs. Padded isomiRs are dropped from the returned ``InferenceData``. Compiled
models are cached for the whole process (:func:`clear_compiled_cache` forgets them),
so repeated fits in one session compile nothing.

Without nutpie, ``pm.sample`` on an unpadded model is used (slower: one pytensor
compile per miRNA).

Convergence rule (``converged``): over ``beta``, ``sd_isomir``, ``sd_sample`` and
``theta``, R-hat (rank-normalised, split) below ``max_rhat`` (1.01), bulk and
tail ESS at least ``min_ess_per_chain`` (100) times the number of chains (Vehtari et
al. 2021's recommendation), and no divergent transition. ``message`` names every
rule that failed.

Slopes and extension (``benchmarks/results/nuts_failing_probe.md``): miRNAs whose isomiR
slopes differ by more than their standard errors get centred slopes with the slope coefficient drawn
from its exact conditional (:func:`slope_parameterisation`, :func:`bayesmir.model._centred_slopes`);
on 8 true-slope miRNAs of the simulation that failed non-centred, all converged with bulk ESS of
``beta`` above 4,000 and half the leapfrog steps. A fit that still misses the rule is extended
(:meth:`NutsInference.fit_one`).

Cost per step: the likelihood is written out for NUTS (:func:`bayesmir.model._log_likelihood`,
38 vs 59 ns per cell for PyMC's NB) and the intercept is drawn given the isomiR levels
(:func:`bayesmir.model._fixed_effects`). Together they took the full model on the 120 miRNAs of
``benchmarks/bench_fit.py`` (4 x (1,000 + 1,000)) from 1,293 s to 858 s, 63 then 65 fits
converged. Tuning: 500 steps per chain (nutpie's own default is 300; its mass matrix adapts from
gradients and settles early). ``benchmarks/bench_nuts_options.py`` (16 miRNAs, 4 per isomiR
bucket, full model): 500 tuning steps took 85 s with 10 fits converged, 1,000 took 112 s with 11
(the failures: R-hat 1.011-1.02 or ESS just under 400, on miRNAs with 2-4 isomiRs or with slopes
and 23-27 isomiRs), and ``beta`` moved by at most 0.16 posterior SD (Monte Carlo noise). Not
kept: ``target_accept`` 0.95, 42 s but 553 divergent transitions (9 converged). All 120 with 4 x
(1,000 + 500): 527-552 s (1.5-1.6x faster than glmer.nb's full + reduced 853 s), 71 converged.

Cost (first 12 miRNAs of the 39-sample simulation, full + reduced model, 4 x (1,000 + 1,000)
draws, seed 1, counted in leapfrog steps, which do not depend on machine load): with the sample
and slope SDs as signed scales (:mod:`bayesmir.model`), 7.77 M steps, 20/24 fits converged
(full 8/12, reduced 12/12), median min-ESS per 1,000 steps 4.0; with log-transformed half-normal
SDs, 9.44 M steps, 15/24 (full 5/12, reduced 10/12), 1.5. Tried and not kept: centred sample
effects (``tau_i`` itself as the parameter: ``sd_sample`` tail ESS 145 vs 295 on hsa-miR-9000,
as a sample's level is pinned by only a few isomiRs about as tightly as by its prior); partial
centring (tail ESS 71); 4 x (500 + 500) draws (3/8 fits converged vs 7/8); nutpie's
low-rank mass matrix adaptation (with signed scales, first 9 full fits: 5/9 converged vs 6/9,
+5% steps; it did help the log-scale model, 15/20 vs 12/20 at +11% steps).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import arviz as az
import numpy as np
import xarray as xr

from bayesmir.inference.base import (
    Inference,
    data_groups,
    diagnostics_row,
    hyperparameter_names,
)
from bayesmir.model import (
    POSTERIOR_VARIABLES,
    build_model,
    drop_padding,
    model_data,
    pointwise_log_likelihood,
    posterior_predictive_draws,
)
from bayesmir.problem import MirnaProblem

DEFAULTS = {
    "draws": 1000,
    "tune": 500,
    "chains": 4,
    "cores": None,
    "target_accept": None,
    "max_rhat": 1.01,
    "min_ess_per_chain": 100,
    "log_likelihood": True,
    "posterior_predictive": False,
    "slopes": "auto",
    "extend": 2,
}

#: Parameterisations of the isomiR slopes (:func:`bayesmir.model.build_model`'s ``slope_centred``).
SLOPES = ("auto", "centred", "non-centred")


#: Compiled nutpie models shared by every NutsInference of the process, keyed by shape and priors.
_COMPILED: dict[tuple, object] = {}


def clear_compiled_cache() -> None:
    """Forget every compiled model (the next fit of each bucket compiles again)."""
    _COMPILED.clear()


#: Measured on the 39-sample simulation (``../shared/anchors/sim_monocyte_scale``), where sd_slope
#: sits near 0 with 3-6 isomiRs: at 0.9-0.95 tail ESS was 36-241 of 4,000 draws with R-hat up to
#: 1.05; at 0.99, 334-695 with no divergences. The probe measured 21-43 divergences at nutpie's 0.8.
#: Re-measured after the signed-scale parameterisation (:func:`bayesmir.model._signed_scale`), first
#: 9 miRNAs, full + reduced: 0.95 halves the leapfrog steps (3.0 M vs 5.8 M) and keeps ESS, but 6 of
#: 18 fits had 1-15 divergent transitions (12/18 converged vs 15/18 at 0.99), so 0.99 stays.
DEFAULT_TARGET_ACCEPT = 0.99

#: ``target_accept`` of an extension round after divergent transitions (:meth:`NutsInference.fit_one`).
#: On the simulation's hsa-miR-9007 (2 isomiRs, divergences where the slope SD is large): 5
#: divergent transitions at 0.99, none at 0.999.
EXTENSION_TARGET_ACCEPT = 0.999


def nutpie_available() -> bool:
    """Whether nutpie (and numba) can be imported."""
    try:
        import nutpie  # noqa: F401
    except ImportError:
        return False
    return True


class NutsInference(Inference):
    """NUTS (nutpie, numba backend), compile once per shape bucket.

    Options (keyword arguments)
    ---------------------------
    draws, tune, chains : int
        Per chain; default 1000, 500, 4 (module docstring: why 500 tuning steps).
    cores : int, optional
        Cores for the chains; default all available (nutpie's default).
    target_accept : float, optional
        Default :data:`DEFAULT_TARGET_ACCEPT` (0.99).
    max_rhat, min_ess_per_chain : float
        Convergence thresholds (module docstring).
    slopes : {"auto", "centred", "non-centred"}
        How the isomiR slopes are sampled; ``"auto"`` (default) decides per miRNA from the
        data (:func:`slope_parameterisation`).
    extend : int
        Extra rounds of ``chains`` chains for a fit that misses the rule (default 2;
        :meth:`fit_one`).
    log_likelihood : bool
        Add the pointwise ``log_likelihood`` group (for PSIS-LOO); default True.
    posterior_predictive : bool
        Add replicated counts (numpy, from the posterior draws); default False.
    backend : {"nutpie", "pymc"}
        Default ``"nutpie"`` when importable.
    """

    name = "nuts"

    def __init__(self, family: str = "nb", priors=None, **options) -> None:
        unknown = set(options) - set(DEFAULTS) - {"backend"}
        if unknown:
            raise TypeError(f"unknown NUTS options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        if options.get("slopes", "auto") not in SLOPES:
            raise ValueError(f"slopes must be one of {SLOPES}, not {options['slopes']!r}")
        super().__init__(family, priors, **{**DEFAULTS, **options})
        self.options.setdefault("backend", "nutpie" if nutpie_available() else "pymc")
        self.n_compiles = 0  # compiles done by this instance (the cache is process-wide)

    # ------------------------------------------------------------------ compile once
    def prepare(self, problems: Sequence[MirnaProblem]) -> None:
        """Compile one model per distinct shape bucket among ``problems``."""
        if self.options["backend"] != "nutpie":
            return
        for problem in problems:
            self.compiled_model(problem)

    def compiled_model(self, problem: MirnaProblem):
        """The compiled nutpie model of ``problem``'s bucket with its data swapped in."""
        import nutpie

        key = self.shape_key(problem)
        centred = self.slope_centred(problem)
        cache_key = (key, centred, tuple(sorted(self.priors.to_dict().items())))
        if cache_key not in _COMPILED:
            model = build_model(problem, self.priors, self.family, n_isomirs=key[1], slope_centred=centred)
            names = [v for v in POSTERIOR_VARIABLES if v in model.named_vars]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                _COMPILED[cache_key] = nutpie.compile_pymc_model(model, var_names=names)
            self.n_compiles += 1
        return _COMPILED[cache_key].with_data(**model_data(problem, key[1]))

    def slope_centred(self, problem: MirnaProblem) -> bool:
        """Whether ``problem``'s isomiR slopes are sampled centred (option ``slopes``)."""
        if len(problem.re_names) != 2:
            return False
        if self.options["slopes"] == "auto":
            return slope_parameterisation(problem) == "centred"
        return self.options["slopes"] == "centred"

    # ------------------------------------------------------------------ fitting
    def fit_one(self, problem: MirnaProblem, seed: int) -> tuple[az.InferenceData, dict]:
        """Sample one miRNA's posterior; see :meth:`Inference.fit_one`.

        A fit that misses the convergence rule gets up to ``extend`` more rounds of ``chains``
        chains, each with its own tuning and a seed derived from ``seed``
        (:func:`extension_seed`). After divergent transitions the round is a fresh run at
        :data:`EXTENSION_TARGET_ACCEPT` that replaces the draws so far (draws near a
        divergence are suspect; a smaller step is the remedy); otherwise (R-hat or ESS) its
        chains are pooled with the earlier ones, and the ESS threshold stays
        ``min_ess_per_chain * chains``. The message then says what was done and, if the rule
        still fails, why.
        """
        sample = self._sample_nutpie if self.options["backend"] == "nutpie" else self._sample_pymc
        target = self.options["target_accept"] or DEFAULT_TARGET_ACCEPT
        parts = [sample(problem, seed, target)]
        diagnostics = self.diagnostics(self.assemble_draws(problem, parts), problem.mirna)
        done = []
        for round_ in range(1, self.options["extend"] + 1):
            if diagnostics["converged"]:
                break
            if diagnostics["divergences"]:
                target = max(target, EXTENSION_TARGET_ACCEPT)
                parts = [sample(problem, extension_seed(seed, round_), target)]
                done.append(f"rerun at target_accept {target}")
            else:
                parts.append(sample(problem, extension_seed(seed, round_), target))
                done.append(f"extended to {sum(part[0].sizes['chain'] for part in parts)} chains")
            diagnostics = self.diagnostics(self.assemble_draws(problem, parts), problem.mirna)
        diagnostics["message"] = "; ".join(filter(None, [*done, diagnostics["message"]]))
        pooled = self.assemble_draws(problem, parts)
        return self.assemble(problem, pooled.posterior, pooled.sample_stats, seed), diagnostics

    def assemble_draws(self, problem: MirnaProblem, parts: list) -> az.InferenceData:
        """Posterior (padding dropped) and sampler statistics of the pooled runs ``parts``."""
        posteriors = [drop_padding(posterior, problem.sequences) for posterior, _ in parts]
        pooled = xr.concat(_renumbered(posteriors), dim="chain")
        stats = xr.concat(_renumbered([_clean_stats(stats) for _, stats in parts]), dim="chain")
        return az.InferenceData(posterior=pooled, sample_stats=stats)

    def _sample_nutpie(self, problem: MirnaProblem, seed: int, target: float):
        import nutpie

        compiled = self.compiled_model(problem)
        trace = nutpie.sample(
            compiled, draws=self.options["draws"], tune=self.options["tune"],
            chains=self.options["chains"], cores=self.options["cores"], seed=seed,
            save_warmup=False, progress_bar=False, target_accept=target,
        )
        return trace.posterior, trace.sample_stats

    def _sample_pymc(self, problem: MirnaProblem, seed: int, target: float):
        import pymc as pm

        model = build_model(problem, self.priors, self.family, slope_centred=self.slope_centred(problem))
        with model:
            trace = pm.sample(
                draws=self.options["draws"], tune=self.options["tune"],
                chains=self.options["chains"], cores=1, random_seed=seed,
                target_accept=target, progressbar=False, compute_convergence_checks=False,
            )
        return trace.posterior, trace.sample_stats

    def assemble(
        self, problem: MirnaProblem, posterior: xr.Dataset, stats: xr.Dataset, seed: int
    ) -> az.InferenceData:
        """InferenceData of the pooled draws (:meth:`assemble_draws`): coords, data, likelihood groups."""
        posterior = posterior.assign_coords(
            sample=list(problem.samples), coef=list(problem.coef_names),
            re_term=list(problem.re_names),
        )
        if "re_term_bis" in posterior.dims:
            posterior = posterior.assign_coords(re_term_bis=list(problem.re_names))
        posterior.attrs = {"method": self.name, "family": self.family, "mirna": problem.mirna}
        groups = {"posterior": posterior, "sample_stats": stats, **data_groups(problem)}
        if self.options["log_likelihood"]:
            groups["log_likelihood"] = pointwise_log_likelihood(posterior, problem, self.family).to_dataset()
        if self.options["posterior_predictive"]:
            groups["posterior_predictive"] = posterior_predictive_draws(
                posterior, problem, self.family, seed
            ).to_dataset()
        return az.InferenceData(**groups)

    def diagnostics(self, idata: az.InferenceData, mirna: str) -> dict:
        """Diagnostics row with the convergence rule of the module docstring."""
        names = hyperparameter_names(idata.posterior)
        rhat = _extreme(az.rhat(idata, var_names=names), max)
        ess_bulk = _extreme(az.ess(idata, var_names=names, method="bulk"), min)
        ess_tail = _extreme(az.ess(idata, var_names=names, method="tail"), min)
        divergences = int(idata.sample_stats["diverging"].sum())
        bfmi = float(np.min(az.bfmi(idata))) if "energy" in idata.sample_stats else math.nan
        min_ess = self.options["min_ess_per_chain"] * self.options["chains"]
        problems = []
        if not rhat < self.options["max_rhat"]:
            problems.append(f"R-hat {rhat:.3f} >= {self.options['max_rhat']}")
        if not min(ess_bulk, ess_tail) >= min_ess:
            problems.append(f"ESS {min(ess_bulk, ess_tail):.0f} < {min_ess:.0f}")
        if divergences:
            problems.append(f"{divergences} divergent transitions")
        return diagnostics_row(
            mirna, self.name, converged=not problems, message="; ".join(problems), rhat=rhat,
            ess_bulk=ess_bulk, ess_tail=ess_tail, divergences=divergences, bfmi=bfmi,
        )


#: Heterogeneity ``I^2`` of the isomiRs' raw log fold changes above which the slopes are
#: sampled centred (:func:`slope_parameterisation`).
CENTRED_SLOPES_I2 = 0.75
#: The threshold for two isomiRs, whose ``I^2`` rests on one degree of freedom: on the shared simulation
#: the two-isomiR miRNAs with slope SD 0.5 had ``I^2`` 0.90-0.997, those without 0.80 at most, and the two
#: no-slope ones that 0.75 sent to centred slopes failed with R-hat 1.1-1.7 in 135-142 s each
#: (non-centred: R-hat 1.013-1.015 in 24-38 s), while the three above 0.95 passed centred in 2-5 s
#: and failed non-centred (``results/nuts_probe_two_isomirs.md``, ``results/nuts_sim.csv``).
CENTRED_SLOPES_I2_TWO_ISOMIRS = 0.95


def slope_parameterisation(problem: MirnaProblem) -> str:
    """``"centred"`` or ``"non-centred"``: how NUTS samples ``problem``'s isomiR slopes.

    Centred slopes sample well when every isomiR's counts pin its slope down (slope SD well
    above the slopes' standard errors), non-centred ones when the slope SD may be near 0
    (measured on the 39-sample simulation: ``benchmarks/results/nuts_failing_probe.md``). The data
    decide, before any fit: each isomiR's raw log fold change ``d_j`` (mean difference
    between the groups of ``log((y + 0.5) / T)``, each sample's mean over isomiRs removed,
    which takes out the sample effects) with its standard error from the within-group
    variances, then Cochran's ``Q = sum((d_j - d)^2 / se_j^2)`` (``d`` the precision-weighted
    mean) and ``I^2 = (Q - (J - 1)) / Q``, the share of the spread of the ``d_j`` beyond their
    standard errors. Centred when ``I^2 > CENTRED_SLOPES_I2`` (0.75, a slope SD about 1.7
    standard errors). On the simulation, ``I^2`` was 0.66-1.0 (29 of 30 above 0.75) with true
    slope SD 0.5 and 0-0.80 (3 of 90 above 0.75) without slopes. Only for a 0/1 slope column.
    """
    slope = np.asarray(problem.Z, dtype=float)[:, 1]
    groups = [slope == value for value in np.unique(slope)]
    if len(groups) != 2 or problem.n_isomirs < 2 or min(g.sum() for g in groups) < 2:
        return "non-centred"
    log_rate = np.log(np.asarray(problem.counts, dtype=float) + 0.5) - np.asarray(problem.offset)[:, None]
    log_rate = log_rate - log_rate.mean(axis=1, keepdims=True)
    difference = log_rate[groups[1]].mean(axis=0) - log_rate[groups[0]].mean(axis=0)
    variance = sum(log_rate[g].var(axis=0, ddof=1) / g.sum() for g in groups)
    weight = 1.0 / np.maximum(variance, 1e-12)
    centre = np.sum(weight * difference) / np.sum(weight)
    q_statistic = float(np.sum(weight * (difference - centre) ** 2))
    i_squared = (q_statistic - (problem.n_isomirs - 1)) / q_statistic if q_statistic > 0 else 0.0
    threshold = CENTRED_SLOPES_I2_TWO_ISOMIRS if problem.n_isomirs == 2 else CENTRED_SLOPES_I2
    return "centred" if i_squared > threshold else "non-centred"


def extension_seed(seed: int, round_: int) -> int:
    """Seed of extension round ``round_`` (1, 2, ...) of a fit with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(round_)]).generate_state(1)[0])


def _renumbered(datasets: list[xr.Dataset]) -> list[xr.Dataset]:
    """The datasets with chains numbered on from one to the next (for pooling)."""
    out, start = [], 0
    for dataset in datasets:
        out.append(dataset.assign_coords(chain=np.arange(start, start + dataset.sizes["chain"])))
        start += dataset.sizes["chain"]
    return out


def _extreme(dataset: xr.Dataset, pick) -> float:
    values = np.concatenate([np.ravel(dataset[v].values) for v in dataset.data_vars])
    values = values[np.isfinite(values)]
    return float(pick(values)) if values.size else math.nan


def _clean_stats(stats: xr.Dataset) -> xr.Dataset:
    """Per-draw sampler statistics only (nutpie may add per-parameter arrays)."""
    keep = [v for v in stats.data_vars if set(stats[v].dims) <= {"chain", "draw"}]
    stats = stats[keep]
    if "logp" in stats and "lp" not in stats:
        stats = stats.rename({"logp": "lp"})
    return stats
