"""Readers of count matrices in containers: AnnData (``.h5ad`` or in memory) and R's
SummarizedExperiment (``.rda``/``.RData``/``.rds``, miRglmm's input, read with the ``rdata``
package: no R needed).

Each gives the long table of :func:`bayesmir.read_counts` (non-zero counts) and the stored
sample metadata.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmir.data import validation
from bayesmir.data.annotations import ANNOTATION_COLUMNS
from bayesmir.errors import InputError


def read_h5ad(path: Path, samples):
    import anndata

    try:
        adata = anndata.read_h5ad(path)
    except Exception as error:  # noqa: BLE001 - any reader failure is an input problem
        raise InputError(f"{path}: cannot read as AnnData .h5ad ({type(error).__name__}: {error})") from None
    return (*anndata_to_long(adata, str(path)), None)


def anndata_to_long(adata, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long table (non-zero counts, with any per-isomiR annotation of ``var``, as
    :meth:`IsomirData.to_anndata` writes them) and ``obs`` as sample metadata."""
    var = adata.var.copy()
    if "sequence" not in var.columns and "uniqueSequence" in var.columns:
        var = var.rename(columns={"uniqueSequence": "sequence"})
    validation.require_columns(var, ("miRNA", "sequence"), f"{source} (var)")
    matrix = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    obs = adata.obs.copy()
    obs.index = pd.Index(obs.index.astype(str), name="sample")
    for column in obs.columns:  # AnnData stores text columns as categoricals
        if isinstance(obs[column].dtype, pd.CategoricalDtype) and obs[column].cat.categories.dtype == object:
            obs[column] = obs[column].astype(object)
    long = matrix_to_long(matrix.T, var["miRNA"].to_numpy(), var["sequence"].to_numpy(), obs.index, source)
    annotations = [c for c in ANNOTATION_COLUMNS if c in var.columns]
    if annotations:
        kept = var[["miRNA", "sequence", *annotations]].astype(str).drop_duplicates(["miRNA", "sequence"])
        long = long.merge(kept, on=["miRNA", "sequence"], how="left")
    return long, obs


def read_rda(path: Path, samples):
    """A SummarizedExperiment (miRglmm's input) from .rda/.RData/.rds."""
    import rdata

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix.lower() == ".rds":
                objects = {"object": rdata.read_rds(path)}
            else:
                objects = rdata.read_rda(path)
    except Exception as error:  # noqa: BLE001 - any reader failure is an input problem
        raise InputError(f"{path}: cannot read as an R data file ({type(error).__name__}: {error})") from None
    experiments = {k: v for k, v in objects.items() if _r_class(v) in ("SummarizedExperiment",
                                                                        "RangedSummarizedExperiment")}
    if len(experiments) != 1:
        found = {k: _r_class(v) or type(v).__name__ for k, v in objects.items()}
        raise InputError(f"{path}: expected one SummarizedExperiment object, found {found}")
    se = next(iter(experiments.values()))
    matrix, sample_names = _r_assay(se, path)
    rows = _r_data_frame(se.elementMetadata)
    if "sequence" not in rows.columns and "uniqueSequence" in rows.columns:
        rows = rows.rename(columns={"uniqueSequence": "sequence"})
    validation.require_columns(rows, ("miRNA", "sequence"), f"{path} (rowData)")
    col_data = _r_data_frame(se.colData)
    names = _r_names(se.colData.rownames) or sample_names
    col_data.index = pd.Index([str(s) for s in names], name="sample")
    long = matrix_to_long(matrix, rows["miRNA"].to_numpy(), rows["sequence"].to_numpy(), col_data.index, path)
    return long, col_data, None


def matrix_to_long(matrix, mirnas, sequences, samples, path: Path | str) -> pd.DataFrame:
    """(isomiR x sample) matrix to a long table of non-zero counts, checking the values."""
    matrix = np.asarray(matrix)
    if matrix.shape != (len(mirnas), len(samples)):
        raise InputError(f"{path}: counts are {matrix.shape}, expected (isomiRs, samples) = "
                         f"({len(mirnas)}, {len(samples)})")
    rows, cols = np.nonzero(matrix)
    frame = pd.DataFrame({"miRNA": np.asarray(mirnas, dtype=object)[rows],
                          "sequence": np.asarray(sequences, dtype=object)[rows],
                          "sample": np.asarray(samples, dtype=object)[cols], "count": matrix[rows, cols]})
    bad = ~np.isfinite(matrix.astype(float))
    if bad.any():
        raise InputError(f"{path}, counts: NaN or infinite values in {int(bad.sum())} cells")
    return frame


def _r_class(obj) -> str:
    cls = getattr(obj, "class", None) if not isinstance(obj, dict) else obj.get("class")
    if cls is None:
        return ""
    return str(np.atleast_1d(cls)[0])


def _r_names(value):
    if value is None or isinstance(value, str) or np.ndim(value) == 0:
        return None
    return [str(v) for v in value]


def _r_data_frame(frame) -> pd.DataFrame:
    """An S4 DFrame (rowData/colData) as a pandas DataFrame."""
    data = {str(k): np.asarray(v) for k, v in getattr(frame, "listData", {}).items()}
    return pd.DataFrame(data) if data else pd.DataFrame(index=range(int(np.atleast_1d(frame.nrows)[0])))


def _r_assay(se, path: Path):
    """The ``counts`` assay (else the first) as a dense (isomiR x sample) array, and sample names."""
    assays = se.assays.data.listData
    if not assays:
        raise InputError(f"{path}: the SummarizedExperiment has no assay")
    name = "counts" if "counts" in assays else next(iter(assays))
    assay = assays[name]
    if _r_class(assay) == "dgCMatrix":
        from scipy import sparse

        n_rows, n_cols = (int(v) for v in assay.Dim)
        matrix = sparse.csc_matrix((assay.x, assay.i, assay.p), shape=(n_rows, n_cols)).toarray()
        names = _r_names(assay.Dimnames[1]) if assay.Dimnames else None
        return matrix, names
    values = getattr(assay, "values", assay)
    names = None
    if hasattr(assay, "coords") and len(assay.dims) == 2:
        names = [str(v) for v in assay.coords[assay.dims[1]].values]
    return np.asarray(values), names
