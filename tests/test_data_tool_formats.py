"""miRge3 and sRNAbench readers: same IsomirData as the equivalent long CSV, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from bayesmir import InputError, read_counts

FORMATS = Path(__file__).parent / "data" / "formats"


@pytest.fixture(scope="module")
def reference():
    return read_counts(FORMATS / "equivalent_long.csv", samples=FORMATS / "samples.csv")


@pytest.mark.parametrize("name", ["mirge3_mapped.csv", "srnabench_isomiR_RC.mat"])
def test_tool_table_gives_the_long_csv_data(reference, name):
    data = read_counts(FORMATS / name, samples=FORMATS / "samples.csv")
    counts = data.counts.reset_coords([c for c in ("canonical",) if c in data.counts.coords], drop=True)
    assert counts.identical(reference.counts)
    assert data.library_size.equals(reference.library_size)


def test_mirge3_leaves_out_other_rna_and_keeps_canonical():
    data = read_counts(FORMATS / "mirge3_mapped.csv", format="mirge3")
    assert data.mirnas == ["hsa-let-7a-3p", "hsa-let-7a-5p"]  # the tRNA row is not a miRNA
    canonical = dict(zip(data.counts["miRNA"].values, data.counts["canonical"].values))
    assert canonical["hsa-let-7a-5p"] == "TGAGGTAGTAGGTTGTATAGTT"


def test_srnabench_groups_from_column_names(reference):
    data = read_counts(FORMATS / "srnabench_isomiR_RC.mat")
    assert data.samples.equals(reference.samples)


def test_bad_tool_tables_raise_input_error(tmp_path):
    bad = tmp_path / "x.mat"
    bad.write_text("name\ts1\nACGT-noname\t3\n")
    with pytest.raises(InputError, match="sequence\\|miRNA"):
        read_counts(bad)
    mirge = tmp_path / "mapped.csv"
    mirge.write_text("Sequence,annotFlag,exact miRNA,isomiR miRNA,s1\nACGT,1,m,,x\n")
    with pytest.raises(InputError, match="column 's1', rows 2"):
        read_counts(mirge)
