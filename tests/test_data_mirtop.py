"""mirtop GFF3 reader: same IsomirData as the equivalent long CSV, annotations kept, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from bayesmir import InputError, read_counts
from bayesmir.data.annotations import ANNOTATION_COLUMNS, isomir_annotations

FORMATS = Path(__file__).parent / "data" / "formats"


def without_annotations(data):
    present = [c for c in ANNOTATION_COLUMNS if c in data.counts.coords]
    return data.counts.reset_coords(present, drop=True)


@pytest.fixture(scope="module")
def reference():
    return read_counts(FORMATS / "equivalent_long.csv", samples=FORMATS / "samples.csv")


def test_mirtop_gives_the_long_csv_data(reference):
    data = read_counts(FORMATS / "mirtop.gff", samples=FORMATS / "samples.csv")
    assert without_annotations(data).identical(reference.counts)
    assert data.samples.equals(reference.samples)
    assert data.library_size.equals(reference.library_size)


def test_mirtop_detected_named_and_rejected_lines_skipped():
    data = read_counts(FORMATS / "mirtop.gff", format="mirtop")
    assert list(data.samples.index) == ["s1", "s2", "s3", "s4"]  # from ## COLDATA
    assert "AGGTAGTAGGTTGTATAGTT" not in set(data.counts["sequence"].values)  # Filter=REJECT line


def test_mirtop_keeps_reference_sequence_and_variant():
    data = read_counts(FORMATS / "mirtop.gff")
    annotations = isomir_annotations(data)
    by_sequence = dict(zip(annotations["sequence"], annotations["variant"]))
    assert by_sequence["TGAGGTAGTAGGTTGTATAGTT"] == "ref_miRNA"
    assert by_sequence["ATGAGGTAGTAGGTTGTATAGTT"] == "iso_5p:-1"
    canonical = dict(zip(annotations["miRNA"], annotations["canonical"]))
    assert canonical == {"hsa-let-7a-5p": "TGAGGTAGTAGGTTGTATAGTT", "hsa-let-7a-3p": "CTATACAATCTACTGTCTTTC"}
    assert set(annotations["precursor"]) == {"hsa-let-7a-1", "hsa-let-7a-3"}


def test_annotations_survive_subset():
    data = read_counts(FORMATS / "mirtop.gff").subset(mirnas=["hsa-let-7a-3p"])
    assert set(data.counts["canonical"].values) == {"CTATACAATCTACTGTCTTTC"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hsa\tdb\tisomiR\t1\t2\t0\t+\t.\tRead=ACGT; Name=m; Expression=1,2\n", "COLDATA"),
        ("## COLDATA: a,b\nhsa\tdb\tisomiR\t1\t2\t0\t+\t.\tRead=ACGT; Name=m; Expression=1\n", "line 2"),
        ("## COLDATA: a,b\nhsa\tdb\tisomiR\t1\t2\t0\t+\t.\tRead=ACGT; Name=m; Expression=1,x\n", "not a count"),
        ("## COLDATA: a,b\nhsa\tdb\tisomiR\t1\t2\n", "9 tab-separated"),
        ("## COLDATA: a,b\nhsa\tdb\tisomiR\t1\t2\t0\t+\t.\tName=m; Expression=1,2\n", "Read"),
    ],
)
def test_bad_mirtop_files_raise_input_error(tmp_path, text, message):
    path = tmp_path / "bad.gff"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_counts(path)


def test_mirtop_annotations_survive_an_h5ad_round_trip(tmp_path):
    """to_anndata writes canonical/variant/precursor to var, and read_counts reads them back."""
    data = read_counts(FORMATS / "mirtop.gff", samples=FORMATS / "samples.csv")
    path = tmp_path / "mirtop.h5ad"
    data.to_anndata().write_h5ad(path)
    back = read_counts(path)
    assert isomir_annotations(back).equals(isomir_annotations(data))
    assert back.counts.identical(data.counts)


def test_annotations_follow_the_normalised_sequence():
    """A read spelled with U or lower case keeps its tool labels after the container writes it as DNA."""
    import pandas as pd

    from bayesmir.data.annotations import annotate_isomirs
    from bayesmir.data.container import IsomirData

    long = pd.DataFrame({"miRNA": ["m1"] * 4, "sequence": ["ugagguag", "UGAGGUAG", "TTAGGCA", "TTAGGCA"],
                         "sample": ["s1", "s2", "s1", "s2"], "count": [3, 4, 5, 6],
                         "canonical": ["TGAGGTAG"] * 4, "variant": ["ref_miRNA"] * 2 + ["iso_snv"] * 2})
    samples = pd.DataFrame({"group": ["a", "b"]}, index=pd.Index(["s1", "s2"], name="sample"))
    data = annotate_isomirs(IsomirData.from_long(long, samples), long)
    table = isomir_annotations(data).set_index("sequence")
    assert table.loc["TGAGGTAG", "variant"] == "ref_miRNA" and table.loc["TTAGGCA", "variant"] == "iso_snv"
    assert (table["canonical"] == "TGAGGTAG").all()
