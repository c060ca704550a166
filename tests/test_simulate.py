"""Tests of bayesmir.simulation: determinism, shapes, invariants, and that the truth shows in the counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmir.errors import InputError
from bayesmir.simulation import simulate


@pytest.fixture(scope="module")
def small():
    return simulate(n_mirnas=15, n_samples=10, seed=3)


def test_same_seed_same_data_other_seed_other_data():
    # exact equality: the generator is seeded, nothing else is random
    first, second = simulate(seed=11), simulate(seed=11)
    pd.testing.assert_frame_equal(first.counts, second.counts)
    pd.testing.assert_frame_equal(first.truth_mirna, second.truth_mirna)
    pd.testing.assert_frame_equal(first.truth_isomir, second.truth_isomir)
    other = simulate(seed=12)
    assert not first.counts["count"].equals(other.counts["count"])


def test_shapes_and_columns(small):
    sim = small
    assert list(sim.counts.columns) == ["miRNA", "sequence", "sample", "count"]
    assert sim.counts["count"].dtype == np.int64
    assert list(sim.samples.columns) == ["group"] and sim.samples.index.name == "sample"
    assert len(sim.samples) == 10 and (sim.samples["group"].value_counts() == 5).all()
    # the reference (first) group comes first
    assert sim.samples["group"].iloc[0] == "ctrl"
    truth = sim.truth_mirna
    assert len(truth) == 15 and truth["miRNA"].is_unique
    for column in ("miRNA", "logfc", "is_de", "has_slope", "sd_slope", "n_isomirs"):
        assert column in truth.columns
    assert truth["n_isomirs"].between(2, 12).all()
    # frac_de = 0.3 and frac_slope = 0.3 of 15 miRNAs: round(4.5) = 4 each
    assert truth["is_de"].sum() == 4 and truth["has_slope"].sum() == 4
    assert (truth.loc[~truth["has_slope"], "sd_slope"] == 0).all()
    assert len(sim.truth_isomir) == truth["n_isomirs"].sum()
    assert list(sim.truth_isomir.columns) == ["miRNA", "sequence", "logfc", "intercept"]


def test_sequences_are_dna_of_length_18_to_24_unique_within_mirna(small):
    iso = small.truth_isomir
    assert iso["sequence"].str.fullmatch(r"[ACGT]{18,24}").all()
    assert not iso.duplicated(["miRNA", "sequence"]).any()


def test_zero_counts_omitted_and_every_pair_at_most_once(small):
    counts = small.counts
    assert (counts["count"] > 0).all()
    assert not counts.duplicated(["miRNA", "sequence", "sample"]).any()
    # counts only on simulated isomiRs and samples
    keys = set(zip(small.truth_isomir["miRNA"], small.truth_isomir["sequence"]))
    assert set(zip(counts["miRNA"], counts["sequence"])) <= keys
    assert set(counts["sample"]) <= set(small.samples.index)


def test_library_size_is_the_total_count_of_each_sample(small):
    totals = small.counts.groupby("sample")["count"].sum()
    pd.testing.assert_series_equal(
        small.library_size, totals.reindex(small.samples.index).astype(float), check_names=False
    )


def test_isomir_logfc_is_mirna_logfc_plus_slope_only_where_slopes(small):
    merged = small.truth_isomir.merge(small.truth_mirna[["miRNA", "logfc", "has_slope"]], on="miRNA",
                                      suffixes=("", "_mirna"))
    flat = merged[~merged["has_slope"]]
    assert np.allclose(flat["logfc"], flat["logfc_mirna"], atol=0)
    sloped = merged[merged["has_slope"]]
    assert (np.abs(sloped["logfc"] - sloped["logfc_mirna"]) > 0).all()


def test_de_mirnas_in_up_down_pairs_of_equal_size():
    truth = simulate(n_mirnas=40, frac_de=0.5, seed=5).truth_mirna
    de = truth.loc[truth["is_de"], "logfc"]
    assert (de > 0).sum() == (de < 0).sum() == 10
    # paper protocol: fold change clipped to [1.05, 3]
    assert np.abs(de).between(np.log(1.05) - 1e-12, np.log(3) + 1e-12).all()
    assert np.allclose(np.sort(de[de > 0]), np.sort(-de[de < 0]))


def test_summed_log_ratio_tracks_truth_on_a_big_effect_simulation():
    # 40 miRNAs, 30 samples, |logFC| ~ half-normal(1.5), no slopes: the per-miRNA log ratio of the
    # group means of CPM-normalised summed counts has sampling sd ~ 0.15 (NB theta 10, sample sd 0.2,
    # 15 per group) against a truth spread of ~1, so correlation > 0.9 is a loose, non-flaky bound.
    sim = simulate(n_mirnas=40, n_samples=30, beta_sd=1.5, frac_de=0.6, frac_slope=0.0, seed=7)
    summed = sim.counts.groupby(["miRNA", "sample"])["count"].sum().unstack(fill_value=0)
    cpm = summed / sim.library_size[summed.columns] * 1e6
    case = sim.samples.index[sim.samples["group"] == "case"]
    ctrl = sim.samples.index[sim.samples["group"] == "ctrl"]
    observed = np.log(cpm[case].mean(axis=1) + 0.5) - np.log(cpm[ctrl].mean(axis=1) + 0.5)
    truth = sim.truth_mirna.set_index("miRNA")["logfc"].reindex(observed.index)
    assert np.corrcoef(observed, truth)[0, 1] > 0.9
    # and no systematic bias: median error within 0.15 (same sampling sd as above)
    assert abs(np.median(observed - truth)) < 0.15


def test_counts_scale_like_a_monocyte_data_set(small):
    # the median miRNA has a few hundred to tens of thousands of reads per sample
    mean_reads = small.counts.groupby(["miRNA", "sample"])["count"].sum().groupby("miRNA").mean()
    assert 300 < mean_reads.median() < 1e5
    assert small.library_size.between(2e5, 4e6).all()


def test_dispersion_range_draws_theta_per_mirna():
    theta = simulate(dispersion=(5.0, 20.0), seed=1).truth_mirna["dispersion"]
    assert theta.between(5, 20).all() and theta.nunique() == len(theta)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"groups": ("a",)}, "groups"), ({"n_samples": 3}, "n_samples"), ({"frac_de": 1.5}, "frac_de"),
     ({"n_isomirs": (3, 2)}, "n_isomirs")],
)
def test_bad_arguments_raise_input_error(kwargs, fragment):
    with pytest.raises(InputError, match=fragment):
        simulate(**kwargs)


def test_to_data_round_trips_through_isomir_data(small):
    pytest.importorskip("bayesmir.data", reason="bayesmir.data not written yet")
    from bayesmir.data import IsomirData

    if not hasattr(IsomirData, "from_long"):
        pytest.skip("IsomirData.from_long not available yet")
    data = small.to_data()
    pd.testing.assert_series_equal(
        data.library_size.astype(float), small.library_size, check_names=False
    )
    summed = small.counts.groupby(["miRNA", "sample"])["count"].sum().unstack(fill_value=0)
    got = data.mirna_counts().loc[summed.index, summed.columns]
    assert (got.to_numpy() == summed.to_numpy()).all()


def test_reference_makes_fits_estimate_the_simulated_fold_change():
    # NB GLM on summed counts with the simulation's reference level: the estimates follow the truth
    # (same sign convention). 30 miRNAs x 20 samples, beta_sd 1, no slopes: the per-miRNA SE is
    # ~0.15 against a truth spread of ~0.7, so correlation > 0.8 is loose.
    from bayesmir.frequentist.aggregated import fit_aggregated

    sim = simulate(n_mirnas=30, n_samples=20, beta_sd=1.0, frac_de=0.5, frac_slope=0.0, seed=4)
    assert sim.reference == {"group": "ctrl"}
    fits = fit_aggregated(sim.to_data(), reference=sim.reference).set_index("miRNA")
    assert set(fits["coef"]) == {"group[T.case]"}
    truth = sim.truth_mirna.set_index("miRNA")["logfc"].reindex(fits.index)
    assert np.corrcoef(fits["estimate"], truth)[0, 1] > 0.8


def test_de_direction_up_makes_every_de_mirna_go_up_the_most_abundant_among_them():
    sim = simulate(n_mirnas=40, frac_de=0.25, de_direction="up", seed=8)
    truth = sim.truth_mirna
    assert truth["is_de"].sum() == 10 and (truth.loc[truth["is_de"], "logfc"] > 0).all()
    assert truth.loc[truth["share"].idxmax(), "is_de"]
    # composition stress: the case group's library grows relative to its depth (the DE miRNAs hold
    # > 25% of the library and go up by >= 5%); per-sample noise (sd 0.2 per miRNA) averages out
    ratio = np.log(sim.library_size / sim.depth)
    case = sim.samples["group"] == "case"
    assert ratio[case].mean() - ratio[~case].mean() > 0.02


def test_bad_de_direction_raises_input_error():
    with pytest.raises(InputError, match="de_direction"):
        simulate(de_direction="down")
