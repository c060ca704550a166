"""Per-isomiR annotations (reference sequences and variant labels a tool reports) on an IsomirData.

They are stored as extra coordinates of ``counts`` along ``isomir`` (beside ``miRNA`` and
``sequence``), so ``subset``/``filter`` carry them:

- ``canonical``: the canonical (reference) mature sequence of the isomiR's miRNA, ``""`` if
  the input does not say;
- ``variant``: the tool's isomiR label (mirtop ``Variant``; ``"ref_miRNA"`` for the
  canonical sequence), ``""`` if none;
- ``precursor``: the precursor (hairpin) name the isomiR was aligned to, ``""`` if none.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from bayesmir.data.sequences import normalise_sequences

ANNOTATION_COLUMNS = ("canonical", "variant", "precursor")


def annotate_isomirs(data, table: pd.DataFrame):
    """``data`` with the annotation columns of ``table`` as per-isomiR coordinates.

    Parameters
    ----------
    data : IsomirData
    table : pandas.DataFrame
        Columns ``miRNA``, ``sequence`` and any of :data:`ANNOTATION_COLUMNS` (e.g. the long
        table a reader produced; the first value per isomiR is used).

    Returns
    -------
    IsomirData
        ``data`` itself when ``table`` has no annotation column.
    """
    columns = [c for c in ANNOTATION_COLUMNS if c in table.columns]
    if not columns:
        return data
    # keyed as the container keys isomiRs (strip, upper case, U -> T), so no spelling loses its labels
    keyed = table.assign(sequence=normalise_sequences(table["sequence"].astype(str)))
    first = keyed.drop_duplicates(["miRNA", "sequence"]).set_index(["miRNA", "sequence"])[columns]
    keys = pd.MultiIndex.from_arrays([data.counts["miRNA"].to_numpy(), data.counts["sequence"].to_numpy()])
    values = first.reindex(keys).fillna("")
    coords = {c: ("isomir", values[c].to_numpy().astype(str)) for c in columns}
    return replace(data, counts=data.counts.assign_coords(coords))


def isomir_annotations(data) -> pd.DataFrame:
    """One row per isomiR: ``miRNA``, ``sequence`` and the annotation coordinates present."""
    columns = ["miRNA", "sequence"] + [c for c in ANNOTATION_COLUMNS if c in data.counts.coords]
    return pd.DataFrame({c: np.asarray(data.counts[c].to_numpy()).astype(str) for c in columns})
