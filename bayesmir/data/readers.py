"""Readers: one entry point, :func:`read_counts`, that detects the format.

Formats
-------
- long CSV/TSV (optionally gzipped): columns ``miRNA, sequence, sample, count``, one row
  per non-zero count (zero rows are allowed);
- wide CSV/TSV: one row per isomiR with ``miRNA`` and ``sequence`` columns and one
  count column per sample;
- AnnData ``.h5ad``: ``obs`` = samples (its ``library_size`` column, if any, gives
  ``T_i``), ``var`` = isomiRs with ``miRNA`` and ``sequence`` columns, ``X`` counts;
- R ``.rda``/``.RData``/``.rds`` holding a SummarizedExperiment as miRglmm takes it
  (assay ``counts``, rowData ``uniqueSequence`` and ``miRNA``), read with the
  ``rdata`` package: no R needed.

Every problem is raised as one :class:`~bayesmir.InputError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesmir.data import tool_formats, validation
from bayesmir.data.annotations import ANNOTATION_COLUMNS, annotate_isomirs
from bayesmir.data.container import IsomirData
from bayesmir.data.matrix_formats import anndata_to_long, read_h5ad, read_rda
from bayesmir.data.text_io import read_text
from bayesmir.errors import InputError, describe_rows

TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".tab")
RDATA_SUFFIXES = (".rda", ".rdata", ".rds")


def read_counts(
    path,
    samples=None,
    library_size=None,
    multimapping: str = "keep",
    format: str | None = None,
) -> IsomirData:
    """Read isomiR counts (and sample metadata) into an :class:`IsomirData`.

    Sample and miRNA names are read as text (``001`` stays ``001``); sequences are
    normalised to upper-case DNA (see :class:`IsomirData`).

    Parameters
    ----------
    path : str, pathlib.Path, pandas.DataFrame or anndata.AnnData
        Counts file; the format is detected from the suffix and, for text files, the
        header (see the module docstring). An in-memory long or wide DataFrame or an AnnData
        is read as the file that holds it, with the same checks and rules.
    samples : str, pathlib.Path or pandas.DataFrame, optional
        Sample metadata (see :func:`read_samples`). Default: the metadata stored in
        the file (``.h5ad``, ``.rda``) or none.
    library_size : None, str, pathlib.Path, mapping or pandas.Series
        ``T_i``. ``None``: the ``library_size`` column of the sample metadata if there
        is one, else computed from the counts (every distinct sequence of a sample
        counted once); ``"counts"``: computed from the counts even if that column
        exists; another str: a column of the sample metadata (e.g. the aligner's total
        reads) or a CSV/TSV file of ``sample, library_size``; or one value per sample.
        The totals used and their source are ``data.library_size`` and
        ``data.library_size_source``.
    multimapping : {"keep", "drop", "raise"}
        What to do with sequences annotated to several miRNAs.
    format : {"long", "wide", "h5ad", "rda", "mirtop", "mirge3", "srnabench"}, optional
        Skip detection.

    Returns
    -------
    IsomirData

    Raises
    ------
    InputError
        Missing/empty/unreadable file, unknown format, or any validation problem.

    Examples
    --------
    >>> data = read_counts("counts_long.csv", samples="samples.csv")  # doctest: +SKIP
    """
    meta, meta_source = (None, "") if samples is None else read_samples(samples)
    if isinstance(path, (str, Path)):
        path = _existing_file(path)
        kind = format or detect_format(path)
        readers = {"long": _read_long, "wide": _read_wide, "h5ad": read_h5ad, "rda": read_rda,
                   **tool_formats.READERS}
        if kind not in readers:
            raise InputError(f"{path}: unknown format {kind!r}; use one of {sorted(readers)}")
        long, stored_meta, line_offset = readers[kind](path, meta)
    else:  # a pandas DataFrame or an AnnData, read as the files that hold them
        path, (long, stored_meta, line_offset) = _in_memory_source(path), _read_in_memory(path, meta)
    if meta is None and stored_meta is not None:
        meta, meta_source = stored_meta, f"{path} (sample metadata)"
    if isinstance(library_size, (str, Path)) and _is_library_size_file(library_size, meta):
        library_size = read_library_size(library_size)
    data = IsomirData.from_long(
        long, meta, library_size=library_size, source=str(path), samples_source=meta_source or "samples",
        multimapping=multimapping, line_offset=line_offset,
    )
    return annotate_isomirs(data, long)  # reference sequences/labels a tool format carries


def read_samples(samples) -> tuple[pd.DataFrame, str]:
    """Sample metadata indexed by sample, and its source name.

    Sample names are text as written (``001`` stays ``001``); in the other columns the
    markers of :data:`~bayesmir.data.validation.NA_MARKERS` (``NA``, ``NaN``, empty,
    ``null``, ...) are missing values, refused when a formula or a reference level uses
    the column. ``table.attrs`` keeps the file name and each sample's file line for
    such messages.

    Parameters
    ----------
    samples : str, pathlib.Path or pandas.DataFrame
        A CSV/TSV with a ``sample`` column (else its first column holds the names),
        or a DataFrame indexed by sample or with a ``sample`` column.

    Returns
    -------
    (pandas.DataFrame, str)
    """
    if isinstance(samples, pd.DataFrame):
        table, source = samples, "samples DataFrame"
        if "sample" in table.columns:
            table = table.set_index("sample")
        return validation.validate_samples(table, source), source
    path = _existing_file(samples)
    source = str(path)
    header = list(read_text(path, nrows=0).columns)
    name = "sample" if "sample" in header else header[0]
    na_values = {column: list(validation.NA_MARKERS) for column in header if column != name}
    table = read_text(path, dtype={name: str}, na_values=na_values)
    validation.check_not_empty(table, source)
    lines = dict(zip(table[name].astype(str), range(2, len(table) + 2)))
    table = validation.validate_samples(table.set_index(name), source)
    table.attrs = {"source": source, "lines": lines}
    return table, source


def read_library_size(path) -> pd.Series:
    """Library totals from a CSV/TSV: a ``sample`` column (else the first) and a ``library_size``
    column (else the second); sample names read as text."""
    path = _existing_file(path)
    header = list(read_text(path, nrows=0).columns)
    name = "sample" if "sample" in header else header[0]
    table = read_text(path, dtype={name: str})
    validation.check_not_empty(table, str(path))
    column = "library_size" if "library_size" in table.columns else [c for c in header if c != name][:1]
    if not column:
        raise InputError(f"{path}: a library-size file needs a sample column and a library_size column")
    column = column if isinstance(column, str) else column[0]
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    series = pd.Series(values, index=pd.Index(table[name].astype(str), name="sample"), name="library_size")
    series.attrs["source"] = f"{path}, column {column!r}"
    return series


def _is_library_size_file(value, meta: pd.DataFrame | None) -> bool:
    """Whether a str/Path ``library_size`` names a file (rather than a metadata column or "counts")."""
    if isinstance(value, Path):
        return True
    if value == "counts" or (meta is not None and value in meta.columns):
        return False
    if Path(value).is_file():
        return True
    columns = [] if meta is None else [str(c) for c in meta.columns]
    raise InputError(f"library_size {value!r} is neither a column of the sample metadata (columns: {columns}), "
                     "'counts', nor an existing file")


def detect_format(path: Path) -> str:
    """``"long"``, ``"wide"``, ``"h5ad"`` or ``"rda"`` from the suffix and header."""
    tool = tool_formats.detect_tool_format(path)  # mirtop GFF3, miRge3, sRNAbench
    if tool is not None:
        return tool
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix == ".h5ad":
        return "h5ad"
    if suffix in RDATA_SUFFIXES:
        return "rda"
    if suffix not in TEXT_SUFFIXES:
        raise InputError(
            f"{path}: unknown file type {suffix or '(no suffix)'!r}; expected one of "
            f"{', '.join(TEXT_SUFFIXES + ('.h5ad',) + RDATA_SUFFIXES)} (optionally .gz for text)"
        )
    columns = list(read_text(path, nrows=0).columns)
    if {"sample", "count"} & set(columns):
        return "long"
    if {"miRNA", "sequence"} <= set(columns):
        return "wide"
    validation.require_columns(pd.DataFrame(columns=columns), validation.LONG_COLUMNS, str(path))
    raise AssertionError("unreachable")  # require_columns raised


# ---------------------------------------------------------------------- formats
def _read_long(path: Path, samples):
    """Long table as read (validated later by IsomirData.from_long), no stored metadata."""
    return read_text(path), None, 2


def _read_wide(path: Path, samples):
    """Wide table melted to long (zeros left out); line numbers refer to the wide file."""
    table = read_text(path)
    validation.check_not_empty(table, str(path))
    return wide_to_long(table, samples, str(path), 2), None, None


def wide_to_long(table: pd.DataFrame, samples, source: str, line_offset: int | None) -> pd.DataFrame:
    """A wide table (``miRNA``, ``sequence``, per-isomiR annotations, one count column per sample)
    melted to long, zeros left out, with the checks of every reader."""
    fixed = ("miRNA", "sequence", *ANNOTATION_COLUMNS)
    validation.require_columns(table, ("miRNA", "sequence"), source)
    sample_columns = [c for c in table.columns if c not in fixed]
    if samples is not None:
        validation.check_sample_sets([str(c) for c in sample_columns], samples.index, source, "samples")
    if not sample_columns:
        raise InputError(f"{source}: a wide table needs one count column per sample besides miRNA and sequence")
    for column in ("miRNA", "sequence"):
        validation.check_text_column(table, column, source, line_offset)
    counts = np.column_stack([validation.check_count_column(table, c, source, line_offset)
                              for c in sample_columns])
    duplicated = table.duplicated(["miRNA", "sequence"], keep=False).to_numpy()
    if duplicated.any():
        rows = describe_rows(validation.row_labels(table, duplicated, line_offset))
        raise InputError(f"{source}, columns miRNA/sequence, rows {rows}: repeated isomiR rows")
    rows, cols = np.nonzero(counts)
    keep = [c for c in fixed if c in table.columns]
    long = table.iloc[rows][keep].reset_index(drop=True)
    long.insert(2, "sample", np.asarray([str(c) for c in sample_columns], dtype=object)[cols])
    long.insert(3, "count", counts[rows, cols])
    return long


def _in_memory_source(obj) -> str:
    """How messages name an in-memory input."""
    return "<AnnData>" if type(obj).__name__ == "AnnData" else "<DataFrame>"


def _read_in_memory(obj, samples):
    """The reader of a pandas DataFrame (long or wide) or an AnnData: ``(long, metadata, None)``."""
    if isinstance(obj, pd.DataFrame):
        if {"sample", "count"} & set(map(str, obj.columns)):
            return obj, None, None
        return wide_to_long(obj, samples, "<DataFrame>", None), None, None
    if type(obj).__name__ == "AnnData":
        return (*anndata_to_long(obj, "<AnnData>"), None)
    raise InputError(f"expected a file path, a pandas DataFrame or an AnnData, got {type(obj).__name__}")


# ---------------------------------------------------------------------- helpers
def _existing_file(path) -> Path:
    if not isinstance(path, (str, Path)):
        raise InputError(f"expected a file path, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    return path
