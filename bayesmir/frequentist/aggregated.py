"""Differential expression of miRNA-summed counts: the aggregated methods miRglmm compares with.

Summing a miRNA's isomiRs and fitting one count per sample is what most pipelines do;
miRglmm's point is that it hides isomiR-specific changes. Two methods:

- ``"nbglm"``: negative-binomial GLM per miRNA with offset ``log(T_i / 1e4)`` and the
  dispersion ``theta`` estimated by maximum likelihood (profiled, as MASS ``glm.nb``);
  standard errors from the expected information at the MLE with ``theta`` held fixed
  (again as ``glm.nb``'s ``summary``), Wald z-tests.
- ``"deseq2"``: PyDESeq2 (optional extra ``bayesmir[deseq2]``): median-of-ratios size
  factors, shrunken dispersions, unshrunken log fold changes, Wald tests.

Estimates are natural logs; ``wald_p`` is the two-sided Wald p-value and ``qvalue`` its
Benjamini-Hochberg adjustment within each method (the names of ``docs/glossary.md``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, stats

from bayesmir.calls import Z_95
from bayesmir.design import Design, build_design
from bayesmir.errors import InputError
from bayesmir.fdr import benjamini_hochberg
from bayesmir.problem import library_offset

METHODS = ("nbglm", "deseq2")
COLUMNS = ["miRNA", "method", "coef", "estimate", "se", "ci_low", "ci_high", "wald_p", "qvalue"]
LOG_ALPHA_BOUNDS = (np.log(1e-8), np.log(1e3))
"""Search range of ``log(1 / theta)`` (theta from 1e-3 to 1e8, i.e. up to Poisson)."""


def fit_aggregated(
    data,
    formula: str = "~ group",
    coef: str | None = None,
    methods: tuple[str, ...] | list[str] = ("nbglm",),
    reference: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Fit aggregated (miRNA-summed) count models, one row per miRNA and method.

    Parameters
    ----------
    data : IsomirData
        Anything with ``.mirna_counts()`` (miRNA x sample), ``.samples`` and
        ``.library_size`` (the totals ``T_i``).
    formula, coef, reference
        Fixed-effects design, as for :func:`bayesmir.design.build_design`.
    methods : sequence of {"nbglm", "deseq2"}
        Methods to run.

    Returns
    -------
    pandas.DataFrame
        Columns ``miRNA, method, coef, estimate, se, ci_low, ci_high, wald_p, qvalue``;
        natural-log fold changes; NaN where a fit failed.

    Raises
    ------
    InputError
        Unknown method, bad design, or PyDESeq2 missing for ``"deseq2"``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"fit_aggregated: unknown method(s) {unknown}; choose from {list(METHODS)}")
    counts, samples, library_size = _aligned_inputs(data)
    design = build_design(samples, formula, coef=coef, reference=reference, random_slope=False)
    tables = []
    for method in methods:
        if method == "nbglm":
            table = nbglm_table(counts, design, library_offset(library_size).to_numpy())
        else:
            table = deseq2_table(counts, samples, design, reference)
        tables.append(_with_adjusted_p(table.assign(method=method)))
    return pd.concat(tables, ignore_index=True)[COLUMNS]


def _aligned_inputs(data) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Summed counts (miRNA x sample), sample table and library sizes in one sample order."""
    samples = data.samples
    counts = data.mirna_counts()
    missing = [s for s in samples.index if s not in counts.columns or s not in data.library_size.index]
    if missing:
        raise InputError(f"fit_aggregated: samples {missing[:5]} lack counts or a library size")
    library_size = data.library_size.reindex(samples.index).astype(float)
    if not (library_size > 0).all():
        raise InputError("fit_aggregated: library sizes must be positive for every sample")
    return counts[samples.index].astype(float), samples, library_size


def nbglm_table(counts: pd.DataFrame, design: Design, offset: np.ndarray) -> pd.DataFrame:
    """NB GLM with ML dispersion per miRNA (rows of ``counts``): estimate, se, Wald CI and wald_p."""
    rows = [_nbglm_row(name, row.to_numpy(), design, offset) for name, row in counts.iterrows()]
    return pd.DataFrame(rows)


def _nbglm_row(mirna: str, y: np.ndarray, design: Design, offset: np.ndarray) -> dict:
    row = {"miRNA": mirna, "coef": design.coef, "estimate": np.nan, "se": np.nan, "wald_p": np.nan}
    if y.sum() == 0:
        return _with_interval(row)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = _nb_glm_profiled(y, design.X, offset)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return _with_interval(row)
    k = design.coef_index
    estimate, se = float(fit.params[k]), float(fit.bse[k])
    if np.isfinite(estimate) and np.isfinite(se) and se > 0:
        row.update(estimate=estimate, se=se, wald_p=float(2 * stats.norm.sf(abs(estimate / se))))
    return _with_interval(row)


def _nb_glm_profiled(y: np.ndarray, X: np.ndarray, offset: np.ndarray):
    """NB GLM at the ML dispersion: Brent search of ``log alpha`` over the profile likelihood."""
    start = {"params": None}

    def fit_at(log_alpha: float):
        family = sm.families.NegativeBinomial(alpha=float(np.exp(log_alpha)))
        fit = sm.GLM(y, X, family=family, offset=offset).fit(
            method="IRLS", tol=1e-10, maxiter=100, start_params=start["params"]
        )
        if np.all(np.isfinite(fit.params)):
            start["params"] = fit.params  # warm start for the next dispersion tried
        return fit

    search = optimize.minimize_scalar(
        lambda a: -fit_at(a).llf, bounds=LOG_ALPHA_BOUNDS, method="bounded", options={"xatol": 1e-6}
    )
    return fit_at(search.x)


def deseq2_table(
    counts: pd.DataFrame, samples: pd.DataFrame, design: Design, reference: dict[str, str] | None
) -> pd.DataFrame:
    """PyDESeq2 Wald test of the design's coefficient (natural-log fold changes)."""
    try:
        from pydeseq2.dds import DeseqDataSet
        from pydeseq2.ds import DeseqStats
    except ImportError:
        raise InputError(
            "method 'deseq2' needs PyDESeq2: pip install 'bayesmir[deseq2]' (or pip install pydeseq2)"
        ) from None
    variable, level, base = _contrast(design, samples, reference)
    metadata = samples.copy()
    metadata[variable] = metadata[variable].astype(str)
    matrix = counts.T.round().astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dds = DeseqDataSet(counts=matrix, metadata=metadata, design=design.formula, quiet=True,
                           n_cpus=1)
        dds.deseq2()
        result = DeseqStats(dds, contrast=[variable, level, base], quiet=True, n_cpus=1)
        result.summary()
    table = result.results_df
    return _with_interval(pd.DataFrame({
        "miRNA": table.index.astype(str),
        "coef": design.coef,
        "estimate": table["log2FoldChange"].to_numpy() * np.log(2),
        "se": table["lfcSE"].to_numpy() * np.log(2),
        "wald_p": table["pvalue"].to_numpy(),
    }))


def _contrast(design: Design, samples: pd.DataFrame, reference: dict[str, str] | None):
    """``(variable, level, reference level)`` of a treatment-coded coefficient ``var[T.level]``."""
    name = design.coef
    if "[T." not in name or not name.endswith("]"):
        raise InputError(
            f"method 'deseq2' supports a categorical coefficient like 'group[T.case]', not {name!r}"
        )
    variable, _, level = name[:-1].partition("[T.")
    levels = sorted(samples[variable].astype(str).unique())
    base = str((reference or {}).get(variable, levels[0]))
    return variable, level, base


def _with_interval(row):
    """Add the Wald 95% interval to a row (dict) or table (DataFrame)."""
    row["ci_low"] = row["estimate"] - Z_95 * row["se"]
    row["ci_high"] = row["estimate"] + Z_95 * row["se"]
    return row


def _with_adjusted_p(table: pd.DataFrame) -> pd.DataFrame:
    """Benjamini-Hochberg ``qvalue`` over the finite p-values of one method."""
    return table.assign(qvalue=benjamini_hochberg(table["wald_p"]))
