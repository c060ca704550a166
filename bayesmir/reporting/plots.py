"""Figures of the HTML report, each returned as a matplotlib :class:`~matplotlib.figure.Figure`.

The caller owns the figure: show or save it, then close it (``plt.close(figure)``). The
report (:mod:`bayesmir.reporting.html`) draws under :func:`agg_backend` and encodes each
figure with :func:`bayesmir.reporting.html.figure_uri`, which closes it, so a report over
hundreds of miRNAs never accumulates open figures.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from bayesmir import calls
from bayesmir.log_base import natural_names, scale_label
from bayesmir.problem import problem_from_idata

SIGNIFICANT = "#c0392b"
NEUTRAL = "#7f8c8d"


@contextmanager
def agg_backend():
    """Draw with matplotlib's Agg backend, restoring the previous one afterwards.

    The switch is skipped while the caller has figures open (switching would close them);
    saving to PNG works under any backend.
    """
    previous = plt.get_backend()
    switch = previous.lower() != "agg" and not plt.get_fignums()
    if switch:
        plt.switch_backend("Agg")
    try:
        yield
    finally:
        if switch:
            plt.switch_backend(previous)


def volcano_plot(table: pd.DataFrame, q_threshold: float = 0.05) -> Figure:
    """Posterior mean log fold change against ``-log10 lfsr`` (red: the DE call of :mod:`bayesmir.calls`).

    ``table``: a ``mirna_table`` in any ``log_base`` (the axis names the base).
    """
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    table, base = natural_names(table)
    data = table.dropna(subset=["estimate", "lfsr"])
    floor = _lfsr_floor(data["lfsr"])
    height = -np.log10(np.clip(data["lfsr"].to_numpy(dtype=float), floor, 1.0))
    hit = calls.de_calls(data["qvalue"], data["converged"], q_threshold)
    axis.scatter(data["estimate"], height, s=14, c=np.where(hit, SIGNIFICANT, NEUTRAL), alpha=0.8)
    axis.axvline(0, color="black", lw=0.5)
    axis.set(xlabel=f"posterior mean log fold change ({scale_label(base)})", ylabel="-log10 lfsr",
             title=f"volcano ({int(hit.sum())} called DE: q < {q_threshold}, converged)")
    return figure


def ma_plot(table: pd.DataFrame, mean_log_count: pd.Series, q_threshold: float = 0.05) -> Figure:
    """Mean log2 counts per million against the posterior mean log fold change (``table`` in any base)."""
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    table, base = natural_names(table)
    data = table.assign(abundance=mean_log_count.reindex(table["miRNA"]).to_numpy()).dropna(
        subset=["estimate", "abundance"])
    hit = calls.de_calls(data["qvalue"], data["converged"], q_threshold)
    axis.scatter(data["abundance"], data["estimate"], s=14, c=np.where(hit, SIGNIFICANT, NEUTRAL), alpha=0.8)
    axis.axhline(0, color="black", lw=0.5)
    axis.set(xlabel="mean log2 counts per million", ylabel=f"posterior mean log fold change ({scale_label(base)})",
             title="MA plot")
    return figure


def _lfsr_floor(lfsr: pd.Series) -> float:
    """Where ``lfsr = 0`` (no draw of the other sign) is drawn: half the smallest positive one."""
    positive = lfsr[lfsr > 0]
    return float(positive.min()) / 2 if len(positive) else 1e-4


def chain_plot(idata: az.InferenceData) -> Figure:
    """Rank plots of ``beta`` and ``sd_isomir`` (≥ 2 chains), posterior densities otherwise.

    Rank plots (``az.plot_rank``) show mixing like trace plots but stay readable with
    many draws: every chain's histogram of ranks should be flat.
    """
    names = [name for name in ("beta", "sd_isomir") if name in idata.posterior.data_vars]
    rows = math.ceil(_n_panels(idata, names) / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if idata.posterior.sizes.get("chain", 1) >= 2:
            axes = az.plot_rank(idata, var_names=names, figsize=(10, 2.1 * rows))
        else:
            axes = az.plot_posterior(idata, var_names=names, hdi_prob=0.95, textsize=9,
                                     figsize=(11, 2.4 * rows))
    return np.ravel(axes)[0].figure


def _n_panels(idata: az.InferenceData, names: list[str]) -> int:
    posterior = idata.posterior
    return sum(int(np.prod([posterior.sizes[d] for d in posterior[n].dims[2:]] or [1])) for n in names)


def isomir_forest_plot(isomirs: pd.DataFrame, mirna_row: pd.Series) -> Figure:
    """IsomiR-specific log fold changes with 95% intervals, the miRNA's as a band (one base for both)."""
    isomirs, base = natural_names(isomirs)
    mirna_row = natural_names(mirna_row.to_frame().T)[0].iloc[0]
    rows = isomirs.sort_values("logfc_estimate")
    figure, axis = plt.subplots(figsize=(6, 0.9 + 0.28 * len(rows)))
    position = np.arange(len(rows))
    axis.axvspan(mirna_row["ci_low"], mirna_row["ci_high"], color="#aed6f1", alpha=0.5,
                 label="miRNA 95% interval")
    axis.axvline(mirna_row["estimate"], color="#2874a6", lw=1, label="miRNA mean")
    axis.errorbar(rows["logfc_estimate"], position,
                  xerr=[rows["logfc_estimate"] - rows["logfc_ci_low"], rows["logfc_ci_high"] - rows["logfc_estimate"]],
                  fmt="o", ms=4, color="black", lw=1, label="isomiR mean, 95% interval")
    axis.axvline(0, color="grey", lw=0.5, ls="--")
    axis.set_yticks(position, [_short(s) for s in rows["sequence"]], fontsize=7, family="monospace")
    axis.set(xlabel=f"log fold change ({scale_label(base)})", title="isomiR-specific log fold changes")
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18 - 1.0 / (3 + len(rows))),
                ncol=3, frameon=False)
    return figure


def _short(sequence: str, width: int = 28) -> str:
    return sequence if len(sequence) <= width else sequence[: width - 1] + "…"


def ppc_plot(idata: az.InferenceData, family: str = "nb", seed: int = 0, max_draws: int = 400) -> Figure:
    """Observed counts against posterior-predictive medians with 90% intervals (log1p axes)."""
    from bayesmir.likelihood import posterior_predictive_draws

    problem = problem_from_idata(idata)
    posterior = _thin(idata.posterior, max_draws)
    replicated = posterior_predictive_draws(posterior, problem, family, seed).values
    replicated = replicated.reshape(-1, *replicated.shape[2:])
    observed = problem.counts.astype(float)
    low, median, high = np.quantile(replicated, [0.05, 0.5, 0.95], axis=0)
    covered = float(np.mean((observed >= low) & (observed <= high)))
    figure, axis = plt.subplots(figsize=(5, 4.5))
    axis.errorbar(np.log1p(observed).ravel(), np.log1p(median).ravel(),
                  yerr=[np.log1p(median).ravel() - np.log1p(low).ravel(),
                        np.log1p(high).ravel() - np.log1p(median).ravel()],
                  fmt="o", ms=2.5, lw=0.5, alpha=0.5, color="#2874a6")
    top = float(max(np.log1p(observed).max(), np.log1p(high).max())) + 0.2
    axis.plot([0, top], [0, top], color="black", lw=0.7)
    axis.set(xlabel="observed log(1 + count)", ylabel="replicated log(1 + count)",
             title=f"posterior predictive: {covered:.0%} of cells in 90% interval")
    return figure


def _thin(posterior, max_draws: int):
    """At most ``max_draws`` draws in total, evenly spaced within each chain."""
    per_chain = max(1, max_draws // posterior.sizes.get("chain", 1))
    step = max(1, posterior.sizes["draw"] // per_chain)
    return posterior.isel(draw=slice(None, None, step))


def sd_slope_plot(idata: az.InferenceData, prior_scale: float) -> Figure | None:
    """Posterior of each isomiR slope SD against its half-normal prior; ``None`` without slopes."""
    terms = [str(t) for t in idata.posterior["re_term"].values[1:]]
    if not terms:
        return None
    figure, axes = plt.subplots(1, len(terms), figsize=(5 * len(terms), 3.5), squeeze=False)
    for axis, term in zip(axes[0], terms):
        draws = np.asarray(idata.posterior["sd_isomir"].sel(re_term=term).values, float).ravel()
        upper = max(float(np.quantile(draws, 0.995)), 2.5 * prior_scale)
        grid = np.linspace(0, upper, 200)
        axis.hist(draws, bins=40, range=(0, upper), density=True, color="#aed6f1", label="posterior")
        axis.plot(grid, stats.halfnorm.pdf(grid, scale=prior_scale), color="#c0392b",
                  label=f"prior HalfNormal({prior_scale:g})")
        axis.set(xlabel=f"sd_slope ({term})", ylabel="density", title="isomiR slope SD")
        axis.legend(fontsize=7)
    return figure


def estimate_scatter(merged: pd.DataFrame) -> Figure:
    """Bayesian posterior mean against frequentist estimate, both 95% intervals."""
    figure, axis = plt.subplots(figsize=(5.5, 5))
    data = merged.dropna(subset=["estimate_bayes", "estimate_freq"])
    axis.errorbar(data["estimate_freq"], data["estimate_bayes"],
                  xerr=_half_widths(data, "estimate_freq", "ci_low_freq", "ci_high_freq"),
                  yerr=_half_widths(data, "estimate_bayes", "ci_low_bayes", "ci_high_bayes"),
                  fmt="o", ms=3, lw=0.5, alpha=0.6, color="#2874a6")
    span = _span(data[["estimate_freq", "estimate_bayes"]].to_numpy())
    axis.plot(span, span, color="black", lw=0.7)
    axis.set(xlabel="frequentist estimate (95% CI)", ylabel="posterior mean (95% interval)",
             title="log fold change: Bayesian vs frequentist")
    return figure


def _half_widths(data: pd.DataFrame, centre: str, low: str, high: str) -> np.ndarray:
    lower = (data[centre] - data[low]).clip(lower=0).fillna(0)
    upper = (data[high] - data[centre]).clip(lower=0).fillna(0)
    return np.vstack([lower.to_numpy(float), upper.to_numpy(float)])


def _span(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [-1.0, 1.0]
    return [float(finite.min()), float(finite.max())]


def slope_evidence_plot(merged: pd.DataFrame) -> Figure:
    """Log Bayes factor (slopes vs none) against the LRT p-value (log10)."""
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    data = merged.dropna(subset=["log_bayes_factor", "lrt_p"])
    pvalue = np.clip(data["lrt_p"].to_numpy(float), 1e-300, 1.0)
    axis.scatter(-np.log10(pvalue), data["log_bayes_factor"], s=14, alpha=0.7, color="#2874a6")
    axis.axvline(-math.log10(0.05), color="grey", lw=0.6, ls="--")
    axis.axhline(math.log(3.0), color="grey", lw=0.6, ls="--")
    axis.set(xlabel="-log10 LRT p (mixture)", ylabel="log Bayes factor (slopes vs none)",
             title="isomiR-specific slopes: evidence")
    return figure
