"""build_design: R's model.matrix conventions (treatment contrasts, reference level first), the
coefficient and random-slope choice, and the design checks.

Expected matrices are written by hand from R's rules: ``model.matrix(~ group, d)`` with
``factor(group)`` has an intercept column of ones and one 0/1 column per non-reference level, the
reference being the first level in sorted order unless ``relevel(group, ref = ...)``; numeric
columns enter as they are. (R names the columns ``(Intercept)``, ``groupb``; formulaic's names are
``Intercept``, ``group[T.b]``.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmir import InputError
from bayesmir.design import build_design, reference_levels


def samples(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=pd.Index([f"s{i}" for i in range(1, n + 1)], name="sample"))


TWO = samples(group=["b", "a", "a", "b"], lab=["x", "x", "y", "y"], age=[30.0, 41.0, 52.0, 63.0])
THREE = samples(group=["c", "a", "b", "a", "b", "c"])


def test_two_levels_reference_sorts_first_as_r_factor():
    design = build_design(TWO, "~ group")
    assert design.coef_names == ["Intercept", "group[T.b]"] and design.coef == "group[T.b]"
    np.testing.assert_array_equal(design.X, [[1, 1], [1, 0], [1, 0], [1, 1]])
    assert design.samples == ["s1", "s2", "s3", "s4"]


def test_reference_level_releveled():
    """relevel(group, ref = "b"): the indicator column is now for level a."""
    design = build_design(TWO, "~ group", reference={"group": "b"})
    assert design.coef_names == ["Intercept", "group[T.a]"]
    np.testing.assert_array_equal(design.X[:, 1], [0, 1, 1, 0])
    assert reference_levels(TWO, "~ group", {"group": "b"}) == {"group": ["b", "a"]}


def test_three_levels_and_slopes_on_the_whole_term():
    design = build_design(THREE, "group")  # "group" is "~ group"
    assert design.formula == "~ group"
    assert design.coef_names == ["Intercept", "group[T.b]", "group[T.c]"]
    np.testing.assert_array_equal(design.X[:, 1:], [[0, 1], [0, 0], [1, 0], [0, 0], [1, 0], [0, 1]])
    assert design.slope_names == ["group[T.b]", "group[T.c]"]
    assert design.re_names == ["Intercept", "group[T.b]", "group[T.c]"]
    np.testing.assert_array_equal(design.Z, design.X)
    assert build_design(THREE, "~ group", coef="group[T.c]").coef_index == 2


def test_two_factors_and_a_numeric_covariate():
    design = build_design(TWO, "~ group + lab + age", coef="group")
    assert design.coef_names == ["Intercept", "group[T.b]", "lab[T.y]", "age"]
    np.testing.assert_array_equal(design.X[:, 2], [0, 0, 1, 1])
    np.testing.assert_array_equal(design.X[:, 3], [30, 41, 52, 63])  # numeric: as is
    assert design.coef == "group[T.b]" and design.slope_names == ["group[T.b]"]
    np.testing.assert_array_equal(design.Z, design.X[:, [0, 1]])
    assert reference_levels(TWO, "~ group + lab + age") == {"group": ["a", "b"], "lab": ["x", "y"]}


def test_no_random_slope_gives_isomir_intercepts_only():
    design = build_design(TWO, "~ group", random_slope=False)
    assert design.slope_names == [] and design.re_names == ["Intercept"]
    np.testing.assert_array_equal(design.Z, np.ones((4, 1)))


def test_numeric_looking_levels_are_categories_when_text():
    """Text '10' and '9' (as the readers keep them) sort as text, so '10' is the reference."""
    design = build_design(samples(batch=["9", "10", "9", "10"]), "~ batch")
    assert design.coef_names == ["Intercept", "batch[T.9]"]


@pytest.mark.parametrize(
    "table, formula, kwargs, words",
    [
        (samples(group=["a"] * 4), "~ group", {}, ["one level", "'group'"]),
        (samples(group=["a", "a", "a", "b"]), "~ group", {}, ["single sample", "'b'"]),
        (TWO, "~ group", {"reference": {"group": "ctrl"}}, ["reference level 'ctrl'", "['a', 'b']"]),
        (TWO, "~ group", {"reference": {"lab": "x"}}, ["lab", "does not use"]),
        (TWO, "~ group + age", {"reference": {"age": "30"}}, ["numeric"]),
        (TWO.assign(lab2=TWO["group"]), "~ group + lab2", {}, ["rank-deficient"]),
        (TWO, "~ group - 1", {}, ["intercept"]),
        (TWO, "y ~ group", {}, ["right-hand side"]),
        (TWO, "~ group + (1 | lab)", {}, ["random-effect terms are built in"]),
        (TWO, "~ grp", {}, ["'grp'", "not in the sample metadata"]),
        (TWO, "~ group", {"coef": "lab"}, ["coefficient 'lab'", "group[T.b]"]),
        (TWO, "", {}, ["empty"]),
    ],
)
def test_design_checks_raise_input_error(table, formula, kwargs, words):
    with pytest.raises(InputError) as error:
        build_design(table, formula, **kwargs)
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_missing_value_names_source_from_attrs_and_rows():
    table = samples(group=["a", "b", None, "a", "b"])
    table.attrs = {"source": "meta.csv", "lines": {f"s{i}": i + 1 for i in range(1, 6)}}
    with pytest.raises(InputError, match=r"meta.csv, column 'group', rows 4 \(samples s3\): missing value"):
        build_design(table, "~ group")
