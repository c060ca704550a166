"""Checks of raw tables, each failing with one :class:`~bayesmir.InputError` naming file, column and rows.

Row numbers in messages are 1-based **file lines** (the header is line 1) when the
table was read from a text file, so a user can jump to them; otherwise they are the
table's index labels. Nothing here drops data: a table either passes unchanged (with
typed columns) or the first problem found is raised.
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from bayesmir.errors import InputError, describe_rows

LONG_COLUMNS = ("miRNA", "sequence", "sample", "count")
NA_MARKERS = ("", "NA", "NaN", "nan", "NAN", "null", "NULL", "Null", "N/A", "n/a", "<NA>", "None")
"""Cell values read as a missing value in sample metadata (R's ``write.csv`` writes ``NA``)."""
KEY_COLUMNS = ("miRNA", "sequence", "sample")
INT64_MAX = np.iinfo(np.int64).max


def row_labels(table: pd.DataFrame, mask, line_offset: int | None) -> list:
    """Labels of the rows where ``mask`` holds: file lines if ``line_offset`` is given."""
    positions = np.flatnonzero(np.asarray(mask))
    if line_offset is None:
        return [table.index[p] for p in positions]
    return [int(p) + line_offset for p in positions]


def where(source: str, column: str, rows: list, what: str = "rows") -> str:
    """``"file.csv, column 'count', rows 3, 7"`` for messages."""
    return f"{source}, column {column!r}, {what} {describe_rows(rows)}"


def require_columns(table: pd.DataFrame, required, source: str) -> None:
    """Raise if any of ``required`` is missing, suggesting near-miss names."""
    missing = [c for c in required if c not in table.columns]
    if not missing:
        return
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, [str(c) for c in table.columns], n=1, cutoff=0.6)
        close = close or [c for c in map(str, table.columns) if c.lower() == name.lower()]
        if close:
            hints.append(f"{close[0]!r} for {name!r}?")
    hint = f" (did you mean {', '.join(hints)})" if hints else ""
    raise InputError(
        f"{source}: missing column(s) {', '.join(map(repr, missing))}{hint}; "
        f"found columns {[str(c) for c in table.columns]}"
    )


def check_not_empty(table: pd.DataFrame, source: str) -> None:
    """Raise if the table has no data rows."""
    if len(table) == 0:
        raise InputError(f"{source}: no data rows (the file holds a header only or is empty)")


def check_text_column(table: pd.DataFrame, column: str, source: str, line_offset: int | None) -> pd.Series:
    """The column as ``str``; raise on missing or empty values."""
    values = table[column]
    missing = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        rows = row_labels(table, missing, line_offset)
        raise InputError(f"{where(source, column, rows)}: empty or missing value ({int(missing.sum())} rows)")
    return values.astype(str)


def check_count_column(
    table: pd.DataFrame, column: str, source: str, line_offset: int | None
) -> pd.Series:
    """The column as int64; raise on text, NaN, inf, negative, non-integer or too large values."""
    raw = table[column]
    numeric = pd.to_numeric(raw, errors="coerce")
    text = numeric.isna().to_numpy() & raw.notna().to_numpy() & (raw.astype(str).str.strip() != "").to_numpy()
    checks = (
        (text, "not a number"),
        (numeric.isna().to_numpy(), "missing value (NaN or empty)"),
    )
    for mask, what in checks:
        if mask.any():
            rows = row_labels(table, mask, line_offset)
            examples = ", ".join(repr(v) for v in raw[mask].head(3))
            raise InputError(f"{where(source, column, rows)}: {what} ({int(mask.sum())} rows; e.g. {examples})")
    values = numeric.to_numpy(dtype=float)
    too_large = ~np.isfinite(values) | (np.abs(values) > INT64_MAX)
    if numeric.dtype.kind == "u":
        too_large |= numeric.to_numpy() > INT64_MAX
    for mask, what in (
        (too_large, "infinite or too large for a 64-bit integer count"),
        (values < 0, "negative count"),
        (values != np.round(values), "non-integer count"),
    ):
        if mask.any():
            rows = row_labels(table, mask, line_offset)
            examples = ", ".join(repr(v) for v in raw[mask].head(3))
            raise InputError(f"{where(source, column, rows)}: {what} ({int(mask.sum())} rows; e.g. {examples})")
    if numeric.dtype.kind in "iu":
        return numeric.astype(np.int64)
    return pd.Series(values.astype(np.int64), index=table.index)


def validate_long(table: pd.DataFrame, source: str, line_offset: int | None = 2) -> pd.DataFrame:
    """A checked long table with columns miRNA, sequence, sample (str) and count (int64).

    Parameters
    ----------
    table : pandas.DataFrame
        Raw table with at least :data:`LONG_COLUMNS` (other columns are ignored).
    source : str
        File name (or description) for messages.
    line_offset : int or None
        Add to a row position to get its file line (2 for a CSV with a header);
        ``None`` to report index labels.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`LONG_COLUMNS`, same rows and order.

    Raises
    ------
    InputError
        Missing columns, empty table, missing/empty names, bad counts, duplicate
        (miRNA, sequence, sample) rows.
    """
    require_columns(table, LONG_COLUMNS, source)
    check_not_empty(table, source)
    checked = pd.DataFrame({c: check_text_column(table, c, source, line_offset) for c in KEY_COLUMNS})
    checked["count"] = check_count_column(table, "count", source, line_offset)
    duplicated = checked.duplicated(list(KEY_COLUMNS), keep=False).to_numpy()
    if duplicated.any():
        rows = row_labels(table, duplicated, line_offset)
        first = checked[duplicated].iloc[0]
        raise InputError(
            f"{source}, columns miRNA/sequence/sample, rows {describe_rows(rows)}: "
            f"{int(duplicated.sum())} rows repeat a (miRNA, sequence, sample) key, e.g. "
            f"({first['miRNA']}, {first['sequence']}, {first['sample']}); sum or deduplicate them first"
        )
    return checked.reset_index(drop=True)


def validate_samples(samples: pd.DataFrame, source: str) -> pd.DataFrame:
    """Sample metadata indexed by unique, non-empty sample names (str).

    Raises
    ------
    InputError
        Empty table, missing/empty or duplicated sample names.
    """
    check_not_empty(samples, source)
    names = pd.Series([str(name) for name in samples.index], index=samples.index)
    empty = names.str.strip().eq("").to_numpy() | pd.isna(samples.index)
    if empty.any():
        raise InputError(f"{source}, column 'sample': empty sample name at rows {describe_rows(np.flatnonzero(empty) + 2)}")
    duplicated = names.duplicated(keep=False).to_numpy()
    if duplicated.any():
        raise InputError(
            f"{source}, column 'sample': duplicated sample names {describe_rows(sorted(set(names[duplicated])))}"
        )
    samples = samples.copy()
    samples.index = pd.Index(names.to_numpy(), dtype=object, name="sample")
    return samples


def is_missing(values: pd.Series) -> np.ndarray:
    """Where a metadata column holds a missing value: NaN/None or a text marker of :data:`NA_MARKERS`."""
    text = values.map(lambda v: isinstance(v, str) and v.strip() in NA_MARKERS)
    return values.isna().to_numpy() | text.to_numpy(dtype=bool)


def check_sample_sets(count_samples, metadata_samples, counts_source: str, samples_source: str) -> None:
    """Raise unless the samples of the counts and of the metadata are the same set."""
    count_set, meta_set = set(count_samples), set(metadata_samples)
    no_metadata = sorted(count_set - meta_set)
    if no_metadata:
        raise InputError(
            f"{counts_source}, column 'sample': samples {describe_rows(no_metadata)} have counts but no row in "
            f"{samples_source}"
        )
    no_counts = sorted(meta_set - count_set)
    if no_counts:
        raise InputError(
            f"{samples_source}, column 'sample': samples {describe_rows(no_counts)} have no counts in "
            f"{counts_source} (a sample with all counts zero cannot be fitted; remove it from the metadata)"
        )


def check_no_zero_samples(totals: pd.Series, source: str) -> None:
    """Raise if some sample's counts are all zero."""
    zero = totals.index[totals.to_numpy() <= 0].tolist()
    if zero:
        raise InputError(f"{source}: samples {describe_rows(zero)} have all counts zero")


def check_library_size(library_size: pd.Series, samples, source: str) -> pd.Series:
    """User-given library sizes: one positive finite number per sample.

    Returns
    -------
    pandas.Series
        Float, indexed like ``samples``.
    """
    library_size = pd.Series(library_size)
    library_size.index = library_size.index.astype(str)
    missing = [s for s in samples if s not in library_size.index]
    if missing:
        raise InputError(f"{source}: no library size for samples {describe_rows(missing)}")
    values = pd.to_numeric(library_size.loc[list(samples)], errors="coerce").astype(float)
    bad = ~np.isfinite(values.to_numpy()) | (values.to_numpy() <= 0)
    if bad.any():
        raise InputError(
            f"{source}: library size must be a positive number; bad for samples "
            f"{describe_rows(values.index[bad].tolist())}"
        )
    return values.rename("library_size")
