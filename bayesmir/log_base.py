"""Log fold changes in another base: the ``log_base`` option of the tables and plots.

The model, the posteriors and the default tables are in natural log. With ``log_base="2"``
(or ``"10"``) every column that carries a log fold change (or an SD of one) is divided by
``ln(base)`` and renamed so that its name states the base, with the tag ``log2fc``
(``log10fc``):

- ``mirna_table``: ``estimate`` -> ``log2fc``; ``sd``, ``median``, ``ci_low``,
  ``ci_high``, ``ci_low_se``, ``ci_high_se``, ``hdi_low``, ``hdi_high`` -> ``log2fc_<name>``;
  ``p_abs_gt_0.405`` -> ``p_abs_log2fc_gt_0.585`` (the same probability, its threshold δ
  stated in the new base; δ itself is given in natural log, ``fit(delta=...)``).
- ``isomir_table``: ``logfc_<x>`` -> ``log2fc_<x>``, ``deviation_<x>`` -> ``deviation_log2fc_<x>``
  (x: ``estimate, sd, ci_low, ci_high``).
- ``slope_table``: ``sd_slope_<x>`` -> ``sd_slope_log2fc_<x>`` (x: ``median, ci_low, ci_high``),
  ``p_sd_slope_gt_0.100`` -> ``p_sd_slope_log2fc_gt_0.144``.
- :func:`bayesmir.isomir_types.effects_by_type`: ``deviation_<x>`` as in the isomiR table.

Base-free columns keep their names and values: probabilities (``lfsr``, ``*_lfsr``,
``p_*``), ``qvalue``, ``svalue``, Bayes factors, ELPD, baseline shares, diagnostics.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from bayesmir.errors import InputError

DEFAULT_LOG_BASE = "e"
LOG_BASES = {"e": math.e, "2": 2.0, "10": 10.0}

_MIRNA_PARTS = ("sd", "median", "ci_low", "ci_high", "ci_low_se", "ci_high_se", "hdi_low", "hdi_high")
_INTERVAL_PARTS = ("estimate", "sd", "ci_low", "ci_high")
_SLOPE_PARTS = ("median", "ci_low", "ci_high")
_THRESHOLD = re.compile(r"^(p_abs|p_sd_slope)_gt_(-?[0-9.]+)(_se)?$")


def checked_log_base(log_base) -> str:
    """``log_base`` as one of ``"e"``, ``"2"``, ``"10"`` (also given as a number); else InputError."""
    text = str(log_base).strip().lower()
    if text in LOG_BASES:
        return text
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    for name, base in LOG_BASES.items():
        if math.isclose(number, base):
            return name
    raise InputError(f"log_base {log_base!r}: use 'e' (natural log, the default), '2' or '10'")


def fold_change_tag(log_base) -> str:
    """``"logfc"`` for natural log, ``"log2fc"`` / ``"log10fc"`` otherwise."""
    name = checked_log_base(log_base)
    return "logfc" if name == "e" else f"log{name}fc"


def scale_label(log_base) -> str:
    """Axis wording of the base: ``"natural log"``, ``"log2"``, ``"log10"``."""
    name = checked_log_base(log_base)
    return "natural log" if name == "e" else f"log{name}"


def renamed_column(column: str, log_base, delta: float | None = None) -> tuple[str, bool]:
    """The name of ``column`` in ``log_base`` and whether its values are divided by ``ln(base)``.

    ``delta``: the natural-log threshold of a ``p_*_gt_<delta>`` column (default: read from
    its name, which holds 3 decimals).
    """
    name = checked_log_base(log_base)
    if name == "e":
        return column, False
    tag = fold_change_tag(name)
    if column == "estimate":
        return tag, True
    if column in _MIRNA_PARTS:
        return f"{tag}_{column}", True
    for prefix, parts, renamed in (("logfc_", _INTERVAL_PARTS, f"{tag}_"),
                                   ("deviation_", _INTERVAL_PARTS, f"deviation_{tag}_"),
                                   ("sd_slope_", _SLOPE_PARTS, f"sd_slope_{tag}_")):
        if column.startswith(prefix) and column[len(prefix):] in parts:
            return renamed + column[len(prefix):], True
    threshold = _THRESHOLD.match(column)
    if threshold:
        kind, value, se = threshold.groups()
        natural = float(value) if delta is None else float(delta)
        return f"{kind}_{tag}_gt_{natural / math.log(LOG_BASES[name]):.3f}{se or ''}", False
    return column, False


def in_log_base(table: pd.DataFrame, log_base, delta: float | None = None) -> pd.DataFrame:
    """A natural-log table of bayesmir in ``log_base`` (see the module docstring).

    Parameters
    ----------
    table : pandas.DataFrame
        ``mirna_table``, ``isomir_table``, ``slope_table`` or ``effects_by_type``, in natural
        log (the frequentist tables are not covered: their variance columns are not renamed).
    log_base : {"e", "2", "10"}
    delta : float, optional
        Natural-log threshold of the table's ``p_*_gt_*`` column, for its exact new name.

    Returns
    -------
    pandas.DataFrame
        A copy (the table itself for natural log).
    """
    name = checked_log_base(log_base)
    if name == "e":
        return table
    factor = 1.0 / math.log(LOG_BASES[name])
    table = table.copy()
    names = {}
    for column in table.columns:
        new, scaled = renamed_column(str(column), name, delta)
        if scaled:
            table[column] = table[column] * factor
        names[column] = new
    return table.rename(columns=names)


def natural_names(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``table`` with its columns under their natural-log names, values untouched, and its base.

    For plots that read ``estimate``, ``ci_low``, ``logfc_estimate``...: they draw the values
    as given and label the axis with :func:`scale_label` of the base returned.
    """
    for name in ("2", "10"):
        tag = fold_change_tag(name)
        columns = [str(c) for c in table.columns]
        if tag in columns:  # a miRNA-level table (``sd`` and an isomiR's ``logfc_sd`` share a new name)
            natural = ("estimate", *_MIRNA_PARTS)
        elif any(c.startswith(f"{tag}_") or f"_{tag}_" in c for c in columns):
            natural = (*(f"logfc_{p}" for p in _INTERVAL_PARTS), *(f"deviation_{p}" for p in _INTERVAL_PARTS),
                       *(f"sd_slope_{p}" for p in _SLOPE_PARTS))
        else:
            continue
        return table.rename(columns={renamed_column(c, name)[0]: c for c in natural}), name
    return table, DEFAULT_LOG_BASE


def in_natural_log(table: pd.DataFrame, delta: float | None = None) -> pd.DataFrame:
    """The inverse of :func:`in_log_base`: a table in any base back in natural log, natural names.

    For consumers that work on the natural scale whatever the run's ``log_base`` (``compare``
    against ML fits, the HTML report). ``delta``: the natural-log threshold of the
    ``p_*_gt_*`` column; default converted from its name (3 decimals, so the last may differ).
    """
    natural, name = natural_names(table)
    if name == "e":
        return table
    tag, factor = fold_change_tag(name), math.log(LOG_BASES[name])
    natural = natural.copy()
    for new, old in zip(natural.columns, table.columns):  # rename keeps the order
        if new != old:
            natural[new] = natural[new] * factor
    thresholds = {}
    for column in natural.columns:
        match = re.match(rf"^(p_abs|p_sd_slope)_{tag}_gt_(-?[0-9.]+)(_se)?$", str(column))
        if match:
            kind, value, se = match.groups()
            natural_delta = float(value) * factor if delta is None else float(delta)
            thresholds[column] = f"{kind}_gt_{natural_delta:.3f}{se or ''}"
    return natural.rename(columns=thresholds)
