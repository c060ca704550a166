"""Cross-miRNA pooling: empirical-Bayes priors from a first pass over every miRNA."""

from __future__ import annotations

import dataclasses

import numpy as np

from bayesmir.errors import InputError
from bayesmir.priors import Priors

MIN_POOLED = 5  # converged miRNAs needed to estimate a pooled prior


def pooled_priors(first, priors: Priors, family: str = "nb") -> Priors:
    """Empirical-Bayes priors from a first pass: normals on ``log theta``, ``log sd_isomir[0]``, ``log sd_sample``.

    Centre: the median over converged miRNAs of each one's posterior median; scale:
    1.4826 x the median absolute deviation (the SD for normal data), at least 0.1. The
    spread of estimates includes their estimation error, so the pooled prior is a little
    wider than the population it estimates (conservative).

    Raises
    ------
    InputError
        Fewer than :data:`MIN_POOLED` converged miRNAs.
    """
    converged = set(first.diagnostics.loc[first.diagnostics["converged"], "miRNA"])
    posteriors = [idata.posterior for name, idata in first.posteriors.items() if name in converged]
    if len(posteriors) < MIN_POOLED:
        raise InputError(f"pooling needs at least {MIN_POOLED} converged miRNAs, the first pass has "
                         f"{len(posteriors)}; fit with pooling=False")

    def centre_and_scale(values):
        values = np.log(np.asarray(values, dtype=float))
        centre = float(np.median(values))
        return centre, max(0.1, 1.4826 * float(np.median(np.abs(values - centre))))

    sd_isomir = centre_and_scale([float(p["sd_isomir"].isel(re_term=0).median()) for p in posteriors])
    sd_sample = centre_and_scale([float(p["sd_sample"].median()) for p in posteriors])
    updates = {"pooled_log_sd_isomir_mean": sd_isomir[0], "pooled_log_sd_isomir_sd": sd_isomir[1],
               "pooled_log_sd_sample_mean": sd_sample[0], "pooled_log_sd_sample_sd": sd_sample[1]}
    if family == "nb":
        log_theta = centre_and_scale([float(p["theta"].median()) for p in posteriors])
        updates.update(pooled_log_theta_mean=log_theta[0], pooled_log_theta_sd=log_theta[1])
    return dataclasses.replace(priors, **updates)
