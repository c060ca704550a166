"""isomiR typing (mirtop-style labels) and isomiR-specific log fold changes summarised by type.

Conventions of :func:`classify_isomir`
--------------------------------------
- ``shift_5p``, ``shift_3p``: signed nucleotide offsets of each end against the canonical
  mature sequence, ``+`` extends, ``-`` trims. ``shift_3p`` counts templated bases only when
  a precursor is given (non-templated 3' bases are in ``non_templated_3p``). Note that
  mirtop's ``iso_5p`` label uses the opposite sign (``iso_5p:-1`` = one base *added* at the
  5' end, "start shifted to the left"); ``type`` follows mirtop, the fields follow the rule above.
- ``substitutions``: ``(position, ref, alt)`` with 1-based positions on the isomiR read (as
  mirtop's CIGAR and ``Changes`` do), ref from the precursor (or the canonical sequence).
- ``non_templated_3p``: with a precursor, the read's 3' tail from the first base among the
  last :data:`MAX_ADDITION` that does not match the precursor (so a mismatch there counts as an
  addition, not a substitution, as in mirtop); ``""`` without a precursor.
- ``type``: mirtop ``Variant`` labels (``iso_5p:+/-N``, ``iso_3p:+/-N``, ``iso_add3p:N``,
  ``iso_snv_seed`` (positions 2-7), ``iso_snv_central_offset`` (8), ``iso_snv_central``
  (9-12), ``iso_snv_central_supp`` (13-17), ``iso_snv``), sorted and joined by ``,`` as
  ``mirtop`` does; ``"ref_miRNA"`` for the canonical sequence. ``iso_add5p`` is not computed.

Sequences are compared in upper case with U read as T (miRBase FASTA is RNA).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmir.data.sequences import normalise_sequence
from bayesmir.errors import InputError
from bayesmir.log_base import DEFAULT_LOG_BASE, in_log_base

MAX_ADDITION = 3
MAX_SHIFT = 5
REFERENCE_LABEL = "ref_miRNA"
CATEGORIES = ("ref_miRNA", "iso_5p", "iso_3p", "iso_add3p", "iso_snv", "seed_shift")


@dataclass(frozen=True)
class IsomirType:
    """How an isomiR differs from its miRNA's canonical sequence (see the module docstring)."""

    shift_5p: int
    shift_3p: int
    substitutions: tuple[tuple[int, str, str], ...] = field(default=())
    non_templated_3p: str = ""
    seed_shift: bool = False
    type: str = REFERENCE_LABEL

    @property
    def categories(self) -> list[str]:
        """Coarse classes for :func:`effects_by_type`: one or several of :data:`CATEGORIES`."""
        found = [name for name, hit in (
            ("iso_5p", self.shift_5p != 0), ("iso_3p", self.shift_3p != 0),
            ("iso_add3p", bool(self.non_templated_3p)), ("iso_snv", bool(self.substitutions)),
            ("seed_shift", self.seed_shift)) if hit]
        return found or [REFERENCE_LABEL]


def classify_isomir(sequence: str, canonical: str, precursor: str | None = None) -> IsomirType:
    """Type an isomiR against its miRNA's canonical mature sequence.

    Parameters
    ----------
    sequence : str
        The isomiR read.
    canonical : str
        The canonical mature sequence.
    precursor : str, optional
        The hairpin holding ``canonical``: tells templated from non-templated 3' bases.

    Returns
    -------
    IsomirType

    Raises
    ------
    InputError
        ``canonical`` not found in ``precursor``, or an empty sequence.
    """
    read, mature = normalise_sequence(sequence), normalise_sequence(canonical)
    if not read or not mature:
        raise InputError("classify_isomir needs non-empty sequence and canonical")
    template = mature if precursor is None else normalise_sequence(precursor)
    anchor = template.find(mature)
    if anchor < 0:
        raise InputError(f"canonical {canonical!r} is not in the precursor {precursor!r}")
    start = _best_start(read, template, anchor, compare_outside=precursor is not None)
    mismatches = [i for i in range(len(read)) if not _matches(read, template, start, i, precursor is not None)]
    tail_from = len(read)
    if precursor is not None:
        late = [i for i in mismatches if i >= len(read) - MAX_ADDITION]
        tail_from = late[0] if late else len(read)
    shift_5p = anchor - start
    shift_3p = (start + tail_from) - (anchor + len(mature))
    substitutions = tuple((i + 1, _ref(template, start + i), read[i]) for i in mismatches if i < tail_from)
    result = IsomirType(shift_5p, shift_3p, substitutions, read[tail_from:], read[1:8] != mature[1:8])
    return _with_label(result)


def _matches(read: str, template: str, start: int, i: int, compare_outside: bool) -> bool:
    j = start + i
    if 0 <= j < len(template):
        return read[i] == template[j]
    return not compare_outside  # outside the canonical (no precursor): unknown, not a mismatch


def _ref(template: str, j: int) -> str:
    return template[j] if 0 <= j < len(template) else "-"


def _best_start(read: str, template: str, anchor: int, compare_outside: bool) -> int:
    """Template position of the read's first base: fewest mismatches, then smallest shift."""
    def cost(start):
        overlap = sum(0 <= start + i < len(template) for i in range(len(read)))
        wrong = sum(not _matches(read, template, start, i, compare_outside) for i in range(len(read)))
        return (overlap == 0, wrong, abs(start - anchor))
    return min(range(anchor - MAX_SHIFT, anchor + MAX_SHIFT + 1), key=cost)


def _snv_label(position: int) -> str:
    if 2 <= position <= 7:
        return "iso_snv_seed"
    if position == 8:
        return "iso_snv_central_offset"
    if 9 <= position <= 12:
        return "iso_snv_central"
    if 13 <= position <= 17:
        return "iso_snv_central_supp"
    return "iso_snv"


def _with_label(kind: IsomirType) -> IsomirType:
    labels = {_snv_label(p) for p, _, _ in kind.substitutions}
    if kind.non_templated_3p:
        labels.add(f"iso_add3p:{len(kind.non_templated_3p)}")
    if kind.shift_5p:
        labels.add(f"iso_5p:{'-' if kind.shift_5p > 0 else '+'}{abs(kind.shift_5p)}")
    if kind.shift_3p:
        labels.add(f"iso_3p:{'+' if kind.shift_3p > 0 else '-'}{abs(kind.shift_3p)}")
    return IsomirType(kind.shift_5p, kind.shift_3p, kind.substitutions, kind.non_templated_3p,
                      kind.seed_shift, ",".join(sorted(labels)) or REFERENCE_LABEL)


def normalise_variant(label: str) -> frozenset[str]:
    """mirtop ``Variant`` labels as a set, ``+`` dropped from counts (``iso_add3p:+2`` = ``iso_add3p:2``)."""
    if label in ("NA", "", REFERENCE_LABEL):
        return frozenset({REFERENCE_LABEL})
    parts = set()
    for part in label.split(","):
        name, _, value = part.strip().partition(":")
        parts.add(f"{name}:{value.lstrip('+')}" if name.startswith("iso_add") else part.strip())
    return frozenset(parts)


# ---------------------------------------------------------------------- reference sequences
def read_reference(path) -> dict[str, str]:
    """Reference sequences by name from a miRBase FASTA (mature.fa, hairpin.fa) or a table.

    Parameters
    ----------
    path : str or pathlib.Path
        FASTA (``>name description`` then sequence lines; RNA or DNA) or a CSV/TSV with
        columns ``miRNA`` (or ``name``) and ``sequence``.

    Returns
    -------
    dict of str to str
        Sequences in upper case, U as T.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith(">"):
        sequences: dict[str, str] = {}
        name = None
        for line in text.splitlines():
            if line.startswith(">"):
                name = line[1:].split()[0]
                sequences[name] = ""
            elif name is not None:
                sequences[name] += normalise_sequence(line)
        return sequences
    table = pd.read_csv(path, sep="\t" if path.suffix.lower() in (".tsv", ".txt") else ",", dtype=str)
    key = "miRNA" if "miRNA" in table.columns else "name"
    if key not in table.columns or "sequence" not in table.columns:
        raise InputError(f"{path}: a reference table needs columns 'miRNA' (or 'name') and 'sequence'")
    return {str(k): normalise_sequence(v) for k, v in zip(table[key], table["sequence"])}


def isomir_types(data, reference: Mapping[str, str] | str | Path | None = None,
                 precursors: Mapping[str, str] | str | Path | None = None) -> pd.DataFrame:
    """Every isomiR of ``data`` typed against its miRNA's canonical sequence.

    The canonical sequence comes, in this order, from the input's ``canonical`` annotation
    (mirtop, miRge3), from ``reference`` (by miRNA), else -- a proxy, stated in
    ``canonical_source`` -- the miRNA's most abundant sequence. The precursor is looked up
    in ``precursors`` by the isomiR's ``precursor`` annotation, else by miRNA name.

    Parameters
    ----------
    data : IsomirData or anndata.AnnData
    reference, precursors : mapping or path, optional
        Sequences by name, or a file for :func:`read_reference` (mature.fa, hairpin.fa).

    Returns
    -------
    pandas.DataFrame
        ``miRNA, sequence, canonical, canonical_source, shift_5p, shift_3p, substitutions``
        (``"4:G>C;..."``), ``non_templated_3p, seed_shift, type, categories``.
    """
    table, totals = _isomir_frame(data)
    reference = read_reference(reference) if isinstance(reference, (str, Path)) else dict(reference or {})
    precursors = read_reference(precursors) if isinstance(precursors, (str, Path)) else dict(precursors or {})
    top = table.assign(total=totals).sort_values(["miRNA", "total", "sequence"], ascending=[True, False, True])
    most_abundant = top.drop_duplicates("miRNA").set_index("miRNA")["sequence"]
    rows = []
    for row in table.itertuples(index=False):
        canonical, source = getattr(row, "canonical", ""), "input"
        if not canonical:
            canonical, source = reference.get(row.miRNA, ""), "reference"
        if not canonical:
            canonical, source = most_abundant[row.miRNA], "most_abundant"
        precursor = precursors.get(getattr(row, "precursor", "")) or precursors.get(row.miRNA)
        if precursor is not None and normalise_sequence(canonical) not in normalise_sequence(precursor):
            precursor = None
        kind = classify_isomir(row.sequence, canonical, precursor)
        rows.append({"miRNA": row.miRNA, "sequence": row.sequence, "canonical": normalise_sequence(canonical),
                     "canonical_source": source, "shift_5p": kind.shift_5p, "shift_3p": kind.shift_3p,
                     "substitutions": ";".join(f"{p}:{r}>{a}" for p, r, a in kind.substitutions),
                     "non_templated_3p": kind.non_templated_3p, "seed_shift": kind.seed_shift,
                     "type": kind.type, "categories": ",".join(kind.categories)})
    return pd.DataFrame(rows)


def _isomir_frame(data) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-isomiR annotations and total counts of an IsomirData, an AnnData or a table
    (``miRNA, sequence, total`` and any annotation column, e.g. :func:`fitted_isomirs`)."""
    if isinstance(data, pd.DataFrame):
        keep = [c for c in ("miRNA", "sequence", "canonical", "precursor") if c in data.columns]
        return data[keep].fillna("").astype(str).reset_index(drop=True), data["total"].to_numpy(dtype=float)
    if hasattr(data, "counts") and hasattr(data.counts, "coords"):
        from bayesmir.data.annotations import isomir_annotations

        return isomir_annotations(data), data.counts.to_numpy().sum(axis=0)
    var = data.var.astype({"miRNA": str, "sequence": str})
    matrix = data.X.toarray() if hasattr(data.X, "toarray") else np.asarray(data.X)
    totals = matrix.sum(axis=0) if matrix.shape[0] else np.zeros(len(var))
    keep = [c for c in ("miRNA", "sequence", "canonical", "precursor") if c in var.columns]
    return var[keep].fillna("").astype(str).reset_index(drop=True), totals


def fitted_isomirs(result) -> pd.DataFrame:
    """``miRNA, sequence, total`` of every isomiR of a run's fits (counts from ``observed_data``).

    What :func:`isomir_types` and :func:`effects_by_type` need when the input data are not at
    hand (e.g. for a saved run): the canonical sequences then come from ``reference`` or the
    most-abundant proxy.
    """
    rows = []
    for mirna, idata in result.posteriors.items():
        sequences = [str(s) for s in idata.posterior["isomir"].values]
        totals = (idata.observed_data["count"].sum("sample").values if "observed_data" in idata.groups()
                  else np.zeros(len(sequences)))
        rows.extend({"miRNA": mirna, "sequence": s, "total": float(t)} for s, t in zip(sequences, totals))
    return pd.DataFrame(rows, columns=["miRNA", "sequence", "total"])


# ---------------------------------------------------------------------- effects by type
def effects_by_type(result, data, reference=None, precursors=None, level: float = 0.95,
                    log_base: str = DEFAULT_LOG_BASE) -> pd.DataFrame:
    """isomiR-specific log fold changes (deviations from the miRNA's) summarised by isomiR class.

    For each miRNA and class of :data:`CATEGORIES` (an isomiR can be in several: e.g. a
    5'-shifted isomiR is in ``iso_5p`` and ``seed_shift``), the posterior of the mean
    deviation ``b_j`` of the class's isomiRs, computed draw by draw; study-wide
    (``miRNA = "all"``), the posterior of the mean over miRNAs of those means (draws of
    different miRNAs are independent, so they are combined index by index after thinning to
    the smallest draw count). Natural log unless ``log_base`` says otherwise.

    Parameters
    ----------
    result : FitResult
    data : IsomirData, anndata.AnnData or pandas.DataFrame
        The data fitted (gives the canonical sequences; see :func:`isomir_types`), or
        :func:`fitted_isomirs` of ``result``.
    reference, precursors
        As in :func:`isomir_types`.
    level : float
        Mass of the equal-tailed interval.
    log_base : {"e", "2", "10"}
        Base of the log fold changes; other than ``"e"``, the ``deviation_*`` columns are
        ``deviation_log2fc_*`` (:mod:`bayesmir.log_base`).

    Returns
    -------
    pandas.DataFrame
        ``miRNA, coef, category, n_isomirs, deviation_estimate, deviation_sd, deviation_ci_low,
        deviation_ci_high, p_deviation_gt_0``.
    """
    types = isomir_types(data, reference, precursors).set_index(["miRNA", "sequence"])["categories"]
    tail = (1 - level) / 2
    per_mirna, draws_by_key = [], {}
    for mirna in result.mirnas:
        idata = result.posteriors.get(mirna)
        if idata is None:
            continue
        effect = idata.posterior["isomir_effect"].stack(s=("chain", "draw"))
        terms = [str(t) for t in idata.posterior["re_term"].values[1:]]
        for coef in terms:
            deviations = effect.sel(re_term=coef).transpose("isomir", "s").to_numpy()
            classes = [types.get((mirna, str(s)), "").split(",") for s in idata.posterior["isomir"].values]
            for category in CATEGORIES:
                members = [j for j, c in enumerate(classes) if category in c]
                if not members:
                    continue
                draws = deviations[members].mean(axis=0)
                draws_by_key.setdefault((coef, category), []).append(draws)
                per_mirna.append(_summary(mirna, coef, category, len(members), draws, tail))
    study = []
    for (coef, category), arrays in draws_by_key.items():
        n = min(len(a) for a in arrays)
        draws = np.mean([a[np.linspace(0, len(a) - 1, n).astype(int)] for a in arrays], axis=0)
        study.append(_summary("all", coef, category, len(arrays), draws, tail))
    columns = ["miRNA", "coef", "category", "n_isomirs", "deviation_estimate", "deviation_sd",
               "deviation_ci_low", "deviation_ci_high", "p_deviation_gt_0"]
    return in_log_base(pd.DataFrame(per_mirna + study, columns=columns), log_base)


def _summary(mirna: str, coef: str, category: str, n: int, draws: np.ndarray, tail: float) -> dict:
    return {"miRNA": mirna, "coef": coef, "category": category, "n_isomirs": n,
            "deviation_estimate": float(draws.mean()),
            "deviation_sd": float(draws.std(ddof=1)) if len(draws) > 1 else math.nan,
            "deviation_ci_low": float(np.quantile(draws, tail)),
            "deviation_ci_high": float(np.quantile(draws, 1 - tail)),
            "p_deviation_gt_0": float(np.mean(draws > 0))}
