"""A corpus of malformed inputs: each raises bayesmir.InputError naming the problem (never another type)."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from bayesmir import InputError, read_counts
from bayesmir.design import build_design

HEADER = "miRNA,sequence,sample,count\n"
GOOD_ROWS = "mir-1,AAA,s1,5\nmir-1,AAA,s2,3\nmir-1,CCC,s1,1\n"
SAMPLES = "sample,group\ns1,a\ns2,b\n"

# name -> (counts file text, samples file text or None, expected words in the message)
CASES = {
    "negative count": (HEADER + "mir-1,AAA,s1,5\nmir-1,AAA,s2,-3\n", None, ["negative", "'count'", "3"]),
    "non-integer count": (HEADER + "mir-1,AAA,s1,5\nmir-1,AAA,s2,2.5\n", None, ["non-integer", "3"]),
    "text count": (HEADER + "mir-1,AAA,s1,five\nmir-1,AAA,s2,2\n", None, ["not a number", "'five'", "2"]),
    "NaN count": (HEADER + "mir-1,AAA,s1,NaN\nmir-1,AAA,s2,2\n", None, ["count", "2"]),
    "empty count": (HEADER + "mir-1,AAA,s1,\nmir-1,AAA,s2,2\n", None, ["missing", "count", "2"]),
    "inf count": (HEADER + "mir-1,AAA,s1,inf\nmir-1,AAA,s2,2\n", None, ["infinite or too large", "2"]),
    "too large count": (HEADER + "mir-1,AAA,s1,99999999999999999999\nmir-1,AAA,s2,2\n", None, ["too large", "2"]),
    "duplicate key": (HEADER + GOOD_ROWS + "mir-1,AAA,s1,7\n", None, ["repeat", "2", "5"]),
    "empty sequence": (HEADER + "mir-1,,s1,5\nmir-1,AAA,s2,2\n", None, ["'sequence'", "empty", "2"]),
    "empty miRNA": (HEADER + ",AAA,s1,5\nmir-1,AAA,s2,2\n", None, ["'miRNA'", "2"]),
    "misnamed column": ("mirna,sequence,sample,count\n" + GOOD_ROWS, None, ["missing column", "'miRNA'", "mirna"]),
    "missing column": ("miRNA,sequence,count\nmir-1,AAA,5\n", None, ["sample"]),
    "header only": (HEADER, None, ["no data rows"]),
    "samples without metadata": (HEADER + GOOD_ROWS + "mir-1,AAA,s3,1\n", SAMPLES, ["s3", "no row"]),
    "metadata without counts": (HEADER + "mir-1,AAA,s1,5\n", SAMPLES, ["s2", "no counts"]),
    "duplicate sample in metadata": (HEADER + GOOD_ROWS, SAMPLES + "s2,a\n", ["duplicated", "s2"]),
    "all-zero sample": (HEADER + GOOD_ROWS + "mir-1,CCC,s3,0\n", SAMPLES + "s3,a\n", ["s3", "all counts zero"]),
    "ragged rows": (HEADER + "mir-1,AAA,s1,5,9,9\n", None, ["cannot parse"]),
}


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_counts_raise_input_error(case, tmp_path):
    counts_text, samples_text, words = CASES[case]
    counts = write(tmp_path, "counts.csv", counts_text)
    samples = write(tmp_path, "samples.csv", samples_text) if samples_text else None
    with pytest.raises(InputError) as error:
        read_counts(counts, samples=samples)
    message = str(error.value)
    assert "counts.csv" in message or "samples.csv" in message, message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("missing.csv", None, ["file not found"]),
        ("empty.csv", b"", ["empty file"]),
        ("counts.xlsx", b"PK\x03\x04", ["unknown file type", ".xlsx"]),
        ("latin1.csv", (HEADER + "mir-1,AAA,s\xe9,5\n").encode("latin-1"), ["not UTF-8", "line 2"]),
        ("broken.h5ad", b"not an hdf5 file", ["cannot read as AnnData"]),
        ("broken.rda", b"not an R file", ["cannot read as an R data file"]),
        ("other.csv", b"a,b\n1,2\n", ["missing column"]),
    ],
)
def test_bad_files_raise_input_error(name, content, words, tmp_path):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as error:
        read_counts(path)
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_bad_gzip_is_input_error(tmp_path):
    path = tmp_path / "counts.csv.gz"
    path.write_bytes(gzip.compress(HEADER.encode()) + b"garbage")
    with pytest.raises(InputError):
        read_counts(path)


def test_wide_negative_count_names_sample_column(tmp_path):
    path = write(tmp_path, "wide.csv", "miRNA,sequence,s1,s2\nmir-1,AAA,5,2\nmir-1,CCC,1,-4\n")
    with pytest.raises(InputError, match=r"wide.csv, column 's2', rows 3: negative"):
        read_counts(path)


def test_single_group_reads_but_design_fails(tmp_path):
    """One group is valid data (mirglmm_se_example); the design check at fitting time rejects it."""
    data = read_counts(write(tmp_path, "c.csv", HEADER + GOOD_ROWS), samples=write(tmp_path, "s.csv",
                                                                                 "sample,group\ns1,a\ns2,a\n"))
    with pytest.raises(InputError, match="one level"):
        build_design(data.samples, "~ group")
    with pytest.raises(InputError, match="lab"):
        build_design(data.samples, "~ group + lab")


def test_samples_from_dataframe():
    counts = pd.DataFrame({"miRNA": ["m"] * 2, "sequence": ["A", "A"], "sample": ["s1", "s2"], "count": [1, 2]})
    from bayesmir import IsomirData

    with pytest.raises(InputError, match="s2"):
        IsomirData.from_long(counts, pd.DataFrame({"sample": ["s1"], "group": ["a"]}))
