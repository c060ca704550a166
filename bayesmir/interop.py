"""Interoperability: results into AnnData, the model in bambi.

(In-memory inputs, a pandas DataFrame or an AnnData, are read by :func:`bayesmir.read_counts`
like the files that hold them.)

- :func:`fit_to_anndata`: a run's isomiR-level effects (and isomiR types) in ``var``, the
  miRNA table and run options in ``uns``, so a scanpy user keeps working.
- :func:`to_bambi`: one miRNA's model as a ``bambi.Model``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bayesmir.data.container import IsomirData
from bayesmir.problem import DEFAULT_NORMALISATION


# ---------------------------------------------------------------------- results into AnnData
def fit_to_anndata(result, adata=None, data: IsomirData | None = None, reference=None):
    """A run's results as AnnData (a copy of ``adata`` when given).

    Parameters
    ----------
    result : FitResult
    adata : anndata.AnnData, optional
        Samples x isomiRs with ``var`` columns ``miRNA`` and ``sequence`` (e.g.
        ``data.to_anndata()``); default: ``data.to_anndata()`` if ``data`` is given,
        else an AnnData with no samples and one ``var`` row per fitted isomiR.
    data : IsomirData, optional
        Gives the isomiR types' canonical sequences (see :func:`bayesmir.isomir_types.isomir_types`).
    reference : mapping or str, optional
        Canonical sequences by miRNA or a miRBase FASTA path, for the types.

    Returns
    -------
    anndata.AnnData
        ``var``: the columns of :meth:`FitResult.isomir_table` for each coefficient
        (``<column>`` for the first, ``<column>:<coef>`` for others) and the isomiR type
        columns; ``uns["bayesmir"]``: ``mirna_table`` (DataFrame), ``slope_table``,
        ``options`` (a JSON string). Tables in the run's ``log_base`` (natural log unless
        ``fit(log_base=...)`` said otherwise; :mod:`bayesmir.log_base`).
    """
    import anndata

    if adata is None:
        adata = data.to_anndata() if data is not None else None
    table = result.isomir_table()
    table = table[table["sequence"].notna()] if "sequence" in table.columns else table
    wide = _isomir_columns(table)
    if adata is None:
        var = wide.reset_index()
        var.index = (var["miRNA"] + "|" + var["sequence"]).to_numpy()
        adata = anndata.AnnData(X=np.zeros((0, len(var))), var=var)
    else:
        adata = adata.copy()
        keys = pd.MultiIndex.from_arrays([adata.var["miRNA"].astype(str), adata.var["sequence"].astype(str)])
        for column in wide.columns:
            adata.var[column] = wide[column].reindex(keys).to_numpy()
    if data is not None or reference is not None:
        from bayesmir.isomir_types import isomir_types

        types = isomir_types(data if data is not None else adata, reference=reference).set_index(["miRNA", "sequence"])
        keys = pd.MultiIndex.from_arrays([adata.var["miRNA"].astype(str), adata.var["sequence"].astype(str)])
        for column in types.columns:
            adata.var[f"isomir_{column}" if column in adata.var.columns else column] = \
                types[column].reindex(keys).to_numpy()
    adata.uns["bayesmir"] = {
        "mirna_table": _h5ad_friendly(result.mirna_table()),
        "slope_table": _h5ad_friendly(result.slope_table()),
        "options": json.dumps(result.options, default=str),
    }
    return adata


def _isomir_columns(table: pd.DataFrame) -> pd.DataFrame:
    """isomiR table with one row per (miRNA, sequence): first coefficient plain, others suffixed."""
    values = [c for c in table.columns if c not in ("miRNA", "sequence", "coef")]
    parts = []
    for i, (coef, block) in enumerate(table.groupby("coef", sort=False)):
        block = block.set_index(["miRNA", "sequence"])[values]
        parts.append(block if i == 0 else block.add_suffix(f":{coef}"))
    wide = pd.concat(parts, axis=1)
    return _h5ad_friendly(wide.assign(coef=table["coef"].iloc[0]) if len(table) else wide)


def _h5ad_friendly(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns as str (h5ad writes str, numbers and bool columns)."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].astype(str)
    return frame


# ---------------------------------------------------------------------- bambi
def to_bambi(data: IsomirData, mirna: str, formula: str = "~ group", priors=None, family: str = "nb",
             random_slope: bool = True, normalisation: str = DEFAULT_NORMALISATION, reference: dict[str, str] | None = None):
    """One miRNA's isomiR model as a ``bambi.Model``, to extend with bambi's formula language.

    The model is ``count ~ <fixed> + offset(log_library) + (1 + <slope term> | sequence) +
    (1 | sample)`` with a negative binomial (or Poisson) family, the same likelihood as
    bayesmir's. Priors follow :class:`~bayesmir.Priors` where bambi allows: normal
    ``N(0, intercept_sd)`` intercept, ``N(0, beta_sd)`` fixed effects, half-normal group
    SDs (``sd_isomir_scale``, ``sd_slope_scale``, ``sd_sample_scale``), and for the negative
    binomial ``alpha`` (bayesmir's ``theta``) the inverse gamma ``IG(1/2, 1/(2 s^2))`` that
    bayesmir's ``1/sqrt(theta) ~ HalfNormal(s)`` implies (the same prior, written on
    ``alpha``). One difference: bambi's group effects are independent, so an isomiR's
    intercept and slope are uncorrelated a priori and a posteriori there is no
    ``corr_isomir`` (bayesmir: LKJ(``lkj_eta``) correlation).

    Parameters
    ----------
    data : IsomirData
    mirna : str
    formula : str
        Fixed effects over the sample metadata (right-hand side), as in :func:`bayesmir.fit`.
    priors : Priors, optional
    family : {"nb", "poisson"}
    random_slope : bool
        IsomiR-specific slopes on every non-intercept fixed term.
    normalisation : {"robust", "total", "median_ratio"}
        Library offset, as in :func:`bayesmir.fit` (the same offsets: built with the design).
    reference : dict, optional
        Reference level per categorical variable, as in :func:`bayesmir.fit` (default:
        the first level in sorted order, as bayesmir and bambi both do).

    Returns
    -------
    bambi.Model
    """
    import bambi as bmb

    from bayesmir.design import _categorical_frame, _formula_variables, build_design
    from bayesmir.priors import Priors
    from bayesmir.problem import library_offset

    priors = priors or Priors()

    variables = _formula_variables(formula, data.samples, data.source)
    factors = _categorical_frame(data.samples, variables, reference, data.source)  # bayesmir's levels
    table = data.for_mirna(mirna).drop(columns=variables).join(factors, on="sample")
    design = build_design(data.samples, formula, reference=reference, random_slope=random_slope)
    offset = library_offset(data.library_size, data.mirna_counts(), normalisation, design)  # as fit's
    table["log_library"] = table["sample"].map(offset).to_numpy(dtype=float)
    fixed = formula.split("~", 1)[-1].strip() or "1"
    terms = [t.strip() for t in fixed.split("+") if t.strip() not in ("", "1")]
    slope = " + ".join(terms) if (random_slope and terms) else ""
    model_formula = (f"count ~ {fixed} + offset(log_library) + "
                     f"({'1 + ' + slope if slope else '1'} | sequence) + (1 | sample)")
    prior_spec = {
        "Intercept": bmb.Prior("Normal", mu=0, sigma=priors.intercept_sd),
        "common": bmb.Prior("Normal", mu=0, sigma=priors.beta_sd),
        "1|sequence": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=priors.sd_isomir_scale)),
        "1|sample": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=priors.sd_sample_scale)),
    }
    for term in terms if slope else []:
        prior_spec[f"{term}|sequence"] = bmb.Prior(
            "Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=priors.sd_slope_scale))
    if family == "nb":
        # bayesmir: 1/sqrt(theta) ~ HalfNormal(s); bambi's alpha is theta. The implied prior
        # on alpha = 1/u^2 (u ~ HalfNormal(s)) is an inverse gamma with shape 1/2 and scale 1/(2 s^2).
        scale = priors.inv_sqrt_theta_scale
        prior_spec["alpha"] = bmb.Prior("InverseGamma", alpha=0.5, beta=1 / (2 * scale**2))
    return bmb.Model(model_formula, table, family="negativebinomial" if family == "nb" else "poisson",
                     priors=prior_spec, categorical=["sequence", "sample"])
