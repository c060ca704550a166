"""IsomirData: construction from long tables, library totals, views, subsetting, export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmir import InputError, IsomirData, load_example
from bayesmir.design import build_design
from bayesmir.problem import mirna_problems


def toy_long() -> pd.DataFrame:
    """Two miRNAs; sequence 'SHARED' is annotated to both (multi-mapping)."""
    rows = [
        ("mir-a", "AAA", "s1", 10), ("mir-a", "AAA", "s2", 20), ("mir-a", "SHARED", "s1", 5),
        ("mir-a", "SHARED", "s2", 7), ("mir-b", "SHARED", "s1", 5), ("mir-b", "SHARED", "s2", 7),
        ("mir-b", "CCC", "s2", 3), ("mir-b", "GGG", "s1", 1),
    ]
    return pd.DataFrame(rows, columns=["miRNA", "sequence", "sample", "count"])


def toy_samples() -> pd.DataFrame:
    return pd.DataFrame({"group": ["x", "y"]}, index=pd.Index(["s2", "s1"], name="sample"))


def test_counts_dense_with_zeros_filled_and_metadata_order():
    data = IsomirData.from_long(toy_long(), toy_samples())
    assert list(data.counts["sample"].values) == ["s2", "s1"]  # metadata order kept
    assert data.n_isomirs == 5 and data.mirnas == ["mir-a", "mir-b"]
    ccc = data.counts.sel(isomir="mir-b|CCC")
    assert ccc.sel(sample="s2") == 3 and ccc.sel(sample="s1") == 0
    assert data.counts.dtype == np.int64


def test_library_size_counts_each_distinct_sequence_once():
    """s1: AAA 10 + SHARED 5 (once, not twice) + GGG 1 = 16; s2: 20 + 7 + 3 = 30."""
    data = IsomirData.from_long(toy_long(), toy_samples())
    assert data.library_size.to_dict() == {"s2": 30.0, "s1": 16.0}
    assert len(data.multimapped) == 1 and data.multimapped["sequence"].iloc[0] == "SHARED"


def test_library_size_kept_through_subset():
    data = IsomirData.from_long(toy_long(), toy_samples())
    sub = data.subset(mirnas=["mir-b"])
    assert sub.mirnas == ["mir-b"]
    assert sub.library_size.equals(data.library_size)


def test_multimapping_drop_and_raise():
    dropped = IsomirData.from_long(toy_long(), toy_samples(), multimapping="drop")
    assert "SHARED" not in set(dropped.counts["sequence"].values)
    assert dropped.library_size["s1"] == 16.0  # totals are computed before dropping
    with pytest.raises(InputError, match="several miRNAs"):
        IsomirData.from_long(toy_long(), toy_samples(), multimapping="raise")


def test_user_library_size_column_and_validation():
    samples = toy_samples().assign(total=[100.0, 200.0])
    data = IsomirData.from_long(toy_long(), samples, library_size="total")
    assert data.library_size.to_dict() == {"s2": 100.0, "s1": 200.0}
    with pytest.raises(InputError, match="positive"):
        IsomirData.from_long(toy_long(), samples.assign(total=[100.0, -1.0]), library_size="total")
    with pytest.raises(InputError, match="not found"):
        IsomirData.from_long(toy_long(), samples, library_size="nope")


def test_for_mirna_long_table_has_zeros_and_metadata():
    data = IsomirData.from_long(toy_long(), toy_samples())
    table = data.for_mirna("mir-b")
    assert len(table) == 2 * 3
    assert {"sample", "sequence", "count", "group", "library_size"} <= set(table.columns)
    assert table["count"].sum() == 5 + 7 + 3 + 1
    with pytest.raises(InputError, match="unknown miRNA"):
        data.for_mirna("mir-zzz")


def test_problem_matches_for_mirna():
    samples = pd.DataFrame({"group": ["x", "x", "y", "y"]}, index=pd.Index(["s1", "s2", "s3", "s4"], name="sample"))
    long = pd.concat([toy_long(), toy_long().assign(sample=lambda t: t["sample"].map({"s1": "s3", "s2": "s4"}))])
    data = IsomirData.from_long(long, samples)
    design = build_design(data.samples, "~ group")
    (problem,) = mirna_problems(data, design, "total", mirnas=["mir-b"])
    table = data.for_mirna("mir-b").pivot(index="sample", columns="sequence", values="count")
    np.testing.assert_array_equal(problem.counts, table.loc[problem.samples, problem.sequences].to_numpy())
    np.testing.assert_allclose(problem.offset, np.log(data.library_size.to_numpy() / 1e4))


def test_to_dataframe_round_trip():
    data = IsomirData.from_long(toy_long(), toy_samples())
    again = IsomirData.from_long(data.to_dataframe(), data.samples)
    assert again.equals(data)


def test_mirna_counts_sums_isomirs():
    data = IsomirData.from_long(toy_long(), toy_samples())
    summed = data.mirna_counts()
    assert summed.loc["mir-a", "s2"] == 27 and summed.loc["mir-b", "s2"] == 10


def test_repr_summarises():
    text = repr(load_example())
    assert "6 samples" in text and "22 miRNAs" in text and "nb (3), o (3)" in text and "zeros" in text


def test_library_size_rule_column_then_override(tmp_path):
    """One rule: the samples file's library_size column, unless library_size= says otherwise."""
    from bayesmir import read_counts

    counts = tmp_path / "c.csv"
    toy_long().to_csv(counts, index=False)
    samples = tmp_path / "s.csv"
    samples.write_text("sample,group,library_size,aligned\ns1,x,1000,500\ns2,y,3000,700\n")
    by_column = read_counts(counts, samples=samples)
    assert by_column.library_size.to_dict() == {"s1": 1000.0, "s2": 3000.0}
    assert by_column.library_size_source == f"{samples}, column 'library_size'"
    assert "library_size" not in by_column.samples.columns
    from_counts = read_counts(counts, samples=samples, library_size="counts")
    assert from_counts.library_size.to_dict() == {"s1": 16.0, "s2": 30.0}  # see the test above
    assert "sum of every distinct sequence" in from_counts.library_size_source
    assert read_counts(counts, samples=samples, library_size="aligned").library_size.to_dict() == {
        "s1": 500.0, "s2": 700.0}
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("sample,library_size\ns2,9\ns1,8\n")
    from_file = read_counts(counts, samples=samples, library_size=str(sizes))
    assert from_file.library_size.to_dict() == {"s1": 8.0, "s2": 9.0}
    assert from_file.library_size_source == f"{sizes}, column 'library_size'"
    with pytest.raises(InputError, match="neither a column"):
        read_counts(counts, samples=samples, library_size="nope")
    assert from_file.subset(mirnas=["mir-b"]).library_size_source == from_file.library_size_source
