"""Nested (marginal) Laplace: the fast path, INLA-style, validated against NUTS.

Why not a Gaussian around the joint mode: the joint mode of a hierarchical model is
degenerate in the variance parameters, and the probe (``../shared/notes/
inference-probe.md``) measured such intervals for ``beta`` off by a factor of 6-10.
Instead, per miRNA:

1. The latent field (fixed effects ``beta`` with their Gaussian prior, sample effects,
   isomiR effects) is integrated out by Laplace's method (:mod:`bayesmir.marginal`,
   lme4's approximation), giving ``log p(y | psi)`` for the few hyperparameters ``psi``
   (log SDs, correlation, log theta; :mod:`bayesmir.inference.hyper`).
2. The mode of ``log p(y | psi) + log p(psi)`` is found with L-BFGS-B (JAX gradients)
   and its curvature by forward differences of the gradient.
3. ``n_hyper`` points (twice as many for a miRNA with at most :data:`FEW_ISOMIRS`
   isomiRs, whose points are the cheapest and whose ``sd_slope`` is the least identified)
   on a fixed design — Sobol points, Owen-scrambled with the fixed seed ``design_seed``,
   mapped through a proposal at that mode: a Student-t (4 df) with a scale per axis and
   side (skewness), mixed with a 2.5x wider copy (defensive) — weighted by importance
   sampling, ``w = p(y | psi) p(psi) / q(psi)``; if the Pareto ``k`` exceeds 0.5 a second
   stage (its own fixed scramble) is placed around the weighted mean and covariance of
   the first (adaptive). The weights are Pareto-smoothed (PSIS) and their shape ``k`` is
   the reliability diagnostic (``k > 0.7``: not converged; a negative ``k`` means tails
   lighter than exponential, which is fine). The mean weight estimates the marginal
   likelihood ``p(y)`` (``posterior.attrs["log_marginal_likelihood"]``, its standard error
   ``sqrt(sum W^2 - 1/K)`` in ``"log_marginal_likelihood_se"``), hence the Bayes factor of
   the full against the reduced model.

   The design does not depend on ``seed``: the same data give the same weights, mixture,
   tables, Bayes factors and calls. What remains is an integration error, measured as
   the spread over independent scrambles (``design_seed``) and reported as SE columns.
   Why ``n_hyper = 128`` (bundled example, 16 miRNAs, 5 scrambles; max over miRNAs of
   the SD between scrambles; ``n_hyper`` 32 / 64 / 128): log BF 0.33 / 0.25 / 0.14,
   lfsr 0.021 / 0.012 / 0.008, 95% interval ends 0.13 / 0.09 / 0.05 (posterior SDs
   0.16-0.73); on ``bayesmir.simulate(16, 10, seed=5)`` (4 scrambles, 32 / 128): log BF
   0.18 / 0.16, lfsr 0.021 / 0.005, interval ends 0.14 / 0.03. 128 points cost about
   1.7x the time of 32 per fit.
4. The posterior of ``beta`` is the Gaussian mixture over the design points:
   ``sum_k w_k N(m_k, s_k^2)``, ``m_k`` and ``s_k`` the mean and marginal SD of ``beta``
   in the latent Gaussian at ``psi_k``. It is stored as the ``mixture`` group
   (:data:`~bayesmir.mixture.MIXTURE_GROUP`: ``weight`` (point), ``beta_mean``,
   ``beta_sd`` (point, coef), ``psi`` (point, psi_dim)) and the tables summarise it
   exactly (:mod:`bayesmir.mixture`). The uncertainty of ``sd_slope`` (often poorly
   identified) thus widens ``beta``'s intervals instead of being plugged in at an
   estimate as a Wald interval does.
5. ``draws`` posterior draws, for plots and isomiR effects (these depend on ``seed``):
   ``psi`` resampled by weight (systematic resampling), then ``beta`` and the random
   effects from the latent Gaussian given that ``psi``.

Known limits: the latent field is Gaussian given ``psi`` (fine with hundreds of
counts; cruder for isomiRs with counts near 0), and ``psi`` is covered by importance
sampling from one mode (a multimodal hyperposterior shows up as a large ``k``).
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import xarray as xr
from scipy import optimize, special, stats

from bayesmir import marginal
from bayesmir.inference import hyper, laplace_posterior
from bayesmir.inference.base import Inference, data_groups, diagnostics_row
from bayesmir.inference.laplace_programs import PRIOR_FIELDS, log_posterior_many, objective
from bayesmir.mixture import MIXTURE_GROUP
from bayesmir.problem import MirnaProblem

WIDE_SCALE = 2.5  # scale of the defensive mixture component
FEW_ISOMIRS = 4  # miRNAs with at most this many isomiRs get 2 x n_hyper points (module docstring)
DEFAULTS = {"draws": 1000, "n_hyper": 128, "t_df": 4.0, "wide_fraction": 0.2, "max_pareto_k": 0.7,
            "max_iterations": 200, "design_seed": 0}


class LaplaceInference(Inference):
    """Nested Laplace with a fixed importance-sampling design over the hyperparameters (module docstring).

    Options (keyword arguments)
    ---------------------------
    draws : int
        Posterior draws returned (one chain); default 1000.
    n_hyper : int
        Design points for the hyperparameters, a power of 2 (Sobol points); default 128
        per stage (module docstring), doubled for miRNAs with at most :data:`FEW_ISOMIRS`
        isomiRs.
    design_seed : int
        Scramble of the Sobol design (fixed, so results do not depend on ``seed``; vary it
        only to measure the integration error); default 0.
    t_df : float
        Degrees of freedom of the Student-t proposal; default 4.
    max_pareto_k : float
        Above this PSIS ``k`` the fit is flagged; default 0.7.
    max_iterations : int
        L-BFGS-B iterations for the hyperparameter mode; default 200.
    """

    name = "laplace"
    process_parallel = True
    fits_reduced_by_default = True
    needs_x64 = True
    bucket_base = marginal.BUCKET_BASE

    def shape_key(self, problem: MirnaProblem) -> tuple:
        """What the compiled programs are specific to: the engine's padded size (:func:`marginal.padded_size`)."""
        n, J = problem.counts.shape
        return (n, marginal.padded_size(J, n), problem.X.shape[1], problem.Z.shape[1], self.family)

    def __init__(self, family: str = "nb", priors=None, **options) -> None:
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown laplace options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        super().__init__(family, priors, **{**DEFAULTS, **options})
        n_hyper = self.options["n_hyper"]
        if not (isinstance(n_hyper, int | np.integer) and n_hyper >= 8 and n_hyper & (n_hyper - 1) == 0):
            raise ValueError(f"laplace option n_hyper must be a power of 2 (Sobol points), at least 8, not {n_hyper!r}")
        # numpy, not jnp: the copy pickled to a worker process stays float64
        self._priors_vec = np.asarray([getattr(self.priors, f) for f in PRIOR_FIELDS], dtype=float)

    # ------------------------------------------------------------------ steps
    def pack(self, problem: MirnaProblem) -> marginal.Arrays:
        """Padded arrays with each coefficient's prior SD (intercept vs others, as the PyMC model)."""
        return marginal.pack_problem(problem, self.priors.coef_sd(problem.coef_names))

    def hyper_mode(self, data: marginal.Arrays, q: int):
        """Mode of ``log p(psi | y)``: L-BFGS-B in coordinates scaled by the curvature at the start.

        Returns ``(psi, value, gradient, latent mode, scipy result)`` at the best point evaluated. A
        point where the inner Newton iterations fail (warm and cold start) gets a large
        finite value so the line search backs off.
        """
        cold = marginal.initial_latent(data, True)
        state = {"z": cold, "best": (-np.inf, None, None, cold)}

        def evaluate(psi):
            for z0 in (state["z"], cold):
                value, grad, mode, converged = objective(np.asarray(psi, dtype=float), data, z0, self._priors_vec, q,
                                                          self.family)
                if bool(converged) and np.isfinite(float(value)):
                    state["z"] = mode
                    if float(value) > state["best"][0]:
                        state["best"] = (float(value), np.array(psi, dtype=float), np.asarray(grad), mode)
                    return float(value), np.asarray(grad)
            return None, None

        start = hyper.initial_psi(q, self.family)
        start_value, start_grad = evaluate(start)
        if start_value is None:
            raise RuntimeError("the latent mode search failed at the starting hyperparameters")
        curvature = self._curvature(start, start_grad, data, state["z"], q)
        scale = 1.0 / np.sqrt(np.clip(np.abs(np.diag(curvature)), 1e-2, 1e6))
        lower, upper = (np.array(b) for b in zip(*_bounds(q, self.family)))

        def negative(x):
            value, grad = evaluate(start + scale * x)
            if value is None:
                return 1e10, np.zeros_like(x)
            return -value, -grad * scale

        result = optimize.minimize(
            negative, np.zeros_like(start), jac=True, method="L-BFGS-B",
            bounds=list(zip((lower - start) / scale, (upper - start) / scale)),
            # the mode only centres the proposal (the importance weights correct what is left), so
            # ~1e-3 posterior SDs suffice: 13% fewer evaluations than scipy's defaults, with the
            # log posterior at most 4e-4 lower on the 240 fits of bench_fit.py
            options={"maxiter": self.options["max_iterations"], "ftol": 1e-7, "gtol": 1e-3},
        )
        value, psi, grad, mode = state["best"]
        return psi, value, grad, mode, result

    def _curvature(self, psi: np.ndarray, grad: np.ndarray, data, mode, q: int) -> np.ndarray:
        """Hessian of the log posterior of ``psi`` by forward differences of its gradient ``grad``.

        One :func:`~bayesmir.inference.laplace_programs.objective` call per shifted point (the latent mode search starting from
        ``mode``): the same program as the optimiser's, so no other program to compile.
        """
        step = 1e-4
        grads = np.array([np.asarray(objective(psi + step * axis, data, mode, self._priors_vec, q,
                                                self.family)[1]) for axis in np.eye(psi.size)])
        hessian = (grads - grad).T / step
        return 0.5 * (hessian + hessian.T)

    def hyper_covariance(self, psi: np.ndarray, grad: np.ndarray, data, mode, q: int) -> np.ndarray:
        """Inverse negative Hessian of the log posterior at ``psi`` (flat directions capped at SD 10)."""
        eigenvalues, vectors = np.linalg.eigh(-self._curvature(psi, grad, data, mode, q))
        eigenvalues = np.clip(eigenvalues, 1e-2, None)
        return (vectors / eigenvalues) @ vectors.T

    def log_posterior(self, points: np.ndarray, data, anchor, q: int):
        """Log posterior (up to ``p(y)``) and latent mode at each row of ``points`` (:func:`~bayesmir.inference.laplace_programs.log_posterior_many`).

        The inner Newton iterations start from the anchor's latent mode extrapolated to each
        point, and again from the anchor's mode itself at the points where they failed.
        """
        values, modes, converged = self._log_posterior_chunks(points, data, anchor, q, True)
        retry = np.flatnonzero(~converged)
        if retry.size:
            again = self._log_posterior_chunks(points[retry], data, anchor, q, False)
            values[retry] = again[0]
            for leaf, new in zip(modes, again[1]):
                leaf[retry] = new
        return values, modes

    def _log_posterior_chunks(self, points, data, anchor, q, extrapolate: bool):
        """:func:`~bayesmir.inference.laplace_programs.log_posterior_many` in chunks of a fixed size, the last one padded with the anchor's
        ``psi`` (whose mode is known, so it costs one Newton step), so the probes of
        :meth:`proposal_axes` and the importance-sampling points share one compiled program per
        array shape. Returns numpy ``(values, modes, converged)``.
        """
        chunk = 1 << (2 * points.shape[1] - 1).bit_length()  # power of 2 >= the 2 d probes
        n = points.shape[0]
        padded = np.concatenate([points, np.broadcast_to(anchor[0], (-n % chunk, points.shape[1]))])
        outputs = [log_posterior_many(padded[i:i + chunk], data, np.asarray(anchor[0], dtype=float), anchor[1],
                                       extrapolate, self._priors_vec, q, self.family)
                   for i in range(0, padded.shape[0], chunk)]
        values = np.concatenate([np.asarray(value) for value, _, _ in outputs])[:n]
        modes = tuple(np.concatenate([np.asarray(part) for part in parts])[:n]
                      for parts in zip(*(mode for _, mode, _ in outputs)))
        converged = np.concatenate([np.asarray(flag) for _, _, flag in outputs])[:n]
        return values, modes, converged

    def proposal_axes(self, psi, covariance, value, data, mode, q):
        """Principal axes of the Gaussian at the mode and a scale per axis and side (skewness).

        The target is evaluated at +-2 SD along each axis; a side where it falls by less
        than the Gaussian's 2 log units gets a wider scale (INLA's skewness correction):
        e.g. ``log sd_slope`` has an exponential, not Gaussian, tail towards 0.
        """
        eigenvalues, axes = np.linalg.eigh(covariance)
        sd = np.sqrt(eigenvalues)
        d = psi.size
        steps = 2 * sd[:, None] * axes.T  # row i: 2 SD along axis i
        probes = np.concatenate([psi + steps, psi - steps])
        drop = value - self.log_posterior(probes, data, (psi, mode), q)[0]
        side_scale = 2.0 / np.sqrt(2.0 * np.clip(drop, 0.08, 50.0))  # 1 when the drop is Gaussian's 2
        return axes, sd, side_scale[:d], side_scale[d:]

    def n_points(self, n_isomirs: int) -> int:
        """Importance-sampling points per stage for a miRNA with ``n_isomirs`` isomiRs."""
        return self.options["n_hyper"] * (2 if n_isomirs <= FEW_ISOMIRS else 1)

    def importance_sample(self, psi, covariance, value, data, mode, q, n_points):
        """Importance sampling of ``psi`` on a fixed design: points, PSIS-smoothed log weights, k-hat,
        ``log p(y)`` and its SE, latent modes.

        Stage 1 uses the skewness-corrected split-t at the mode
        (:meth:`proposal_axes`). If its Pareto ``k`` exceeds 0.5, a second stage moves the
        proposal to the weighted mean and covariance of the first (adaptive importance
        sampling) and only the second stage is used.
        """
        axes, sd, up, down = self.proposal_axes(psi, covariance, value, data, mode, q)
        anchor = (psi, mode)
        stage = self._weighted_draws(psi, axes, sd, up, down, data, anchor, q, 0, n_points)
        if stage[2] > 0.5:
            weights = np.exp(stage[1] - special.logsumexp(stage[1]))
            centre = weights @ stage[0]
            spread = (stage[0] - centre).T @ ((stage[0] - centre) * weights[:, None])
            eigenvalues, axes = np.linalg.eigh(0.5 * (spread + covariance))
            ones = np.ones_like(eigenvalues)
            stage = self._weighted_draws(centre, axes, np.sqrt(eigenvalues), ones, ones, data, anchor, q, 1,
                                         n_points)
        return stage

    def _weighted_draws(self, centre, axes, sd, up, down, data, anchor, q, stage, K):
        """Points of the defensive split-t mixture and their PSIS-smoothed log weights.

        ``K`` Sobol points, Owen-scrambled with the fixed seed ``design_seed + stage`` (so the
        design, hence every number but the draws, is a function of the data alone), in ``d + 2`` dimensions give the Student-t draws (``d``
        normal quantiles over the square root of a chi-square quantile) and the mixture
        component (last coordinate). The proposal is ``(1 - wide) * t(scales) + wide * t(2.5 x scales)`` (Hesterberg's
        defensive mixture): the wide component covers funnels such as the correlation
        reverting to its prior when ``sd_slope`` is near 0, which keeps the weights bounded.
        ``anchor`` is ``(psi, latent mode)`` at the hyperparameter mode, from which the inner
        Newton iterations start (:func:`~bayesmir.inference.laplace_programs.log_posterior_many`).
        """
        d, K, df = centre.size, int(K), float(self.options["t_df"])
        wide = float(self.options["wide_fraction"])
        seed = int(self.options["design_seed"]) + stage
        uniform = stats.qmc.Sobol(d + 2, scramble=True, seed=seed).random_base2(K.bit_length() - 1)
        normals = special.ndtri(np.clip(uniform[:, :d], 1e-12, 1 - 1e-12))
        u = normals * np.sqrt(df / stats.chi2.ppf(uniform[:, d], df))[:, None]
        inflation = np.where(uniform[:, d + 1] < wide, WIDE_SCALE, 1.0)[:, None]
        side = np.where(u >= 0, up, down)
        points = centre + (u * inflation * side * sd) @ axes.T
        log_target, modes = self.log_posterior(points, data, anchor, q)
        z = u * inflation
        log_proposal = np.logaddexp(
            math.log1p(-wide) + _log_student_t(z, df),
            math.log(wide) + _log_student_t(z / WIDE_SCALE, df) - d * math.log(WIDE_SCALE),
        ) - np.sum(np.log(side * sd), axis=1)
        log_w = log_target - log_proposal
        finite = np.isfinite(log_w)
        log_evidence, evidence_se = _log_mean_and_se(np.where(finite, log_w, -np.inf))
        smoothed, k_hat = az.psislw(np.where(finite, log_w, -np.inf))
        return points, np.asarray(smoothed), float(k_hat), log_evidence, evidence_se, modes

    # ------------------------------------------------------------------ fit
    def fit_one(self, problem: MirnaProblem, seed: int):
        """Nested-Laplace posterior of one miRNA; see :meth:`Inference.fit_one`.

        Everything but the draws is a function of the data alone: the design over ``psi``
        is fixed (option ``design_seed``); ``seed`` only drives the resampling and the
        latent draws.
        """
        rng = np.random.default_rng(seed)
        data = self.pack(problem)
        q = problem.Z.shape[1]
        psi, value, grad, mode, result = self.hyper_mode(data, q)
        covariance = self.hyper_covariance(psi, grad, data, mode, q)
        points, log_w, k_hat, log_evidence, evidence_se, modes = self.importance_sample(
            psi, covariance, value, data, mode, q, self.n_points(problem.n_isomirs))
        weights = np.exp(log_w - special.logsumexp(log_w))
        params, gaussians, beta_mean, beta_sd = laplace_posterior.gaussians_at(points, modes, data, q, self.family)
        chosen = laplace_posterior.systematic_resample(weights, int(self.options["draws"]), rng)
        posterior = self.posterior_draws(problem, data, points, params, gaussians, chosen, q, rng)
        posterior.attrs = {"method": self.name, "family": self.family, "mirna": problem.mirna,
                           "log_marginal_likelihood": log_evidence, "log_marginal_likelihood_se": evidence_se}
        mixture = laplace_posterior.mixture_dataset(problem, weights, np.asarray(beta_mean), np.asarray(beta_sd), points)
        idata = az.InferenceData(posterior=posterior, **data_groups(problem), **{MIXTURE_GROUP: mixture})
        ess = float(1.0 / np.sum(weights**2))
        problems = []
        if not result.success:
            problems.append(f"hyperparameter optimiser: {result.message}")
        if not k_hat <= self.options["max_pareto_k"]:
            problems.append(f"Pareto k {k_hat:.2f} > {self.options['max_pareto_k']}")
        row = diagnostics_row(
            problem.mirna, self.name, converged=not problems, message="; ".join(problems), pareto_k=k_hat,
            ess_importance=ess, optimizer_status=str(result.status),
        )
        return idata, row

    def posterior_draws(self, problem, data, points, params, gaussians, chosen, q, rng) -> xr.Dataset:
        """Draws of every contract variable: hyperparameters resampled, latent field Gaussian given them.

        ``params`` and ``gaussians`` are the engine parameters and latent Gaussians at ``points``
        (:func:`~bayesmir.inference.laplace_posterior.gaussians_at`).
        """
        S, J = chosen.size, problem.n_isomirs
        normals_g = rng.standard_normal((S, gaussians.g.shape[1]))
        # drawn for the real isomiRs only, so the draws do not depend on the padding
        padded_size, q_size = gaussians.w.shape[1:]
        normals_w = np.zeros((S, padded_size, q_size))
        normals_w[:, :J] = rng.standard_normal((S, J, q_size))
        latent = laplace_posterior.latent_draws(params, gaussians, np.asarray(chosen), data, normals_g, normals_w)
        latent = {name: np.asarray(value) for name, value in latent.items()}
        latent["isomir_effect"] = latent["isomir_effect"][:, :J]
        values = hyper.constrained(points[chosen], q, self.family)
        return laplace_posterior.posterior_dataset(problem, latent, values, S)


def _log_mean_and_se(log_w: np.ndarray) -> tuple[float, float]:
    """``log mean(w)`` and its standard error ``sqrt(sum W_k^2 - 1/K)``, ``W`` the normalised weights
    (the delta method: the relative SE of a mean of ``K`` independent weights)."""
    if not np.isfinite(log_w).any():
        return -math.inf, math.nan
    total = special.logsumexp(log_w)
    normalised = np.exp(log_w - total)
    return float(total - math.log(log_w.size)), float(math.sqrt(max(normalised @ normalised - 1 / log_w.size, 0)))


def _bounds(q: int, family: str) -> list[tuple[float, float]]:
    """Box for ``psi``: SDs in [6e-6, 55], partial correlations within tanh(+-5), theta in [2.5e-3, 1e6]."""
    bounds = [(-12.0, 4.0)] * q + [(-5.0, 5.0)] * (q * (q - 1) // 2) + [(-12.0, 4.0)]
    return bounds + ([(-6.0, math.log(1e6))] if family == "nb" else [])


def _log_student_t(u: np.ndarray, df: float) -> np.ndarray:
    """Log density of a standard multivariate Student-t at the rows of ``u``."""
    d = u.shape[1]
    return (special.gammaln((df + d) / 2) - special.gammaln(df / 2) - 0.5 * d * math.log(df * math.pi)
            - 0.5 * (df + d) * np.log1p(np.sum(u**2, axis=1) / df))
