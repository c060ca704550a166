"""Exact summaries of a one-dimensional Gaussian mixture ``sum_k w_k N(m_k, s_k^2)``.

The nested Laplace method (:mod:`bayesmir.inference.laplace`) integrates the
hyperparameters on a fixed design of points ``psi_k`` with normalised weights ``w_k``;
given ``psi_k`` each coefficient is Gaussian, so its posterior is such a mixture. Every
summary here is computed from it exactly (quantiles by root finding on the CDF, the
highest-density interval by a one-dimensional minimisation) rather than from draws,
so it does not depend on a seed.

What is left is the integration error of the weights. It is reported, for every tail
quantity ``P = sum_k w_k p_k``, as the self-normalised importance-sampling standard
error ``sqrt(sum_k w_k^2 (p_k - P)^2)`` (treating the design as independent draws from
the proposal, which over-states the error of a quasi-random design), and for an
interval end ``x`` by the delta method, ``SE(F(x)) / f(x)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

MIXTURE_GROUP = "mixture"  # InferenceData group: weight (point), beta_mean/beta_sd (point, coef), psi
EB_GROUP = "mixture_eb"  # the same under empirical-Bayes priors (bayesmir.shrinkage), over (component, coef)
_BRACKET_SDS = 12.0  # quantile search bracket: every component's mean +- this many SDs


@dataclass(frozen=True)
class GaussianMixture:
    """Weights ``w`` (K,) summing to 1, component means ``m`` (K,) and SDs ``s`` (K,) > 0."""

    w: np.ndarray
    m: np.ndarray
    s: np.ndarray

    @classmethod
    def of(cls, weights, means, sds) -> GaussianMixture:
        """A mixture from array-likes; zero-weight components are dropped, weights renormalised."""
        w, m, s = (np.asarray(x, dtype=float).ravel() for x in (weights, means, sds))
        keep = w > 0
        if not keep.any() or not (np.all(np.isfinite(m[keep])) and np.all(s[keep] > 0)):
            raise ValueError("a mixture needs positive weights, finite means and positive SDs")
        return cls(w[keep] / w[keep].sum(), m[keep], s[keep])

    def mean(self) -> float:
        return float(self.w @ self.m)

    def sd(self) -> float:
        variance = self.w @ (self.s**2 + self.m**2) - self.mean() ** 2
        return float(math.sqrt(max(variance, 0.0)))

    def component_cdf(self, x: float) -> np.ndarray:
        return special.ndtr((x - self.m) / self.s)

    def cdf(self, x: float) -> float:
        return float(self.w @ self.component_cdf(x))

    def pdf(self, x: float) -> float:
        return float(self.w @ (stats.norm.pdf((x - self.m) / self.s) / self.s))

    def quantile(self, p: float) -> float:
        """The ``x`` with ``cdf(x) = p``, by Brent's method on a bracket that holds every component."""
        low = float(np.min(self.m - _BRACKET_SDS * self.s))
        high = float(np.max(self.m + _BRACKET_SDS * self.s))
        return float(optimize.brentq(lambda x: self.cdf(x) - p, low, high, xtol=1e-10, rtol=1e-12))

    def eti(self, level: float) -> tuple[float, float]:
        """Equal-tailed interval of mass ``level``."""
        tail = (1.0 - level) / 2.0
        return self.quantile(tail), self.quantile(1.0 - tail)

    def hdi(self, level: float) -> tuple[float, float]:
        """Shortest interval of mass ``level`` (the highest-density interval of a unimodal mixture)."""
        slack = 1.0 - level
        result = optimize.minimize_scalar(
            lambda a: self.quantile(a + level) - self.quantile(a), bounds=(slack * 1e-6, slack * (1 - 1e-6)),
            method="bounded", options={"xatol": 1e-7},
        )
        return self.quantile(result.x), self.quantile(result.x + level)

    def lfsr(self) -> float:
        """Local false sign rate ``min(P(x <= 0), P(x >= 0))``."""
        below = min(max(self.cdf(0.0), 0.0), 1.0)  # weights summing to 1 + 1e-16 must not give lfsr < 0
        return float(min(below, 1.0 - below))

    def p_abs_gt(self, delta: float) -> float:
        """``P(|x| > delta)``."""
        return float(self.w @ (special.ndtr((-delta - self.m) / self.s) + special.ndtr((self.m - delta) / self.s)))

    # ------------------------------------------------------------------ integration error
    def se_of(self, p_k: np.ndarray) -> float:
        """Self-normalised importance-sampling SE of ``sum_k w_k p_k`` (module docstring)."""
        total = self.w @ p_k
        return float(math.sqrt(self.w**2 @ (p_k - total) ** 2))

    def quantile_se(self, x: float) -> float:
        """SE of the quantile at ``x`` by the delta method, ``SE(F(x)) / f(x)``."""
        return self.se_of(self.component_cdf(x)) / max(self.pdf(x), 1e-300)

    def lfsr_se(self) -> float:
        return self.se_of(self.component_cdf(0.0))

    def p_abs_gt_se(self, delta: float) -> float:
        return self.se_of(special.ndtr((-delta - self.m) / self.s) + special.ndtr((self.m - delta) / self.s))


def p_abs_column(delta: float) -> str:
    """Column name of ``P(|beta| > delta)``, the threshold in it: ``p_abs_gt_0.405`` for log 1.5."""
    return f"p_abs_gt_{delta:.3f}"


def summarise_mixture(mixture: GaussianMixture, level: float, delta: float) -> dict[str, float]:
    """The summary columns of :meth:`bayesmir.results.FitResult.mirna_table` from a mixture.

    Returns
    -------
    dict
        ``estimate`` (mean), ``sd``, ``median``, ``ci_low``/``ci_high`` (equal-tailed, mass
        ``level``) and their SEs, ``hdi_low``/``hdi_high``, ``lfsr`` and ``lfsr_se``,
        ``P(|beta| > delta)`` (:func:`p_abs_column`) and its SE.
    """
    low, high = mixture.eti(level)
    hdi_low, hdi_high = mixture.hdi(level)
    p_abs = p_abs_column(delta)
    return {
        "estimate": mixture.mean(), "sd": mixture.sd(), "median": mixture.quantile(0.5),
        "ci_low": low, "ci_high": high, "ci_low_se": mixture.quantile_se(low),
        "ci_high_se": mixture.quantile_se(high), "hdi_low": hdi_low, "hdi_high": hdi_high,
        "lfsr": mixture.lfsr(), "lfsr_se": mixture.lfsr_se(),
        p_abs: mixture.p_abs_gt(delta), f"{p_abs}_se": mixture.p_abs_gt_se(delta),
    }
