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


# ---------------------------------------------------------------------- read as the user meant
NUMERIC_NAMES = "miRNA,sequence,sample,count\n001,AAA,001,5\n001,AAA,010,3\n001,CCC,001,1\n001,CCC,010,2\n"
NUMERIC_SAMPLES = "sample,group\n001,a\n010,b\n"


def test_numeric_looking_names_stay_text_in_long_and_samples_files(tmp_path):
    data = read_counts(write(tmp_path, "c.csv", NUMERIC_NAMES), samples=write(tmp_path, "s.csv", NUMERIC_SAMPLES))
    assert list(data.samples.index) == ["001", "010"]
    assert list(data.counts["sample"].values) == ["001", "010"]
    assert data.mirnas == ["001"]


def test_numeric_looking_names_stay_text_in_tsv_wide_and_h5ad(tmp_path):
    samples = write(tmp_path, "s.tsv", NUMERIC_SAMPLES.replace(",", "\t"))
    tsv = read_counts(write(tmp_path, "c.tsv", NUMERIC_NAMES.replace(",", "\t")), samples=samples)
    wide = read_counts(write(tmp_path, "w.csv", "miRNA,sequence,001,010\n001,AAA,5,3\n001,CCC,1,2\n"),
                       samples=samples)
    assert tsv.equals(wide) and list(wide.samples.index) == ["001", "010"]
    path = tmp_path / "d.h5ad"
    wide.to_anndata().write_h5ad(path)
    again = read_counts(path)
    assert list(again.samples.index) == ["001", "010"] and again.mirnas == ["001"]
    assert again.counts.equals(wide.counts)


def test_round_trip_of_numeric_names_through_to_dataframe(tmp_path):
    data = read_counts(write(tmp_path, "c.csv", NUMERIC_NAMES), samples=write(tmp_path, "s.csv", NUMERIC_SAMPLES))
    path = tmp_path / "again.csv"
    data.to_dataframe().to_csv(path, index=False)
    data.samples.to_csv(tmp_path / "again_samples.csv")
    again = read_counts(path, samples=tmp_path / "again_samples.csv", library_size="counts")
    assert again.equals(read_counts(write(tmp_path, "c2.csv", NUMERIC_NAMES), samples=tmp_path / "s.csv"))


def test_t_and_u_spellings_of_one_read_are_one_isomir_with_summed_counts(tmp_path):
    """AAU (row 3) and AAT are the same read: one isomiR with 5 + 4 reads in s1; lower case likewise."""
    text = HEADER + "mir-1,AAT,s1,5\nmir-1,AAU,s1,4\nmir-1,aat,s2,3\nmir-1,CCC,s1,1\nmir-1,CCC,s2,2\n"
    with pytest.warns(UserWarning, match="written in more than one way"):
        data = read_counts(write(tmp_path, "c.csv", text), samples=write(tmp_path, "s.csv", SAMPLES))
    assert list(data.counts["sequence"].values) == ["AAT", "CCC"]
    assert data.counts.sel(isomir="mir-1|AAT", sample="s1") == 9
    assert data.counts.sel(isomir="mir-1|AAT", sample="s2") == 3
    collisions = data.sequence_collisions
    assert collisions.to_dict("records") == [
        {"miRNA": "mir-1", "sequence": "AAT", "spellings": "AAT,AAU,aat", "n_spellings": 3, "reads": 12}]
    assert data.library_size.to_dict() == {"s1": 10.0, "s2": 5.0}  # T_i counts the merged read once


def test_rna_alphabet_alone_is_normalised_without_a_collision(tmp_path):
    data = read_counts(write(tmp_path, "c.csv", HEADER + "mir-1,AAU,s1,5\nmir-1,AAU,s2,3\n"))
    assert list(data.counts["sequence"].values) == ["AAT"] and len(data.sequence_collisions) == 0


MISSING_GROUP = {
    "NA": "sample,group\ns1,a\ns2,b\ns3,NA\ns4,a\ns5,b\n",
    "empty": "sample,group\ns1,a\ns2,b\ns3,\ns4,a\ns5,b\n",
    "null": "sample,group\ns1,a\ns2,b\ns3,null\ns4,a\ns5,b\n",
    "NaN": "sample,group\ns1,a\ns2,b\ns3,NaN\ns4,a\ns5,b\n",
    "quoted NA (R write.csv)": '"","group"\n"s1","a"\n"s2","b"\n"s3",NA\n"s4","a"\n"s5","b"\n',
}
FIVE_SAMPLES = HEADER + "".join(f"mir-1,AAA,s{i},{i}\nmir-1,CCC,s{i},2\n" for i in range(1, 6))


@pytest.mark.parametrize("case", sorted(MISSING_GROUP))
def test_missing_group_value_is_refused_naming_file_column_and_row(case, tmp_path):
    data = read_counts(write(tmp_path, "c.csv", FIVE_SAMPLES), samples=write(tmp_path, "s.csv", MISSING_GROUP[case]))
    with pytest.raises(InputError) as error:
        build_design(data.samples, "~ group")
    message = str(error.value)
    for word in ("s.csv", "'group'", "rows 4", "s3", "missing value"):
        assert word in message, (word, message)
    with pytest.raises(InputError, match="rows 4"):
        build_design(data.samples, "~ group", reference={"group": "a"})


def test_missing_value_in_an_unused_column_is_allowed(tmp_path):
    samples = "sample,group,lab\ns1,a,x\ns2,b,NA\ns3,a,y\ns4,b,x\ns5,a,y\n"
    data = read_counts(write(tmp_path, "c.csv", FIVE_SAMPLES), samples=write(tmp_path, "s.csv", samples))
    assert build_design(data.samples, "~ group").coef_names == ["Intercept", "group[T.b]"]
    with pytest.raises(InputError, match="'lab', rows 3"):
        build_design(data.samples, "~ group + lab")


def test_na_marker_in_a_dataframe_is_refused_too():
    samples = pd.DataFrame({"group": ["a", "b", "NA", "a", "b"]}, index=[f"s{i}" for i in range(1, 6)])
    with pytest.raises(InputError, match="samples s3"):
        build_design(samples, "~ group")


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_counts_are_one_error_line_on_the_cli(case, tmp_path):
    """The same corpus through `bayesmir info`: exit 2, one `error:` line, no traceback."""
    from typer.testing import CliRunner

    from bayesmir.cli import app

    counts_text, samples_text, words = CASES[case]
    args = [str(write(tmp_path, "counts.csv", counts_text))]
    if samples_text:
        args += ["--samples", str(write(tmp_path, "samples.csv", samples_text))]
    result = CliRunner().invoke(app, ["info", *args])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
