"""benjamini_hochberg against hand-computed adjustments, statsmodels, and BH's invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from bayesmir.fdr import benjamini_hochberg

# p = 0.01, 0.04, 0.03, 0.20 (m = 4). Sorted with ranks: 0.01 (1), 0.03 (2), 0.04 (3), 0.20 (4);
# p * m / rank = 0.04, 0.06, 0.0533.., 0.20; running minimum from the largest rank down:
# 0.20, 0.0533.., 0.0533.., 0.04. Back in input order:
P_EXAMPLE = [0.01, 0.04, 0.03, 0.20]
BH_EXAMPLE = [0.04, 0.16 / 3, 0.16 / 3, 0.20]
EXACT = 1e-12  # the same few multiplications and divisions: only float rounding differs


def test_hand_computed_example():
    np.testing.assert_allclose(benjamini_hochberg(P_EXAMPLE), BH_EXAMPLE, rtol=EXACT)


def test_ties_share_the_adjusted_value():
    # three p of 0.02: ranks 1..3 give 0.06, 0.03, 0.02; the running minimum makes all 0.02
    np.testing.assert_allclose(benjamini_hochberg([0.02, 0.02, 0.02]), [0.02] * 3, rtol=EXACT)


def test_nan_stays_nan_and_does_not_count():
    """A NaN neither gets a value nor enlarges m: the others equal the 4-value example."""
    adjusted = benjamini_hochberg([0.01, np.nan, 0.04, 0.03, np.nan, 0.20])
    assert np.isnan(adjusted[[1, 4]]).all()
    np.testing.assert_allclose(adjusted[[0, 2, 3, 5]], BH_EXAMPLE, rtol=EXACT)


def test_all_nan_and_empty():
    assert np.isnan(benjamini_hochberg([np.nan, np.nan])).all()
    assert benjamini_hochberg([]).shape == (0,)


def test_series_and_2d_input_keep_shape_and_order():
    """A pandas Series gives an array in its order; a 2-D array is adjusted as one family."""
    series = pd.Series(P_EXAMPLE, index=["d", "c", "b", "a"])
    np.testing.assert_allclose(benjamini_hochberg(series), BH_EXAMPLE, rtol=EXACT)
    square = benjamini_hochberg(np.reshape(P_EXAMPLE, (2, 2)))
    assert square.shape == (2, 2)
    np.testing.assert_allclose(square.ravel(), BH_EXAMPLE, rtol=EXACT)


def test_matches_statsmodels_fdr_bh():
    """1,000 p-values (a null bulk, a signal tail and ties) vs statsmodels' fdr_bh."""
    rng = np.random.default_rng(7)
    p = np.concatenate([rng.uniform(size=900), rng.uniform(0, 1e-3, size=90), np.full(10, 0.5)])
    rng.shuffle(p)
    expected = multipletests(p, method="fdr_bh")[1]
    np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=EXACT, atol=0)


def test_matches_statsmodels_with_nan_dropped():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=50)
    p[rng.choice(50, 8, replace=False)] = np.nan
    finite = np.isfinite(p)
    adjusted = benjamini_hochberg(p)
    np.testing.assert_allclose(adjusted[finite], multipletests(p[finite], method="fdr_bh")[1], rtol=EXACT)
    assert np.isnan(adjusted[~finite]).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_invariants(seed):
    """Adjusted >= raw, <= 1, and monotone in the raw p-value (BH's defining properties)."""
    p = np.random.default_rng(seed).beta(0.3, 1.0, size=200)
    adjusted = benjamini_hochberg(p)
    assert (adjusted >= p).all() and (adjusted <= 1).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(adjusted[order]) >= 0).all()
