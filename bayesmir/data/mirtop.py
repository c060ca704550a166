"""Reader of mirtop GFF3 (mirGFF3), the community isomiR standard.

Format (https://github.com/miRTop/mirGFF3, ``definition.md``): ``##`` header lines, among
them ``## COLDATA: s1,s2,...`` naming the samples; then one tab-separated GFF3 line per
(read, mature miRNA) with columns seqID (precursor), source, type (``ref_miRNA`` or
``isomiR``), start, end, score, strand, phase and attributes. Attributes are ``key=value``
pairs separated by ``;`` (older mirtop wrote GTF-like ``key value``; both are read):
``Read`` (sequence), ``Name`` (mature miRNA), ``Parent`` (precursor), ``Variant`` (isomiR
labels such as ``iso_5p:-1,iso_add3p:2``; ``NA`` for the reference), ``Expression`` (raw
counts in ``COLDATA`` order) and ``Filter`` (``Pass``/``REJECT...``).

Lines whose ``Filter`` starts with ``REJECT`` are skipped, as the specification asks
("the sequence will be skipped ... when querying counts"). The canonical sequence of a
miRNA is the ``Read`` of its ``ref_miRNA`` line (``Variant=NA``), kept in the ``canonical``
annotation; ``Variant`` is kept in ``variant`` (``NA`` becomes ``"ref_miRNA"``) and
``Parent`` in ``precursor`` (see :mod:`bayesmir.data.annotations`).

The ``mirtop`` package's own parser (``mirtop.gff.body.read``) needs its command-line
``args`` object and imports Biopython's deprecated ``pairwise2``; this small reader of the
specification avoids both.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmir.errors import InputError, describe_rows

GFF_SUFFIXES = (".gff", ".gff3")
ATTRIBUTE = re.compile(r"^\s*([A-Za-z_]+)(?:=|\s+)(.*?)\s*$")
REFERENCE_TYPE = "ref_miRNA"


def is_mirtop(path: Path) -> bool:
    """Whether ``path`` looks like mirGFF3: a ``.gff``/``.gff3`` suffix (optionally ``.gz``)."""
    name = path.name.lower().removesuffix(".gz")
    return name.endswith(GFF_SUFFIXES)


def read_mirtop(path: Path, samples=None):
    """A mirGFF3 file as a long table (reader protocol of :func:`bayesmir.read_counts`).

    Parameters
    ----------
    path : pathlib.Path
    samples : pandas.DataFrame, optional
        Unused (sample names come from ``## COLDATA``); kept for the reader protocol.

    Returns
    -------
    (pandas.DataFrame, None, None)
        Long table ``miRNA, sequence, sample, count, canonical, variant, precursor`` of the
        non-zero counts, indexed by file line (so messages name lines), no stored metadata.

    Raises
    ------
    InputError
        No ``COLDATA`` header, a line with too few columns, a missing attribute, an
        ``Expression`` with the wrong number of values or a non-count value.
    """
    lines = _lines(path)
    names = _coldata(lines, path)
    records = [_record(number, text, len(names), path) for number, text in lines
               if text.strip() and not text.startswith("#")]
    records = [r for r in records if not r["filter"].upper().startswith("REJECT")]
    if not records:
        raise InputError(f"{path}: no isomiR lines (besides REJECT-filtered ones)")
    table = pd.DataFrame(records).set_index("line")
    table["canonical"] = table["miRNA"].map(_canonical_by_mirna(table)).fillna("")
    counts = np.vstack(table["counts"].to_numpy())
    rows, cols = np.nonzero(counts)
    long = table.iloc[rows][["miRNA", "sequence", "canonical", "variant", "precursor"]].copy()
    long.insert(2, "sample", np.asarray(names, dtype=object)[cols])
    long.insert(3, "count", counts[rows, cols])
    return long, None, None


def _lines(path: Path) -> list[tuple[int, str]]:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return [(i, line.rstrip("\n\r")) for i, line in enumerate(handle, start=1)]
    except (UnicodeDecodeError, OSError, EOFError) as error:
        raise InputError(f"{path}: cannot read as mirGFF3 text ({type(error).__name__}: {error})") from None


def _coldata(lines: list[tuple[int, str]], path: Path) -> list[str]:
    """Sample names of the ``## COLDATA:`` header (comma-separated; spaces in version 1.0)."""
    for _, text in lines:
        if text.startswith("#") and "COLDATA" in text:
            value = text.split("COLDATA", 1)[1].lstrip(":").strip()
            names = [n.strip() for n in (value.split(",") if "," in value else value.split())]
            if names and all(names) and len(set(names)) == len(names):
                return names
            raise InputError(f"{path}: the COLDATA header must list distinct sample names, got {value!r}")
    raise InputError(f"{path}: no '## COLDATA:' header line naming the samples of the Expression attribute")


def _attributes(text: str) -> dict[str, str]:
    pairs = (ATTRIBUTE.match(part) for part in text.split(";") if part.strip())
    return {m.group(1): m.group(2) for m in pairs if m}


def _record(number: int, text: str, n_samples: int, path: Path) -> dict:
    """One body line: names, sequence, labels and counts, checked."""
    fields = text.split("\t")
    if len(fields) < 9:
        raise InputError(f"{path}, line {number}: a GFF3 line needs 9 tab-separated columns, found {len(fields)}")
    attributes = _attributes(fields[8])
    missing = [k for k in ("Read", "Name", "Expression") if not attributes.get(k)]
    if missing:
        raise InputError(f"{path}, line {number}: missing attribute(s) {', '.join(missing)}")
    values = [v.strip() for v in attributes["Expression"].split(",")]
    if len(values) != n_samples:
        raise InputError(f"{path}, line {number}, attribute Expression: {len(values)} values for "
                         f"{n_samples} COLDATA samples")
    counts = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(counts) | (counts < 0) | (counts != np.round(counts))
    if bad.any():
        raise InputError(f"{path}, line {number}, attribute Expression: not a count in sample(s) "
                         f"{describe_rows(np.flatnonzero(bad) + 1)} ({attributes['Expression']!r})")
    variant = attributes.get("Variant", "")
    is_reference = fields[2] == REFERENCE_TYPE or variant == "NA"
    return {
        "line": number, "miRNA": attributes["Name"], "sequence": attributes["Read"],
        "variant": REFERENCE_TYPE if is_reference else variant, "precursor": attributes.get("Parent", fields[0]),
        "filter": attributes.get("Filter", "Pass"), "counts": counts.astype(np.int64),
    }


def _canonical_by_mirna(table: pd.DataFrame) -> dict[str, str]:
    """The reference read of each miRNA (its ``ref_miRNA`` line)."""
    references = table[table["variant"] == REFERENCE_TYPE].drop_duplicates("miRNA")
    return dict(zip(references["miRNA"], references["sequence"]))
