"""One miRNA's model inputs as plain arrays: what every inference method receives.

The driver turns an :class:`~bayesmir.data.IsomirData` and a
:class:`~bayesmir.design.Design` into one :class:`MirnaProblem` per miRNA, so the
inference methods know nothing of isomiR bookkeeping (and the data layer nothing
of inference).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bayesmir.design import Design
from bayesmir.errors import InputError

NORMALISATIONS = ("total", "median_ratio")


@dataclass(frozen=True)
class MirnaProblem:
    """Counts and designs of one miRNA.

    Attributes
    ----------
    mirna : str
        miRNA name.
    counts : numpy.ndarray of int64, shape (n_samples, n_isomirs)
        Counts with zeros filled in for every (sample, isomiR) pair.
    sequences : list of str
        IsomiR sequences, the columns of ``counts``.
    samples : list of str
        Sample names, the rows of ``counts``.
    offset : numpy.ndarray, shape (n_samples,)
        ``log(library size / 1e4)`` per sample.
    X : numpy.ndarray, shape (n_samples, n_coefs)
        Fixed-effects design.
    Z : numpy.ndarray, shape (n_samples, n_re)
        Per-isomiR random-effects design (intercept, then slopes); one column for
        the reduced model.
    coef_names, re_names : list of str
        Column names of ``X`` and ``Z``.
    """

    mirna: str
    counts: np.ndarray
    sequences: list[str]
    samples: list[str]
    offset: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    coef_names: list[str]
    re_names: list[str]

    @property
    def n_samples(self) -> int:
        return self.counts.shape[0]

    @property
    def n_isomirs(self) -> int:
        return self.counts.shape[1]


def reduced_problem(problem: MirnaProblem) -> MirnaProblem:
    """The same miRNA with isomiR intercepts only (no random slopes): miRglmm's reduced model."""
    return replace(problem, Z=np.asarray(problem.Z)[:, :1], re_names=list(problem.re_names[:1]))


def bucket_size(n_isomirs: int, base: int = 2) -> int:
    """Padded isomiR count: the next power of ``base``, at least 4.

    Compiled models (nutpie, the JAX engine) are specific to array shapes; padding the
    isomiR axis to a few bucket sizes lets one compiled model serve many miRNAs. The JAX
    engine uses ``base=4`` (fewer compiles; measured: no slower than powers of two, its
    cost being per call rather than per array element), nutpie ``base=2``.
    """
    size = 4
    while size < int(n_isomirs):
        size *= base
    return size


def padded_counts(problem: MirnaProblem, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts with the isomiR axis padded with zero columns to ``size``, and the mask of real isomiRs.

    Padding lets one compiled model serve every miRNA of a size bucket.

    Returns
    -------
    counts : numpy.ndarray, shape (n_samples, size), float64
    mask : numpy.ndarray, shape (size,), 1.0 for real isomiRs, 0.0 for padding
    """
    n, J = problem.counts.shape
    if size < J:
        raise ValueError(f"cannot pad the {J} isomiRs of {problem.mirna} to {size}")
    counts = np.zeros((n, size))
    counts[:, :J] = problem.counts
    mask = np.zeros(size)
    mask[:J] = 1.0
    return counts, mask


def library_offset(
    library_size: pd.Series, mirna_counts: pd.DataFrame | None = None, normalisation: str = "total"
) -> pd.Series:
    """Per-sample offset ``log(effective library size / 1e4)``.

    Parameters
    ----------
    library_size : pandas.Series
        Total counts ``T_i`` per sample (over all isomiRs before filtering).
    mirna_counts : pandas.DataFrame, optional
        miRNA-summed counts (miRNAs x samples); needed for ``"median_ratio"``.
    normalisation : {"total", "median_ratio"}
        ``"total"`` uses ``T_i`` as miRglmm does. ``"median_ratio"`` uses DESeq2's
        median-of-ratios size factors of the miRNA-summed counts, rescaled to the
        geometric mean of ``T``: robust when abundant miRNAs change (composition
        shift), at the cost of assuming most miRNAs do not change.

    Returns
    -------
    pandas.Series
        Offset per sample.
    """
    if normalisation not in NORMALISATIONS:
        raise InputError(f"normalisation must be one of {NORMALISATIONS}, not {normalisation!r}")
    total = library_size.astype(float)
    if normalisation == "total":
        return np.log(total / 1e4)
    if mirna_counts is None:
        raise InputError("normalisation='median_ratio' needs the miRNA-summed counts")
    counts = mirna_counts[total.index].to_numpy(dtype=float)
    expressed = (counts > 0).all(axis=1)
    if expressed.sum() < 2:
        raise InputError("normalisation='median_ratio' needs at least 2 miRNAs with counts in every sample")
    log_counts = np.log(counts[expressed])
    log_ratio = log_counts - log_counts.mean(axis=1, keepdims=True)
    log_size = np.median(log_ratio, axis=0)
    log_size -= log_size.mean()
    return pd.Series(log_size + np.log(total).mean() - np.log(1e4), index=total.index)


def mirna_problems(data, design: Design, normalisation: str = "total", mirnas=None) -> list[MirnaProblem]:
    """One :class:`MirnaProblem` per miRNA of an :class:`~bayesmir.data.IsomirData`.

    Parameters
    ----------
    data : IsomirData
        Counts, sample metadata and library sizes.
    design : Design
        Built from ``data.samples`` (same sample order).
    normalisation : {"total", "median_ratio"}
        Offset, see :func:`library_offset`.
    mirnas : sequence of str, optional
        Default every miRNA of ``data``.
    """
    samples = list(data.samples.index)
    if list(design.samples) != samples:
        raise InputError("the design's samples differ from the data's (build it from data.samples)")
    mirna_counts = data.mirna_counts() if normalisation == "median_ratio" else None
    offset = library_offset(data.library_size, mirna_counts, normalisation).loc[samples].to_numpy(dtype=float)
    names = list(data.mirnas) if mirnas is None else list(mirnas)
    return [_mirna_problem(data.isomir_counts(name), name, samples, offset, design) for name in names]


def _mirna_problem(block, mirna: str, samples: list[str], offset: np.ndarray, design: Design) -> MirnaProblem:
    """A :class:`MirnaProblem` from one miRNA's (sample, isomir) count block."""
    return MirnaProblem(
        mirna=mirna, counts=block.to_numpy().astype(np.int64),
        sequences=[str(s) for s in block["sequence"].to_numpy()], samples=samples, offset=offset,
        X=design.X, Z=design.Z, coef_names=list(design.coef_names), re_names=list(design.re_names),
    )


def problem_from_idata(idata, mirna: str = "") -> MirnaProblem:
    """Rebuild the :class:`MirnaProblem` stored in an InferenceData's ``observed_data``/``constant_data``."""
    observed = idata.observed_data
    constant = idata.constant_data
    return MirnaProblem(
        mirna=mirna or str(idata.posterior.attrs.get("mirna", "")),
        counts=observed["count"].transpose("sample", "isomir").values.astype(np.int64),
        sequences=[str(s) for s in observed["isomir"].values],
        samples=[str(s) for s in observed["sample"].values],
        offset=constant["offset"].values,
        X=constant["X"].transpose("sample", "coef").values,
        Z=constant["Z"].transpose("sample", "re_term").values,
        coef_names=[str(s) for s in constant["coef"].values],
        re_names=[str(s) for s in constant["re_term"].values],
    )
