"""Sequence keys of isomiRs: one alphabet, spellings that meet merged, multi-mapped sequences.

An isomiR is keyed by its normalised sequence (:func:`normalise_sequence`: blanks stripped,
upper case, ``U`` -> ``T``); :func:`merge_spellings` sums the counts of spellings that meet
(case, U/T) and lists them; :func:`multimapped_sequences` lists sequences annotated to
several miRNAs. Used by :class:`~bayesmir.data.container.IsomirData`, the annotations and
:mod:`bayesmir.isomir_types` (one rule for all).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


def normalise_sequence(sequence) -> str:
    """A sequence in the one alphabet of bayesmir: blanks stripped, upper case, ``U`` -> ``T``."""
    return str(sequence).strip().upper().replace("U", "T")


def normalise_sequences(sequences: pd.Series) -> pd.Series:
    """:func:`normalise_sequence` of every element (missing values stay missing)."""
    return sequences.map(normalise_sequence, na_action="ignore")


def merge_spellings(long: pd.DataFrame, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long table with normalised sequences (colliding spellings summed), and the collisions."""
    normal = normalise_sequences(long["sequence"])
    changed = (normal != long["sequence"]).to_numpy()
    columns = ["miRNA", "sequence", "spellings", "n_spellings", "reads"]
    if not changed.any():
        return long, pd.DataFrame(columns=columns)
    written = long.assign(normal=normal)
    spellings = written.groupby(["miRNA", "normal"])["sequence"].agg(lambda s: sorted(set(s)))
    spellings = spellings[spellings.map(len) > 1]
    collisions = pd.DataFrame({
        "miRNA": spellings.index.get_level_values(0), "sequence": spellings.index.get_level_values(1),
        "spellings": spellings.map(",".join).to_numpy(), "n_spellings": spellings.map(len).to_numpy(),
        "reads": np.zeros(len(spellings), dtype=np.int64),
    })
    long = written.drop(columns="sequence").rename(columns={"normal": "sequence"})
    if len(collisions):
        keys = pd.MultiIndex.from_frame(collisions[["miRNA", "sequence"]])
        hit = pd.MultiIndex.from_frame(long[["miRNA", "sequence"]]).isin(keys)
        reads = long[hit].groupby(["miRNA", "sequence"])["count"].sum()
        collisions["reads"] = reads.reindex(keys).to_numpy(dtype=np.int64)
        long = long.groupby(["miRNA", "sequence", "sample"], as_index=False, sort=False)["count"].sum()
        warnings.warn(
            f"{source}: {len(collisions)} isomiR sequences were written in more than one way (case, U/T), "
            f"e.g. {collisions['spellings'].iloc[0]}; merged as upper-case DNA and their "
            f"{int(collisions['reads'].sum()):,} reads summed (see data.sequence_collisions)",
            UserWarning, stacklevel=4,
        )
    return long[["miRNA", "sequence", "sample", "count"]], collisions[columns]


def multimapped_sequences(long: pd.DataFrame) -> pd.DataFrame:
    """Sequences annotated to more than one miRNA."""
    pairs = long[["sequence", "miRNA"]].drop_duplicates()
    n = pairs.groupby("sequence")["miRNA"].agg(["size", lambda m: ",".join(sorted(m))])
    n.columns = ["n_mirnas", "mirnas"]
    n = n[n["n_mirnas"] > 1]
    return n.reset_index()[["sequence", "n_mirnas", "mirnas"]]
