"""library_offset: "total" (miRglmm's log(T/1e4)) and "median_ratio" (DESeq2's median-of-ratios size
factors of the miRNA-summed counts, rescaled to the geometric mean of T), by hand and against PyDESeq2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmir import InputError
from bayesmir.problem import library_offset

EXACT = 1e-12  # logs, means and medians of a few numbers: only float rounding differs
SAMPLES = ["s1", "s2", "s3"]
TOTALS = pd.Series([2e4, 4e4, 8e4], index=SAMPLES)  # geometric mean 4e4


def hand_matrix() -> pd.DataFrame:
    """miRNAs x samples. m1-m3: s2 has twice s1's and s3's counts. m4: s3 is 100x up (one DE miRNA).
    m5 has a zero, so DESeq2 leaves it out.

    Ratios to the row geometric mean: m1-m3 give 2^(-1/3), 2^(2/3), 2^(-1/3); m4 gives
    200^(-1/3), 2 * 200^(-1/3), 100 * 200^(-1/3). Per sample the median of the four (mean of the
    middle two, which are equal) is 2^(-1/3), 2^(2/3), 2^(-1/3): size factors proportional to
    (1, 2, 1), the DE miRNA does not move them.
    """
    rows = {"m1": [10, 20, 10], "m2": [100, 200, 100], "m3": [50, 100, 50], "m4": [40, 80, 4000],
            "m5": [0, 5, 7]}
    return pd.DataFrame.from_dict(rows, orient="index", columns=SAMPLES)


def test_total_is_log_total_over_1e4():
    offset = library_offset(pd.Series([1e4, 2e4, 5e5], index=SAMPLES))
    np.testing.assert_allclose(offset.to_numpy(), [0.0, np.log(2.0), np.log(50.0)], rtol=EXACT, atol=EXACT)
    assert list(offset.index) == SAMPLES


def test_total_ignores_the_counts():
    with_counts = library_offset(TOTALS, hand_matrix(), "total")
    pd.testing.assert_series_equal(with_counts, library_offset(TOTALS), check_names=False)


def test_median_ratio_by_hand():
    """Size factors (1, 2, 1) / 2^(1/3) rescaled to geomean(T) = 4e4: L = 4e4 * (1, 2, 1) / 2^(1/3)."""
    offset = library_offset(TOTALS, hand_matrix(), "median_ratio")
    expected = np.log(4.0) - np.log(2.0) / 3 + np.array([0.0, np.log(2.0), 0.0])
    np.testing.assert_allclose(offset.loc[SAMPLES].to_numpy(), expected, rtol=EXACT, atol=EXACT)


def test_median_ratio_keeps_the_library_size_order():
    """Counts with shuffled columns: the offset follows library_size's index, not the columns."""
    shuffled = hand_matrix()[["s3", "s1", "s2"]]
    pd.testing.assert_series_equal(library_offset(TOTALS, shuffled, "median_ratio"),
                                   library_offset(TOTALS, hand_matrix(), "median_ratio"), check_names=False)


def deseq2_size_factors(counts: pd.DataFrame) -> np.ndarray:
    """PyDESeq2's median-of-ratios size factors (it takes samples x genes)."""
    preprocessing = pytest.importorskip("pydeseq2.preprocessing")
    _, size_factors = preprocessing.deseq2_norm(counts.T.to_numpy(dtype=float))
    return np.asarray(size_factors, dtype=float)


@pytest.mark.parametrize("matrix", ["hand", "random"])
def test_median_ratio_equals_pydeseq2_rescaled(matrix):
    """exp(offset) * 1e4 = DESeq2 size factor * geomean(T) / geomean(size factors), as documented."""
    if matrix == "hand":
        counts, totals = hand_matrix(), TOTALS
    else:  # 60 miRNAs x 6 samples, NB-like counts with zeros, depths spanning 8x
        rng = np.random.default_rng(11)
        depth = np.array([0.5, 1.0, 4.0, 2.0, 0.7, 1.3])
        means = np.exp(rng.normal(3, 2, size=60))[:, None] * depth[None, :]
        counts = pd.DataFrame(rng.poisson(rng.gamma(5.0, means / 5.0)),
                              index=[f"m{g}" for g in range(60)], columns=[f"s{i}" for i in range(6)])
        totals = pd.Series(counts.sum().to_numpy() * 3.0, index=counts.columns)
    size_factors = deseq2_size_factors(counts)
    geomean = np.exp(np.mean(np.log(size_factors)))
    expected = np.log(size_factors / geomean * np.exp(np.mean(np.log(totals))) / 1e4)
    offset = library_offset(totals, counts, "median_ratio")
    np.testing.assert_allclose(offset.to_numpy(), expected, rtol=1e-10, atol=1e-10)  # same formula, float


def test_median_ratio_scaling_one_sample():
    """Scaling sample k's counts and total by c adds log c to its offset only, so normalised counts
    (count / exp(offset)) do not change; scaling its counts alone moves it by log c relative to the others."""
    counts, c = hand_matrix(), 7.0
    base = library_offset(TOTALS, counts, "median_ratio")
    scaled_counts = counts.assign(s2=counts["s2"] * c)
    both = library_offset(TOTALS.mul(pd.Series({"s2": c}), fill_value=1.0), scaled_counts, "median_ratio")
    np.testing.assert_allclose((both - base).to_numpy(), [0.0, np.log(c), 0.0], atol=EXACT)
    counts_only = library_offset(TOTALS, scaled_counts, "median_ratio")
    shift = (counts_only - base).to_numpy()
    np.testing.assert_allclose(shift[1] - shift[[0, 2]], np.log(c), atol=EXACT)
    np.testing.assert_allclose(shift[0], shift[2], atol=EXACT)


def test_median_ratio_level_is_set_by_the_totals():
    """Scaling every count leaves the offsets; scaling every total by c adds log c to all."""
    counts = hand_matrix()
    base = library_offset(TOTALS, counts, "median_ratio")
    pd.testing.assert_series_equal(library_offset(TOTALS, counts * 5, "median_ratio"), base, rtol=EXACT)
    np.testing.assert_allclose((library_offset(TOTALS * 3.0, counts, "median_ratio") - base).to_numpy(),
                               np.log(3.0), atol=EXACT)


def test_bad_requests_raise_input_error():
    with pytest.raises(InputError, match="normalisation"):
        library_offset(TOTALS, hand_matrix(), "no-such-method")
    with pytest.raises(InputError, match="miRNA-summed counts"):
        library_offset(TOTALS, None, "median_ratio")
    # only m1 has counts in every sample: a median of ratios needs at least 2 such miRNAs
    sparse = pd.DataFrame({"s1": [5, 0, 3], "s2": [6, 2, 0], "s3": [7, 1, 1]}, index=["m1", "m2", "m3"])
    with pytest.raises(InputError, match="at least 2"):
        library_offset(TOTALS, sparse, "median_ratio")
