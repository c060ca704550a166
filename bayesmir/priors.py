"""Priors of the Bayesian isomiR model: one documented, overridable set shared by every method.

Choices (all on the natural-log scale of counts):

- ``intercept_sd = 10``: the intercept is the mean isomiR log rate per 1e4 library reads;
  vague on purpose.
- ``beta_sd = 2.5``: other fixed effects (log fold changes), weakly informative
  (a 150-fold change at 2 SD), as bambi's default scale for standardised effects.
- ``sd_isomir_scale = 3``: half-normal scale of the SD of isomiR intercepts; real data
  show 1.5-3 (isomiRs of one miRNA differ by orders of magnitude).
- ``sd_slope_scale = 1``: half-normal scale of the SD of isomiR-specific slopes. A
  half-normal keeps a finite, positive density at ``sd_slope = 0``, so the model can
  shrink to "no differential isomiR usage" and a Savage-Dickey density ratio at 0 is
  defined. A boundary-avoiding prior (gamma, lognormal) would forbid 0 and inflate the
  evidence for usage; a wider scale would favour 0 more (Lindley's paradox), so the
  Bayes factor depends on this scale and is reported with it.
- ``lkj_eta = 2``: LKJ prior on the isomiR intercept-slope correlation, mild shrinkage to 0.
- ``sd_sample_scale = 1``: half-normal scale of the per-sample effect SD.
- ``inv_sqrt_theta_scale = 1``: half-normal prior on ``1/sqrt(theta)``, ``theta`` the
  negative-binomial size (Stan's prior-choice recommendation): it shrinks towards the
  Poisson and keeps ``theta`` away from 0. DESeq2's dispersion is ``1/theta``, so this is a
  half-normal prior on the square root of DESeq2's dispersion.

Cross-miRNA pooling (``bayesmir.fit(..., pooling=True)``, nested Laplace only) replaces
two of these by normal priors on the log scale estimated from a first pass over all
miRNAs (empirical Bayes): ``log theta ~ N(pooled_log_theta_mean,
pooled_log_theta_sd)``, ``log sd_isomir[Intercept] ~ N(pooled_log_sd_isomir_mean,
pooled_log_sd_isomir_sd)`` and ``log sd_sample ~ N(pooled_log_sd_sample_mean,
pooled_log_sd_sample_sd)`` (per-sample effects such as RNA quality tend to be shared by
miRNAs; with few samples their SD is poorly identified per miRNA). NaN (the default)
means "not pooled".

These are the priors each miRNA is fitted with. By default (``shrinkage=True``,
:mod:`bayesmir.shrinkage`) the tables then use three priors learned across miRNAs, applied
exactly to the fitted mixtures: pooled half-normal scales in place of ``sd_slope_scale`` and
``sd_sample_scale`` and an adaptive scale mixture of normals for the fold changes in place of
``beta_sd``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Priors:
    """Prior scales of the isomiR mixed model; see the module docstring for the reasons."""

    intercept_sd: float = 10.0
    beta_sd: float = 2.5
    sd_isomir_scale: float = 3.0
    sd_slope_scale: float = 1.0
    sd_sample_scale: float = 1.0
    lkj_eta: float = 2.0
    inv_sqrt_theta_scale: float = 1.0
    pooled_log_theta_mean: float = math.nan
    pooled_log_theta_sd: float = math.nan
    pooled_log_sd_isomir_mean: float = math.nan
    pooled_log_sd_isomir_sd: float = math.nan
    pooled_log_sd_sample_mean: float = math.nan
    pooled_log_sd_sample_sd: float = math.nan

    @property
    def pooled(self) -> bool:
        """Whether cross-miRNA (empirical Bayes) priors are set."""
        means = (self.pooled_log_theta_mean, self.pooled_log_sd_isomir_mean, self.pooled_log_sd_sample_mean)
        return not all(math.isnan(mean) for mean in means)

    def coef_sd(self, coef_names) -> np.ndarray:
        """Prior SD of each fixed effect: ``intercept_sd`` for ``"Intercept"``, ``beta_sd`` otherwise."""
        return np.where(np.asarray(coef_names) == "Intercept", self.intercept_sd, self.beta_sd)

    def to_dict(self) -> dict[str, float]:
        """Plain dictionary, for saving with a run."""
        return asdict(self)
