"""Tests of the composition-robust normalisation (bayesmir.problem, normalisation="robust").

Known truth: on simulations where every DE miRNA goes up (composition stress), the offsets'
group contrast must match the generating depths' (what a null miRNA's fold change estimate
inherits); invariances: scaling one sample, permuting miRNAs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmir.design import build_design
from bayesmir.problem import library_offset, null_centre, robust_log_size_factors
from bayesmir.simulation import simulate


def _contrast(values: np.ndarray, x: np.ndarray) -> float:
    """Least-squares group contrast (case minus ctrl) of per-sample values."""
    return float(values[x == 1].mean() - values[x == 0].mean())


def _offset_error(sim, normalisation: str) -> float:
    """Group contrast of (generating log depth - offset): the bias a null miRNA's log fold change inherits."""
    data = sim.to_data()
    design = build_design(data.samples, "~ group", reference=sim.reference)
    offset = library_offset(data.library_size, data.mirna_counts(), normalisation, design)
    x = (sim.samples["group"] == "case").to_numpy(dtype=float)
    return _contrast(np.log(sim.depth.to_numpy()) - offset[sim.samples.index].to_numpy(), x)


@pytest.fixture(scope="module")
def one_sided():
    """300 miRNAs, 10 + 10 samples, 25% up (the most abundant among them), none down."""
    return [simulate(n_mirnas=300, n_samples=20, frac_de=0.25, frac_slope=0.0, de_direction="up", seed=s)
            for s in range(3)]


def test_robust_recovers_the_offset_when_de_is_one_sided(one_sided):
    errors = np.array([_offset_error(sim, "robust") for sim in one_sided])
    median_ratio = np.array([_offset_error(sim, "median_ratio") for sim in one_sided])
    total = np.array([_offset_error(sim, "total") for sim in one_sided])
    # Per data set the null centre of 225 null miRNAs with fold-change SE ~0.17 (theta 10, sample sd
    # 0.2, 10 per group) has sampling SD ~0.015 (measured over 20 seeds: 0.018); 0.05 is ~3 SD.
    assert np.abs(errors).max() < 0.05
    # and on average far closer than the median (biased ~-0.13 here) and the total (~-0.3)
    assert abs(errors.mean()) < 0.03
    assert median_ratio.mean() < -0.08 and total.mean() < -0.15


def test_robust_matches_median_ratio_when_de_is_balanced():
    sim = simulate(n_mirnas=300, n_samples=20, frac_de=0.3, frac_slope=0.0, seed=5)
    # balanced pairs: both unbiased; the same sampling SD (~0.02) as above bounds either error
    assert abs(_offset_error(sim, "robust")) < 0.05
    assert abs(_offset_error(sim, "median_ratio")) < 0.05


def test_null_centre_ignores_a_one_sided_cluster():
    # 300 values at 0 +- 0.1 and 100 at 1 +- 0.1 with SE 0.1: the median is pulled to ~0.1 (the 62.5%
    # point of the null), the biweight with k = 2 SE gives the cluster at 1 zero weight.
    rng = np.random.default_rng(0)
    values = np.r_[rng.normal(0, 0.1, 300), rng.normal(1, 0.1, 100)]
    se = np.full(len(values), 0.1)
    assert np.median(values) > 0.02
    # the mean of 300 N(0, 0.1) has SD 0.006: 0.02 is > 3 SD
    assert abs(null_centre(values, se)) < 0.02


def test_scaling_one_sample_shifts_only_its_offset():
    sim = simulate(n_mirnas=80, n_samples=8, frac_de=0.25, de_direction="up", seed=2)
    data = sim.to_data()
    design = build_design(data.samples, "~ group", reference=sim.reference)
    counts, total = data.mirna_counts(), data.library_size
    before = library_offset(total, counts, "robust", design)
    scaled_counts, scaled_total = counts.copy(), total.copy()
    sample = counts.columns[3]
    scaled_counts[sample] = scaled_counts[sample] * 7
    scaled_total[sample] = scaled_total[sample] * 7
    after = library_offset(scaled_total, scaled_counts, "robust", design)
    shift = (after - before).to_numpy()
    expected = np.where(counts.columns == sample, np.log(7), 0.0)
    np.testing.assert_allclose(shift, expected, atol=1e-8)  # exact up to rounding


def test_permuting_mirnas_changes_nothing():
    sim = simulate(n_mirnas=80, n_samples=8, frac_de=0.25, de_direction="up", seed=3)
    data = sim.to_data()
    design = build_design(data.samples, "~ group", reference=sim.reference)
    counts = data.mirna_counts()
    order = np.random.default_rng(1).permutation(len(counts))
    first = library_offset(data.library_size, counts, "robust", design)
    second = library_offset(data.library_size, counts.iloc[order], "robust", design)
    pd.testing.assert_series_equal(first, second, atol=1e-10, rtol=0)


def test_without_a_design_robust_is_a_per_sample_median():
    # intercept-only design: no fold change to centre, part 1 only; with a pure per-sample scaling
    # of identical miRNA profiles the factors are the scalings exactly
    rng = np.random.default_rng(4)
    profile = rng.lognormal(5, 2, size=50)
    factors = np.array([1.0, 2.0, 0.5, 3.0])
    log_counts = np.log(np.outer(profile, factors))
    log_size = robust_log_size_factors(log_counts, np.ones((4, 1)))
    np.testing.assert_allclose(log_size - log_size.mean(), np.log(factors) - np.log(factors).mean(), atol=1e-10)


def test_design_rows_follow_the_library_size_order():
    sim = simulate(n_mirnas=60, n_samples=8, frac_de=0.25, de_direction="up", seed=6)
    data = sim.to_data()
    design = build_design(data.samples, "~ group", reference=sim.reference)
    counts, total = data.mirna_counts(), data.library_size
    reordered = total.iloc[::-1]
    first = library_offset(total, counts, "robust", design)
    second = library_offset(reordered, counts, "robust", design)
    pd.testing.assert_series_equal(first, second.loc[first.index], atol=1e-10, rtol=0)
