"""miRglmm's filters against the R anchors and an independent pandas recomputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")

from bayesmir import InputError, load_example, read_counts
from bayesmir.data.filters import mirna_log_median_cpm


@pytest.fixture(scope="module")
def se_example(test_data_dir):
    folder = test_data_dir / "mirglmm_se_example"
    return read_counts(folder / "counts_long.csv", samples=folder / "samples.csv")


def test_filter_matches_r_anchor_on_mirglmm_example(se_example, test_data_dir):
    """tests/data/mirglmm_se_example/filtered_filter.csv (R): isomiRs kept 5 / 21 / 17."""
    anchor = pd.read_csv(test_data_dir / "mirglmm_se_example" / "filtered_filter.csv").set_index("miRNA")
    filtered = se_example.filter()
    kept = pd.Series(filtered.counts["miRNA"].values).value_counts()
    for mirna, row in anchor.iterrows():
        assert kept.get(mirna, 0) == row["n_isomiRs_kept"]
    # rtol 1e-10: the same sums, divisions and log as R's; the CSV keeps 15 significant digits
    np.testing.assert_allclose(mirna_log_median_cpm(se_example).loc[anchor.index], anchor["log_median_cpm"],
                               rtol=1e-10)
    report = filtered.filter_report
    assert report["isomirs"].iloc[-1] == 43 and report["mirnas"].iloc[-1] == 3
    assert (report["isomirs_removed"].iloc[1:].sum()) == 73 - 43


@pytest.mark.slow
def test_filter_matches_r_anchor_on_brain(shared_dir):
    """anchors/README: filtered somel2010_brain has 120 miRNAs and 15,757 isomiRs (full 14 MB counts:
    only in ../shared, skips without it)."""
    folder = shared_dir / "data" / "somel2010_brain"
    data = read_counts(folder / "counts_long.csv", samples=folder / "samples.csv").filter()
    assert (len(data.mirnas), data.n_isomirs) == (120, 15757)


def independent_filter(long: pd.DataFrame, totals: pd.Series, mirna_min=5.0, iso_min=-1.0, n_min=2):
    """Straight transcription of fit_glmm.R's filter in pandas (no bayesmir code)."""
    samples = list(totals.index)

    def log_median_cpm(table, key):  # zeros included; log(0) = -inf fails every threshold
        wide = table.pivot_table(index=key, columns="sample", values="count", aggfunc="sum", fill_value=0)
        wide = wide.reindex(columns=samples, fill_value=0) / (totals / 1e6)
        return np.log(wide.median(axis=1))

    mi = log_median_cpm(long, "miRNA")
    long = long[long["miRNA"].isin(mi.index[mi > mirna_min])].assign(key=lambda t: t["miRNA"] + " " + t["sequence"])
    iso = log_median_cpm(long, "key")
    long = long[long["key"].isin(iso.index[iso > iso_min])]
    n_iso = long.groupby("miRNA")["sequence"].nunique()
    long = long[long["miRNA"].isin(n_iso.index[n_iso >= n_min])]
    return long.groupby("miRNA")["sequence"].nunique()


@pytest.mark.parametrize("thresholds", [(5.0, -1.0, 2), (5.5, 0.0, 3), (4.0, -2.0, 10)])
def test_filter_matches_independent_recomputation(thresholds):
    data = load_example()
    long = data.to_dataframe()
    expected = independent_filter(long, data.library_size, *thresholds)
    filtered = data.filter(*thresholds)
    got = pd.Series(filtered.counts["miRNA"].values).value_counts().sort_index()
    pd.testing.assert_series_equal(got, expected.sort_index(), check_names=False, check_index_type=False)
    assert filtered.library_size.equals(data.library_size)


def test_filter_that_removes_everything_raises():
    with pytest.raises(InputError, match="no miRNA is left"):
        load_example().filter(min_mirna_logcpm=30)
