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

import gzip
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmir.data import tool_formats, validation
from bayesmir.data.annotations import ANNOTATION_COLUMNS, annotate_isomirs
from bayesmir.data.container import IsomirData
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
        readers = {"long": _read_long, "wide": _read_wide, "h5ad": _read_h5ad, "rda": _read_rda,
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
    header = list(_read_text(path, nrows=0).columns)
    name = "sample" if "sample" in header else header[0]
    na_values = {column: list(validation.NA_MARKERS) for column in header if column != name}
    table = _read_text(path, dtype={name: str}, na_values=na_values)
    validation.check_not_empty(table, source)
    lines = dict(zip(table[name].astype(str), range(2, len(table) + 2)))
    table = validation.validate_samples(table.set_index(name), source)
    table.attrs = {"source": source, "lines": lines}
    return table, source


def read_library_size(path) -> pd.Series:
    """Library totals from a CSV/TSV: a ``sample`` column (else the first) and a ``library_size``
    column (else the second); sample names read as text."""
    path = _existing_file(path)
    header = list(_read_text(path, nrows=0).columns)
    name = "sample" if "sample" in header else header[0]
    table = _read_text(path, dtype={name: str})
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
    columns = list(_read_text(path, nrows=0).columns)
    if {"sample", "count"} & set(columns):
        return "long"
    if {"miRNA", "sequence"} <= set(columns):
        return "wide"
    validation.require_columns(pd.DataFrame(columns=columns), validation.LONG_COLUMNS, str(path))
    raise AssertionError("unreachable")  # require_columns raised


# ---------------------------------------------------------------------- formats
def _read_long(path: Path, samples):
    """Long table as read (validated later by IsomirData.from_long), no stored metadata."""
    return _read_text(path), None, 2


def _read_wide(path: Path, samples):
    """Wide table melted to long (zeros left out); line numbers refer to the wide file."""
    table = _read_text(path)
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


def _read_h5ad(path: Path, samples):
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
    long = _matrix_to_long(matrix.T, var["miRNA"].to_numpy(), var["sequence"].to_numpy(), obs.index, source)
    annotations = [c for c in ANNOTATION_COLUMNS if c in var.columns]
    if annotations:
        kept = var[["miRNA", "sequence", *annotations]].astype(str).drop_duplicates(["miRNA", "sequence"])
        long = long.merge(kept, on=["miRNA", "sequence"], how="left")
    return long, obs


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


def _read_rda(path: Path, samples):
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
    long = _matrix_to_long(matrix, rows["miRNA"].to_numpy(), rows["sequence"].to_numpy(), col_data.index, path)
    return long, col_data, None


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


def _separator(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return "\t" if name.endswith((".tsv", ".tab", ".txt")) else ","


def _read_text(path: Path, nrows: int | None = None, dtype=str, na_values=("",)) -> pd.DataFrame:
    """A CSV/TSV read as text (typed later), with decoding and parsing errors as InputError."""
    kind = "TSV" if _separator(path) == "\t" else "CSV"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # e.g. more fields than the header
            return pd.read_csv(
                path, sep=_separator(path), dtype=dtype, keep_default_na=False, na_values=na_values, nrows=nrows,
                encoding="utf-8", index_col=False,
            )
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (undecodable byte at line {_first_bad_line(path)}); "
                         "save the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file (no header)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as error:
        raise InputError(f"{path}: cannot parse as {kind}: {error}") from None
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(f"{path}: cannot read ({type(error).__name__}: {error})") from None


def _first_bad_line(path: Path) -> int:
    """Line number of the first byte that is not UTF-8."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return raw[: error.start].count(b"\n") + 1
    return 0


def _matrix_to_long(matrix, mirnas, sequences, samples, path: Path | str) -> pd.DataFrame:
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
