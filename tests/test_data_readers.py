"""read_counts on the data sets (shapes of their READMEs) and format round trips."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from bayesmir import InputError, read_counts
from bayesmir.data.readers import detect_format


@pytest.fixture(scope="module")
def se_example_dir(test_data_dir):
    return test_data_dir / "mirglmm_se_example"


@pytest.fixture(scope="module")
def se_example(se_example_dir):
    return read_counts(se_example_dir / "counts_long.csv", samples=se_example_dir / "samples.csv")


def test_mirglmm_example_shapes(se_example):
    """README: 6 samples, 3 miRNAs, 73 isomiRs, 650,618 reads; one group (valid to read)."""
    assert se_example.n_samples == 6
    assert len(se_example.mirnas) == 3 and se_example.n_isomirs == 73
    assert int(se_example.counts.sum()) == 650618
    assert set(se_example.samples["group"]) == {"Monocyte"}


def test_mirglmm_example_totals_match_anchor(se_example):
    """Anchor README: T_i = 21095, 190309, 92009, 200967, 44678, 101560 (order of se_example_samples.csv)."""
    expected = [21095, 190309, 92009, 200967, 44678, 101560]
    np.testing.assert_array_equal(np.sort(se_example.library_size.to_numpy()), np.sort(expected))


@pytest.mark.slow
def test_somel_brain_shapes(shared_dir):
    """README: 6 samples (nb 3, o 3), 1,342 miRNAs, 147,134 isomiRs, 140,665 sequences, 29,228,972 reads.

    Needs the full 14 MB counts, which only ../shared holds (slow, skips without it)."""
    folder = shared_dir / "data" / "somel2010_brain"
    data = read_counts(folder / "counts_long.csv", samples=folder / "samples.csv")
    assert (data.n_samples, len(data.mirnas), data.n_isomirs) == (6, 1342, 147134)
    assert len(set(data.counts["sequence"].values)) == 140665
    assert int(data.counts.sum()) == 29228972
    assert data.samples["group"].value_counts().to_dict() == {"nb": 3, "o": 3}


def test_wide_h5ad_rda_equal_long(se_example, se_example_dir, tmp_path):
    """The same data in four formats gives identical IsomirData (metadata from the same samples.csv)."""
    samples = se_example_dir / "samples.csv"
    wide = tmp_path / "counts_wide.tsv"
    se_example.to_wide().to_csv(wide, sep="\t", index=False)
    h5ad = tmp_path / "counts.h5ad"
    se_example.to_anndata().write_h5ad(h5ad)
    rda = se_example_dir / "se_example.rda"  # written by R's SummarizedExperiment: make_se_example.R beside it
    for path in (wide, h5ad, rda):
        assert read_counts(path, samples=samples).equals(se_example), path.suffix


def test_h5ad_carries_metadata_and_library_size(se_example, tmp_path):
    path = tmp_path / "counts.h5ad"
    se_example.to_anndata().write_h5ad(path)
    again = read_counts(path)
    assert again.library_size.equals(se_example.library_size)
    pd.testing.assert_series_equal(again.samples["group"], se_example.samples["group"])


def test_rda_summarized_experiment_metadata(se_example, se_example_dir):
    """Without a samples file the colData of the R object is the metadata."""
    data = read_counts(se_example_dir / "se_example.rda")
    assert data.counts.identical(se_example.counts)
    assert list(data.samples["group"]) == list(se_example.samples["group"])


def test_gzipped_long_and_format_detection(se_example_dir, tmp_path):
    gz = tmp_path / "counts.csv.gz"
    pd.read_csv(se_example_dir / "counts_long.csv").to_csv(gz, index=False)
    assert detect_format(gz) == "long"
    assert read_counts(gz).n_isomirs == 73


def test_wide_rejects_unknown_sample_columns(se_example, se_example_dir, tmp_path):
    wide = se_example.to_wide().assign(extra=0)
    path = tmp_path / "wide.csv"
    wide.to_csv(path, index=False)
    with pytest.raises(InputError, match="extra"):
        read_counts(path, samples=se_example_dir / "samples.csv")


def test_copy_keeps_working(se_example_dir, tmp_path):
    """Reading does not depend on the file's folder (no side files)."""
    target = tmp_path / "c.csv"
    shutil.copy(se_example_dir / "counts_long.csv", target)
    assert read_counts(target).n_isomirs == 73
