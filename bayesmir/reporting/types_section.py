"""The report's "isomiR effects by type" section: do 5'-shifted, seed-changing, 3'-extended...
isomiRs change differently from their miRNA?

From :func:`bayesmir.isomir_types.effects_by_type`: the study-wide table (``miRNA = "all"``:
per coefficient and isomiR class, the posterior of the mean over miRNAs of the classes' mean
deviation ``b_j`` from the miRNA's log fold change) and an interval plot per class. Shown when
the run has isomiR-specific slopes. The canonical sequences come from the input's annotation
(when the data are given), a reference (miRBase ``mature.fa``), or else -- a proxy, and the
section says so -- the most abundant sequence of each miRNA.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bayesmir.isomir_types import effects_by_type, fitted_isomirs, isomir_types

SOURCES = {
    "input": "the input's annotation",
    "reference": "the reference sequences given",
    "most_abundant": "a proxy: the most abundant sequence of each miRNA",
}


def types_section(fit, data=None, canonical=None, level: float | None = None) -> dict | None:
    """What the template shows of the isomiR types: canonical source, study table, figure.

    Parameters
    ----------
    fit : FitResult
    data : IsomirData, optional
        The data fitted (its ``canonical`` annotation, e.g. from mirtop, is used first).
    canonical : mapping or path, optional
        Canonical sequences by miRNA, or a miRBase ``mature.fa``.
    level : float, optional
        Interval mass; default the run's ``level``.

    Returns
    -------
    dict or None
        ``source`` (text), ``study`` (DataFrame, ``miRNA = "all"`` rows), ``per_mirna``
        (DataFrame) and ``figure`` (a matplotlib Figure), or ``None`` when no fit has
        isomiR-specific slopes.
    """
    if not any(len(idata.posterior["re_term"]) > 1 for idata in fit.posteriors.values()):
        return None
    isomirs = data if data is not None else fitted_isomirs(fit)
    level = float(fit.options.get("level", 0.95) if level is None else level)
    table = effects_by_type(fit, isomirs, reference=canonical, level=level)
    if table.empty:
        return None
    sources = isomir_types(isomirs, reference=canonical)["canonical_source"].value_counts()
    source = "; ".join(f"{SOURCES.get(name, name)} ({count} isomiRs)" for name, count in sources.items())
    study = table[table["miRNA"] == "all"].rename(columns={"n_isomirs": "n_mirnas"}).reset_index(drop=True)
    return {"source": source, "study": study, "per_mirna": table[table["miRNA"] != "all"].reset_index(drop=True),
            "figure": types_plot(study, level)}


def types_plot(study: pd.DataFrame, level: float = 0.95) -> Figure:
    """Study-wide mean deviation from the miRNA's log fold change per isomiR class, with intervals."""
    rows = study.reset_index(drop=True)
    labels = [f"{r.category} ({r.coef})" if rows["coef"].nunique() > 1 else str(r.category)
              for r in rows.itertuples()]
    figure, axis = plt.subplots(figsize=(6, 1.0 + 0.35 * len(rows)))
    position = np.arange(len(rows))
    estimate = rows["deviation_estimate"].to_numpy(float)
    axis.errorbar(estimate, position, fmt="o", ms=4, color="black", lw=1,
                  xerr=[estimate - rows["deviation_ci_low"].to_numpy(float),
                        rows["deviation_ci_high"].to_numpy(float) - estimate])
    axis.axvline(0, color="grey", lw=0.5, ls="--")
    axis.set_yticks(position, labels, fontsize=8)
    axis.set(xlabel=f"mean deviation from the miRNA's log fold change (natural log, {level:.0%} interval)",
             title="isomiR-specific log fold changes by type (all miRNAs)")
    return figure


def types_context(fit, data=None, canonical=None) -> dict | None:
    """:func:`types_section` ready for the template (HTML table, figure as a ``data:`` URI)."""
    from bayesmir.reporting.html import _html_table, rendered

    section = types_section(fit, data, canonical)
    if section is None:
        return None
    view = ["coef", "category", "n_mirnas", "deviation_estimate", "deviation_sd", "deviation_ci_low",
            "deviation_ci_high", "p_deviation_gt_0"]
    return {"source": section["source"], "table": _html_table(section["study"].reindex(columns=view)),
            "figure": rendered(lambda: section["figure"])}
