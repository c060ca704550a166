"""Readers of isomiR count tables written by miRge3 and sRNAbench/sRNAde, and format detection.

Formats (the layouts miRglmm's vignette imports)
------------------------------------------------
- **miRge3** ``mapped.csv`` (``miRge3.0 annotate``; written by ``mirge/__main__.py`` from the
  table built in ``mirge/libs/digest.py``): CSV, first column ``Sequence``, then
  ``annotFlag``, ``exact miRNA``, ``hairpin miRNA``, ``mature tRNA``, ``primary tRNA``,
  ``snoRNA``, ``rRNA``, ``ncrna others``, ``mRNA``, ``isomiR miRNA`` (and ``spike-in`` in
  recent versions), then one count column per sample. A row with ``exact miRNA`` set is a
  miRNA's canonical sequence, one with ``isomiR miRNA`` set an isomiR; other rows (tRNA,
  hairpin, ...) are left out. The canonical sequences are kept in the ``canonical``
  annotation (:mod:`bayesmir.data.annotations`).
- **sRNAbench** isomiR matrix (``sRNAde ... readIso=true``:
  ``microRNAannotation_minExpr1_RC.mat``): tab-separated, first column ``name`` holding
  ``sequence|miRNA``, then one count column per sample named ``sample`` or
  ``sample|group``; in the latter case the groups become the sample metadata's ``group``.

Each reader follows the protocol of :func:`bayesmir.read_counts`: ``(path, samples) ->
(long table, stored sample metadata or None, line offset or None)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesmir.data import validation
from bayesmir.data.mirtop import is_mirtop, read_mirtop
from bayesmir.data.text_io import read_text
from bayesmir.errors import InputError, describe_rows

MIRGE3_ANNOTATION_COLUMNS = (
    "annotFlag", "exact miRNA", "hairpin miRNA", "mature tRNA", "primary tRNA", "snoRNA", "rRNA",
    "ncrna others", "mRNA", "isomiR miRNA", "spike-in",
)
SRNABENCH_SUFFIXES = (".mat",)


def detect_tool_format(path: Path) -> str | None:
    """``"mirtop"``, ``"mirge3"``, ``"srnabench"`` from the suffix and header, else ``None``."""
    if is_mirtop(path):
        return "mirtop"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(SRNABENCH_SUFFIXES):
        return "srnabench"
    if name.endswith(".csv"):
        header = _header(path, ",")
        if {"exact miRNA", "isomiR miRNA"} <= set(header):
            return "mirge3"
    return None


def read_mirge3(path: Path, samples=None):
    """miRge3 ``mapped.csv`` as a long table with the ``canonical`` annotation.

    Returns
    -------
    (pandas.DataFrame, None, None)
        Long table indexed by file line.
    """
    table = _read(path, ",")
    validation.require_columns(table, ("Sequence", "exact miRNA", "isomiR miRNA"), str(path))
    sample_columns = [c for c in table.columns[1:] if c not in MIRGE3_ANNOTATION_COLUMNS]
    if not sample_columns:
        raise InputError(f"{path}: no sample count columns after the miRge3 annotation columns")
    exact = table["exact miRNA"].fillna("").astype(str).str.strip()
    isomir = table["isomiR miRNA"].fillna("").astype(str).str.strip()
    both = (exact != "") & (isomir != "")
    if both.any():
        rows = table.index[both.to_numpy()]
        raise InputError(f"{path}, columns 'exact miRNA'/'isomiR miRNA', rows {describe_rows(rows)}: "
                         "a sequence is both a canonical miRNA and an isomiR")
    keep = ((exact != "") | (isomir != "")).to_numpy()
    if not keep.any():
        raise InputError(f"{path}: no row has an 'exact miRNA' or 'isomiR miRNA' annotation")
    isomirs = pd.DataFrame({"miRNA": np.where(exact != "", exact, isomir),
                            "sequence": table["Sequence"].astype(str)})
    canonical = dict(zip(isomirs["miRNA"][exact != ""], isomirs["sequence"][exact != ""]))
    isomirs["canonical"] = isomirs["miRNA"].map(canonical).fillna("")
    return _melt(table[keep], isomirs[keep], sample_columns, path), None, None


def read_srnabench(path: Path, samples=None):
    """sRNAde isomiR matrix (``name`` = ``sequence|miRNA``) as a long table.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame or None, None)
        Long table indexed by file line; sample metadata with ``group`` when every
        sample column is named ``sample|group``.
    """
    table = _read(path, "\t")
    first = table.columns[0]
    names = table[first].fillna("").astype(str)
    parts = names.str.split("|", n=1, expand=True)
    if parts.shape[1] != 2 or parts[1].isna().any() or (parts == "").any(axis=None):
        bad = table.index[(~names.str.contains("|", regex=False)).to_numpy()]
        raise InputError(f"{path}, column {first!r}, rows {describe_rows(bad) or '(all)'}: expected "
                         "'sequence|miRNA' names (sRNAde isomiR matrix)")
    isomirs = pd.DataFrame({"miRNA": parts[1].str.strip(), "sequence": parts[0].str.strip()})
    columns = [str(c) for c in table.columns[1:]]
    if not columns:
        raise InputError(f"{path}: no sample count columns after {first!r}")
    split = [c.split("|", 1) for c in columns]
    meta = None
    if all(len(s) == 2 for s in split):
        meta = pd.DataFrame({"group": [s[1] for s in split]}, index=pd.Index([s[0] for s in split], name="sample"))
        table = table.rename(columns=dict(zip(columns, meta.index)))
        columns = list(meta.index)
    return _melt(table, isomirs, columns, path), meta, None


READERS = {"mirtop": read_mirtop, "mirge3": read_mirge3, "srnabench": read_srnabench}


# ---------------------------------------------------------------------- helpers
def _header(path: Path, sep: str) -> list[str]:
    """The column names, or none when the file does not parse (detection then looks elsewhere)."""
    try:
        return [str(c) for c in read_text(path, nrows=0, sep=sep).columns]
    except InputError:
        return []


def _read(path: Path, sep: str) -> pd.DataFrame:
    """The table as text, rows indexed by file line (for messages)."""
    table = read_text(path, sep=sep, na_values=[""])
    validation.check_not_empty(table, str(path))
    table.index = pd.RangeIndex(2, len(table) + 2)
    return table


def _melt(table: pd.DataFrame, isomirs: pd.DataFrame, sample_columns: list[str], path: Path) -> pd.DataFrame:
    """Non-zero counts as a long table (annotation columns kept), indexed by file line."""
    counts = np.column_stack([validation.check_count_column(table, c, str(path), None) for c in sample_columns])
    rows, cols = np.nonzero(counts)
    long = isomirs.set_axis(table.index).iloc[rows].copy()
    long.insert(2, "sample", np.asarray(sample_columns, dtype=object)[cols])
    long.insert(3, "count", counts[rows, cols])
    return long
