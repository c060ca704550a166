"""MirnaProblem and its builders on a hand-made data set whose arrays are known by construction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from bayesmir.data import IsomirData
from bayesmir.design import build_design
from bayesmir.problem import (
    MirnaProblem,
    bucket_size,
    library_offset,
    mirna_problems,
    padded_counts,
    reduced_problem,
)

# Four samples (a, a, b, b); miR-1 has isomiRs AAA and CCC, miR-2 has GGG and AAA (AAA maps to both
# miRNAs: counted once in the library totals). Absent rows are zero counts.
LONG = pd.DataFrame(
    [
        ("miR-1", "AAA", "s1", 10), ("miR-1", "AAA", "s2", 20), ("miR-1", "AAA", "s3", 30),
        ("miR-1", "CCC", "s1", 1), ("miR-1", "CCC", "s4", 4),
        ("miR-2", "GGG", "s2", 7), ("miR-2", "GGG", "s3", 8), ("miR-2", "GGG", "s4", 9),
        ("miR-2", "AAA", "s1", 10), ("miR-2", "AAA", "s2", 20), ("miR-2", "AAA", "s3", 30),
    ],
    columns=["miRNA", "sequence", "sample", "count"],
)
SAMPLES = pd.DataFrame({"group": ["a", "a", "b", "b"]}, index=["s1", "s2", "s3", "s4"])
# distinct sequences per sample: s1 AAA 10 + CCC 1 = 11; s2 AAA 20 + GGG 7 = 27; s3 30 + 8 = 38; s4 4 + 9 = 13
TOTALS = np.array([11.0, 27.0, 38.0, 13.0])
# sample x isomiR blocks, isomiRs in sorted sequence order
MIR1 = {"AAA": [10, 20, 30, 0], "CCC": [1, 0, 0, 4]}
MIR2 = {"AAA": [10, 20, 30, 0], "GGG": [0, 7, 8, 9]}
EXACT = 1e-12  # logs of small integers: only float rounding differs


@pytest.fixture(scope="module")
def data() -> IsomirData:
    return IsomirData.from_long(LONG, SAMPLES)


@pytest.fixture(scope="module")
def design(data):
    return build_design(data.samples, "~ group")


def by_sequence(problem: MirnaProblem) -> dict[str, list[int]]:
    return {seq: problem.counts[:, j].tolist() for j, seq in enumerate(problem.sequences)}


def test_mirna_problems_shapes_zeros_and_offsets(data, design):
    problems = mirna_problems(data, design, "total")
    assert [p.mirna for p in problems] == ["miR-1", "miR-2"]
    first, second = problems
    assert by_sequence(first) == MIR1 and by_sequence(second) == MIR2  # zeros filled in
    for problem in problems:
        assert problem.counts.dtype == np.int64
        assert (problem.n_samples, problem.n_isomirs) == problem.counts.shape == (4, 2)
        assert problem.samples == ["s1", "s2", "s3", "s4"]
        np.testing.assert_allclose(problem.offset, np.log(TOTALS / 1e4), rtol=EXACT)
        np.testing.assert_array_equal(problem.X, [[1, 0], [1, 0], [1, 1], [1, 1]])
        np.testing.assert_array_equal(problem.Z, problem.X)  # intercept + slope on group
        assert problem.coef_names == problem.re_names == ["Intercept", "group[T.b]"]


def test_mirna_problems_selected_mirnas(data, design):
    (only,) = mirna_problems(data, design, "total", mirnas=["miR-2"])
    assert only.mirna == "miR-2" and by_sequence(only) == MIR2


def test_mirna_problems_median_ratio_offset(data, design):
    """Summed counts per sample: miR-1 (11, 20, 30, 4), miR-2 (10, 27, 38, 9), all non-zero, so the
    offset is library_offset's median_ratio of those sums (tested by hand in test_normalisation)."""
    summed = pd.DataFrame([[11, 20, 30, 4], [10, 27, 38, 9]], index=["miR-1", "miR-2"],
                          columns=["s1", "s2", "s3", "s4"])
    expected = library_offset(pd.Series(TOTALS, index=summed.columns), summed, "median_ratio")
    for problem in mirna_problems(data, design, normalisation="median_ratio"):
        np.testing.assert_allclose(problem.offset, expected.to_numpy(), rtol=EXACT)


def test_reduced_problem_keeps_intercept_only(data, design):
    full = mirna_problems(data, design)[0]
    reduced = reduced_problem(full)
    assert reduced.Z.shape == (4, 1) and reduced.re_names == ["Intercept"]
    np.testing.assert_array_equal(reduced.Z[:, 0], np.ones(4))
    assert reduced.counts is full.counts and reduced.X is full.X and reduced.coef_names == full.coef_names
    assert full.Z.shape == (4, 2) and full.re_names == ["Intercept", "group[T.b]"]  # input unchanged
    with pytest.raises(dataclasses.FrozenInstanceError):
        full.mirna = "other"


@pytest.mark.parametrize(
    ("n_isomirs", "base", "expected"),
    [(0, 2, 4), (1, 2, 4), (4, 2, 4), (5, 2, 8), (8, 2, 8), (9, 2, 16), (33, 2, 64), (1052, 2, 2048),
     (4, 4, 4), (5, 4, 16), (16, 4, 16), (17, 4, 64), (65, 4, 256)],
)
def test_bucket_size(n_isomirs, base, expected):
    """The next power of base at or above n, never below 4 (hand-listed)."""
    assert bucket_size(n_isomirs, base) == expected


def test_padded_counts(data, design):
    problem = mirna_problems(data, design)[1]
    counts, mask = padded_counts(problem, 4)
    assert counts.shape == (4, 4) and counts.dtype == np.float64
    np.testing.assert_array_equal(counts[:, :2], problem.counts)
    assert not counts[:, 2:].any()
    np.testing.assert_array_equal(mask, [1.0, 1.0, 0.0, 0.0])
    same, full_mask = padded_counts(problem, 2)
    np.testing.assert_array_equal(same, problem.counts)
    np.testing.assert_array_equal(full_mask, [1.0, 1.0])
    with pytest.raises(ValueError, match="miR-2"):
        padded_counts(problem, 1)


def test_default_normalisation_is_the_robust_one():
    """fit, fit_frequentist and mirna_problems share one default, the composition-robust offset."""
    import inspect

    import bayesmir
    from bayesmir.problem import DEFAULT_NORMALISATION, mirna_problems

    assert DEFAULT_NORMALISATION == "robust"
    for function in (bayesmir.fit, bayesmir.fit_frequentist, bayesmir.frequentist.lrt, mirna_problems):
        assert inspect.signature(function).parameters["normalisation"].default == DEFAULT_NORMALISATION
