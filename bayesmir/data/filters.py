"""miRglmm's expression filters, configurable, with a report of what each step removed.

Defaults as in miRglmm (and ``../shared/anchors/fit_glmm.R``): keep miRNAs whose
miRNA-summed counts have log(median CPM) > 5, then isomiRs (of the kept miRNAs) with
log(median CPM) > -1, then miRNAs with at least 2 isomiRs left. CPM divides by the
library totals ``T_i`` (all isomiRs, before filtering); medians are over all samples,
zeros included; logs are natural.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from bayesmir.errors import InputError

REPORT_COLUMNS = ("step", "mirnas", "isomirs", "mirnas_removed", "isomirs_removed")


def log_median_cpm(counts: np.ndarray, library_size: np.ndarray) -> np.ndarray:
    """Natural log of the median (over samples) counts per million, per column.

    Parameters
    ----------
    counts : numpy.ndarray, shape (n_samples, n_features)
    library_size : numpy.ndarray, shape (n_samples,)

    Returns
    -------
    numpy.ndarray, shape (n_features,)
        ``-inf`` where the median is 0.
    """
    cpm = counts / (np.asarray(library_size, dtype=float)[:, None] / 1e6)
    with np.errstate(divide="ignore"):
        return np.log(np.median(cpm, axis=0))


def mirna_log_median_cpm(data) -> pd.Series:
    """log median CPM of each miRNA's summed counts."""
    summed = data.mirna_counts()[list(data.samples.index)]
    values = log_median_cpm(summed.to_numpy().T, data.library_size.to_numpy())
    return pd.Series(values, index=summed.index, name="log_median_cpm")


def isomir_log_median_cpm(data) -> pd.Series:
    """log median CPM of each isomiR, indexed by isomiR id."""
    values = log_median_cpm(data.counts.to_numpy(), data.library_size.to_numpy())
    return pd.Series(values, index=data.counts["isomir"].to_numpy(), name="log_median_cpm")


def apply_filters(data, min_mirna_logcpm: float = 5.0, min_isomir_logcpm: float = -1.0, min_isomirs: int = 2):
    """Filtered copy of ``data`` with ``filter_report`` set.

    Parameters
    ----------
    data : IsomirData
    min_mirna_logcpm : float
        Keep miRNAs with log(median CPM) strictly above this (``-inf`` disables).
    min_isomir_logcpm : float
        Keep isomiRs with log(median CPM) strictly above this (``-inf`` disables).
    min_isomirs : int
        Keep miRNAs with at least this many isomiRs left.

    Returns
    -------
    IsomirData
        ``filter_report`` has one row per step with :data:`REPORT_COLUMNS`.

    Raises
    ------
    InputError
        If nothing is left.
    """
    rows = [_report_row("input", data, data)]
    steps = (
        (f"miRNA log median CPM > {min_mirna_logcpm:g}", _keep_mirnas_by_cpm, min_mirna_logcpm),
        (f"isomiR log median CPM > {min_isomir_logcpm:g}", _keep_isomirs_by_cpm, min_isomir_logcpm),
        (f"miRNAs with >= {min_isomirs} isomiRs", _keep_mirnas_with_isomirs, min_isomirs),
    )
    for label, step, threshold in steps:
        before, data = data, step(data, threshold)
        rows.append(_report_row(label, before, data))
        if data.n_isomirs == 0:
            raise InputError(f"{data.source}: no miRNA is left after the filter '{label}' (report: {rows})")
    return replace(data, filter_report=pd.DataFrame(rows, columns=REPORT_COLUMNS))


def _keep_mirnas_by_cpm(data, threshold: float):
    values = mirna_log_median_cpm(data)
    return data.subset(mirnas=values.index[values > threshold].tolist())


def _keep_isomirs_by_cpm(data, threshold: float):
    keep = isomir_log_median_cpm(data).to_numpy() > threshold
    return replace(data, counts=data.counts.isel(isomir=np.flatnonzero(keep)))


def _keep_mirnas_with_isomirs(data, minimum: int):
    sizes = pd.Series(data.counts["miRNA"].to_numpy()).value_counts()
    return data.subset(mirnas=sizes.index[sizes >= minimum].tolist())


def _report_row(step: str, before, after) -> dict:
    return {
        "step": step,
        "mirnas": len(after.mirnas),
        "isomirs": after.n_isomirs,
        "mirnas_removed": len(before.mirnas) - len(after.mirnas),
        "isomirs_removed": before.n_isomirs - after.n_isomirs,
    }
