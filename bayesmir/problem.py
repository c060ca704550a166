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

DEFAULT_NORMALISATION = "robust"  # composition-robust (benchmarks/results/calibration.md); "total" is miRglmm's
NORMALISATIONS = ("total", "median_ratio", "robust")


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


BUCKET_BASE = 4  # the engine's isomiR axis is padded to powers of 4 (see bucket_size) ...
MIN_PADDED = 64  # ... at least 64 with few samples: a shape costs ~9 s of compiling, 64 columns ~0.1 s per fit
SMALL_PAD_SAMPLES = 64  # ... from this many samples, powers of 2 from 4: the fit's cost grows with the padding
LARGE_STEP = 1024  # ... and above this, to multiples of it (1,052 isomiRs: 2,048 columns, not 4,096)


def padded_size(n_isomirs: int, n_samples: int | None = None) -> int:
    """Padded isomiR count of the JAX engine's arrays (:mod:`bayesmir.marginal`).

    Below :data:`SMALL_PAD_SAMPLES` samples (or ``n_samples`` None): powers of 4 from
    :data:`MIN_PADDED`, so few shapes compile (~9 s of CPU per size and model; measured on the
    example: 0.12 / 0.20 / 0.41 s per fit at 16 / 64 / 256 columns for 15 isomiRs). From
    :data:`SMALL_PAD_SAMPLES` samples on, powers of 2 from 4: the engine then eliminates the
    sample block and keeps ``p + J_pad q`` latent variables dense, so the padding costs more
    than compiling (benchmarks/results/scale.md: full + reduced fit of a 2-6 isomiR miRNA at 500
    samples ~5 s padded to 64, ~1.5 s to 16, ~0.5 s to 4). Multiples of :data:`LARGE_STEP`
    beyond it.
    """
    if n_isomirs > LARGE_STEP:
        return -(-int(n_isomirs) // LARGE_STEP) * LARGE_STEP
    if n_samples is not None and n_samples >= SMALL_PAD_SAMPLES:
        return bucket_size(n_isomirs, base=2)
    return max(MIN_PADDED, bucket_size(n_isomirs, base=BUCKET_BASE))


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
    library_size: pd.Series,
    mirna_counts: pd.DataFrame | None = None,
    normalisation: str = "total",
    design: Design | None = None,
) -> pd.Series:
    """Per-sample offset ``log(effective library size / 1e4)``.

    Parameters
    ----------
    library_size : pandas.Series
        Total counts ``T_i`` per sample (over all isomiRs before filtering).
    mirna_counts : pandas.DataFrame, optional
        miRNA-summed counts (miRNAs x samples); needed for ``"median_ratio"`` and ``"robust"``.
    normalisation : {"total", "median_ratio", "robust"}
        ``"total"`` uses ``T_i`` as miRglmm does: biased when DE changes the library's
        composition. ``"median_ratio"`` uses DESeq2's median-of-ratios size factors of the
        miRNA-summed counts: robust when changes are balanced, biased when most go one
        way. ``"robust"`` (:func:`robust_log_size_factors`) centres the fold changes of
        ``design`` on their mode (most miRNAs unchanged, in whatever direction the others go).
        The latter two are rescaled to the geometric mean of ``T``.
    design : Design, optional
        Fixed-effects design; used by ``"robust"`` (without it, intercept only).

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
        raise InputError(f"normalisation={normalisation!r} needs the miRNA-summed counts")
    counts = mirna_counts[total.index].to_numpy(dtype=float)
    expressed = (counts > 0).all(axis=1)
    if expressed.sum() < 2:
        raise InputError(f"normalisation={normalisation!r} needs at least 2 miRNAs with counts in every sample")
    log_counts = np.log(counts[expressed])
    if normalisation == "median_ratio":
        log_size = median_ratio_log_size_factors(log_counts)
    else:
        log_size = robust_log_size_factors(log_counts, _design_rows(design, total.index))
    log_size = log_size - log_size.mean()
    return pd.Series(log_size + np.log(total).mean() - np.log(1e4), index=total.index)


def _design_rows(design: Design | None, samples: pd.Index) -> np.ndarray:
    """The fixed-effects design in the order of ``samples`` (an intercept column when None)."""
    if design is None:
        return np.ones((len(samples), 1))
    if not design.samples:
        return np.asarray(design.X, dtype=float)
    position = {name: row for row, name in enumerate(design.samples)}
    return np.asarray(design.X, dtype=float)[[position[name] for name in samples]]


def median_ratio_log_size_factors(log_counts: np.ndarray) -> np.ndarray:
    """DESeq2's log size factors: per sample, the median log ratio to the miRNAs' geometric means.

    ``log_counts`` is miRNAs x samples, every count positive.
    """
    return np.median(log_counts - log_counts.mean(axis=1, keepdims=True), axis=0)


BIWEIGHT_K = 2.0
"""Tukey biweight tuning constant of :func:`null_centre`, in standard errors. Smaller is closer
to the mode (less pulled by changes in one direction) but noisier. Measured on 20 simulations
with 25% of miRNAs up (3+3, 5+5, 10+10 samples; exploratory, not kept as a benchmark): mean offset
error -0.023, -0.007, -0.002 with k = 2 against -0.023, -0.010, -0.005 with 2.5 and -0.030,
-0.015, -0.007 with 3, at similar SDs; ``benchmarks/bench_normalisation.py`` measures k = 2."""
PRIOR_DF = 4.0
"""Prior degrees of freedom moderating each miRNA's residual variance towards the median one."""


def robust_log_size_factors(log_counts: np.ndarray, X: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Log size factors under which the typical miRNA does not change along ``X``.

    Two parts, because the design splits the offsets in two:

    1. Within the design (what ``X`` cannot explain): starting from the median-of-ratios
       factors, each sample's factor moves by the median over miRNAs of its residual from a
       per-miRNA least-squares fit of ``log count - offset`` on ``X``, until nothing moves.
       Differential expression lives in the column space of ``X``, so it does not bias this part.
    2. Along the design (the part a DE analysis reads as fold changes): for each column of
       ``X`` but the intercept, the per-miRNA coefficients are centred on their
       precision-weighted Tukey biweight centre (:func:`null_centre`), a mode-seeking
       M-estimate that ignores miRNAs more than ``BIWEIGHT_K`` standard errors away, so
       miRNAs changing in one direction do not drag the reference as a median does.

    Parameters
    ----------
    log_counts : numpy.ndarray, shape (n_mirnas, n_samples)
        Log of positive miRNA-summed counts.
    X : numpy.ndarray, shape (n_samples, n_coefs)
        Fixed-effects design, an intercept column among them.
    tol : float
        Convergence of part 1 (largest change of a log factor).

    Returns
    -------
    numpy.ndarray, shape (n_samples,)
        Log size factors (any constant may be added).
    """
    log_size = median_ratio_log_size_factors(log_counts)
    pinv = np.linalg.pinv(X)
    for _ in range(100):
        residual = _residuals(log_counts - log_size, X, pinv)
        step = np.median(residual, axis=0)
        log_size = log_size + step
        if np.max(np.abs(step)) < tol:
            break
    coefs = (log_counts - log_size) @ pinv.T
    residual = log_counts - log_size - coefs @ X.T
    df = X.shape[0] - np.linalg.matrix_rank(X)
    if df > 0:
        variance = (residual**2).sum(axis=1) / df
        variance = (df * variance + PRIOR_DF * np.median(variance)) / (df + PRIOR_DF)
    else:
        variance = np.ones(len(log_counts))
    unscaled = np.diag(pinv @ pinv.T)
    for column in range(X.shape[1]):
        if np.ptp(X[:, column]) == 0:
            continue  # the intercept: its level is fixed by the final rescaling
        se = np.sqrt(variance * unscaled[column])
        log_size = log_size + X[:, column] * null_centre(coefs[:, column], se)
    return log_size


def _residuals(values: np.ndarray, X: np.ndarray, pinv: np.ndarray) -> np.ndarray:
    return values - (values @ pinv.T) @ X.T


def null_centre(estimates: np.ndarray, se: np.ndarray, k: float = BIWEIGHT_K, tol: float = 1e-12) -> float:
    """Precision-weighted Tukey biweight location of ``estimates``: where the unchanged ones sit.

    Iteratively reweighted mean from the median, weights ``(1 - z^2/k^2)^2 / se^2`` for
    ``|z| = |estimate - centre| / se < k``, else 0. Deterministic; the result does not depend
    on the order of the estimates (up to rounding).
    """
    centre = float(np.median(estimates))
    for _ in range(200):
        z = (estimates - centre) / se
        weight = np.where(np.abs(z) < k, (1 - (z / k) ** 2) ** 2, 0.0) / se**2
        if weight.sum() == 0:
            break
        new = float((weight * estimates).sum() / weight.sum())
        if abs(new - centre) < tol:
            return new
        centre = new
    return centre


def mirna_problems(data, design: Design, normalisation: str = DEFAULT_NORMALISATION, mirnas=None) -> list[MirnaProblem]:
    """One :class:`MirnaProblem` per miRNA of an :class:`~bayesmir.data.IsomirData`.

    Parameters
    ----------
    data : IsomirData
        Counts, sample metadata and library sizes.
    design : Design
        Built from ``data.samples`` (same sample order).
    normalisation : {"total", "median_ratio", "robust"}
        Offset, see :func:`library_offset`.
    mirnas : sequence of str, optional
        Default every miRNA of ``data``.
    """
    samples = list(data.samples.index)
    if list(design.samples) != samples:
        raise InputError("the design's samples differ from the data's (build it from data.samples)")
    mirna_counts = data.mirna_counts() if normalisation != "total" else None
    offset = library_offset(data.library_size, mirna_counts, normalisation, design).loc[samples]
    offset = offset.to_numpy(dtype=float)
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
