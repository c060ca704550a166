"""The fit driver: per-miRNA seeds, failures recorded not raised, reduced fits, fit() wiring."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from mirna_sim import isomir_data, simulate_problem

from bayesmir import InputError
from bayesmir.driver import fit, fit_problems, mirna_seed
from bayesmir.inference import METHODS, Inference, diagnostics_row
from bayesmir.inference.nuts import nutpie_available
from bayesmir.problem import MirnaProblem


class FakeInference(Inference):
    """Draws 'posteriors' from the seed only: instant, deterministic, fails on request."""

    name = "fake"
    process_parallel = True

    def fit_one(self, problem: MirnaProblem, seed: int):
        if problem.mirna.startswith("bad"):
            raise ValueError("cannot fit this one")
        rng = np.random.default_rng(seed)
        q = problem.Z.shape[1]
        posterior = xr.Dataset(
            {
                "beta": (("chain", "draw", "coef"), rng.normal(size=(1, 50, problem.X.shape[1]))),
                "sd_isomir": (("chain", "draw", "re_term"), np.abs(rng.normal(size=(1, 50, q)))),
                "isomir_effect": (("chain", "draw", "isomir", "re_term"),
                                  rng.normal(size=(1, 50, problem.n_isomirs, q))),
            },
            coords={"coef": problem.coef_names, "re_term": problem.re_names, "isomir": problem.sequences},
            attrs={"log_marginal_likelihood": float(-q)},
        )
        row = diagnostics_row(problem.mirna, self.name, converged=True)
        return az.InferenceData(posterior=posterior), row


@pytest.fixture
def fake_method(monkeypatch):
    monkeypatch.setitem(METHODS, "fake", "test_driver:FakeInference")
    return "fake"


def problems() -> list[MirnaProblem]:
    return [simulate_problem(12, 5, seed=1, name="mir-1"), simulate_problem(12, 3, seed=2, name="bad-2"),
            simulate_problem(12, 4, seed=3, name="mir-3")]


def test_mirna_seed_is_stable_and_distinct():
    """Hash-derived: same (seed, name) -> same value; a different name or seed changes it."""
    assert mirna_seed(0, "mir-1") == mirna_seed(0, "mir-1")
    assert len({mirna_seed(0, "mir-1"), mirna_seed(0, "mir-2"), mirna_seed(1, "mir-1")}) == 3


def test_failure_is_recorded_and_run_goes_on(fake_method):
    result = fit_problems(problems(), method=fake_method, progress=True, reduced=True)
    rows = result.diagnostics.set_index("miRNA")
    assert not rows.loc["bad-2", "converged"]
    assert "cannot fit this one" in rows.loc["bad-2", "message"]
    assert set(result.posteriors) == {"mir-1", "mir-3"} and set(result.posteriors_reduced) == {"mir-1", "mir-3"}
    assert result.posteriors_reduced["mir-1"].posterior.sizes["re_term"] == 1
    slopes = result.slope_table().set_index("miRNA")
    assert slopes.loc["mir-1", "log_bayes_factor"] == pytest.approx(-2.0 - -1.0)  # attrs: -q
    assert slopes.loc["bad-2", "flag"].startswith("failed")
    assert result.mirna_info.loc["mir-3", "n_isomirs"] == 4


def test_same_seed_same_numbers_across_jobs(fake_method):
    """Per-miRNA seeds do not depend on the order or the number of worker processes."""
    one = fit_problems(problems(), method=fake_method, seed=7, progress=False)
    two = fit_problems(problems()[::-1], method=fake_method, seed=7, progress=False, n_jobs=2)
    for mirna in ("mir-1", "mir-3"):
        xr.testing.assert_equal(one.posteriors[mirna].posterior, two.posteriors[mirna].posterior)
    other = fit_problems(problems(), method=fake_method, seed=8, progress=False)
    assert not other.posteriors["mir-1"].posterior.equals(one.posteriors["mir-1"].posterior)


@pytest.mark.slow
def test_laplace_same_numbers_serial_processes_and_dask():
    """Two loky workers and a dask LocalCluster of two workers (started here) give identical
    numbers (per-miRNA seeds; one-thread XLA and BLAS in every worker). The serial run in this
    process agrees to 1e-6 (absolute and relative): the API leaves this process's XLA_FLAGS
    alone, so XLA may run multi-threaded here, which changes summation order only (measured:
    largest absolute difference 7.9e-6, within the
    relative 1e-6 of this check). The CLI sets the flags in its own process, where serial and
    dask runs are identical (tests/test_cli_runs.py)."""
    many = [simulate_problem(10, J, seed=k, name=f"mir-{k}") for k, J in enumerate([3, 4, 2, 9])]
    options = {"method": "laplace", "seed": 3, "progress": False, "reduced": False, "n_hyper": 8, "draws": 50}
    one = fit_problems(many, scheduler="serial", **options)
    pool = fit_problems(many, n_jobs=2, scheduler="processes", **options)
    cluster = fit_problems(many, n_jobs=2, scheduler="dask", **options)
    assert one.mirnas == pool.mirnas == cluster.mirnas
    for mirna in one.mirnas:
        xr.testing.assert_identical(pool.posteriors[mirna].posterior, cluster.posteriors[mirna].posterior)
        xr.testing.assert_allclose(one.posteriors[mirna].posterior, pool.posteriors[mirna].posterior,
                                   rtol=1e-6, atol=1e-6)


def test_loo_adds_the_elpd_columns_and_changes_nothing_else():
    """``loo=True`` stores each fit's pointwise ELPD (one value per count) and the slope table gains
    finite ``elpd_diff`` columns; the default leaves them out; every other number is the same."""
    from bayesmir.table_rows import ELPD_COLUMNS, ELPD_GROUP

    small = [simulate_problem(10, 3, seed=1, name="mir-1"), simulate_problem(10, 4, seed=2, name="mir-2")]
    options = {"method": "laplace", "progress": False, "n_hyper": 8, "draws": 50}
    plain, loo = fit_problems(small, **options), fit_problems(small, loo=True, **options)
    assert all(ELPD_GROUP not in idata.groups() for idata in plain.posteriors.values())
    elpd = loo.posteriors["mir-2"][ELPD_GROUP]["elpd_i"]
    assert elpd.shape == (10, 4) and bool(np.isfinite(elpd).all())
    with_loo = loo.slope_table()
    assert np.isfinite(with_loo[list(ELPD_COLUMNS)]).all().all()
    pd.testing.assert_frame_equal(with_loo.drop(columns=list(ELPD_COLUMNS)), plain.slope_table())
    pd.testing.assert_frame_equal(loo.mirna_table().drop(columns="seconds"), plain.mirna_table().drop(columns="seconds"))


def test_inference_instance_and_method_facts(fake_method):
    """An Inference object is used as given; method facts are class attributes."""
    from bayesmir.inference.laplace import LaplaceInference

    assert LaplaceInference.fits_reduced_by_default and not FakeInference.fits_reduced_by_default
    result = fit_problems(problems(), method=FakeInference(), progress=False)
    assert result.diagnostics_reduced is None and result.options["method"] == "fake"
    with pytest.raises(InputError, match="cannot be combined"):
        fit_problems(problems(), method=FakeInference(), draws=3)


def test_unknown_and_missing_methods_raise_input_error(monkeypatch):
    with pytest.raises(InputError, match="method must be one of"):
        fit_problems(problems(), method="gibbs")
    monkeypatch.setitem(METHODS, "missing", "bayesmir.inference.does_not_exist:Nope")
    with pytest.raises(InputError, match="not available"):
        fit_problems(problems(), method="missing")


def test_fit_builds_design_and_offsets(fake_method, monkeypatch):
    """fit() passes the 'total' offset log(T / 1e4) (here equal to the simulated offset, 1e-12) and
    the design from the formula; the result records options."""
    seen, fit_one = {}, FakeInference.fit_one

    def recording(self, problem, seed):
        seen[problem.mirna] = problem.offset
        return fit_one(self, problem, seed)

    monkeypatch.setattr(FakeInference, "fit_one", recording)
    data = isomir_data(problems())
    result = fit(data, formula="~ group", method=fake_method, progress=False, mirnas=["mir-1", "mir-3"],
                 normalisation="total")
    np.testing.assert_allclose(seen["mir-1"], problems()[0].offset, rtol=1e-12)
    assert result.design.coef == "group[T.b]" and result.options["formula"] == "~ group"
    assert result.options["normalisation"] == "total" and result.mirnas == ["mir-1", "mir-3"]
    with pytest.raises(InputError):
        fit(data, formula="~ nothing", method=fake_method, progress=False)


@pytest.mark.skipif(not nutpie_available(), reason="nutpie not installed")
def test_nuts_through_driver_with_reduced_model():
    """End to end with NUTS (short chains): both models fitted, one compile per bucket and model
    (full and reduced: 2), the ELPD comparison is filled and finite."""
    small = [simulate_problem(12, 3, seed=1, name="mir-1"), simulate_problem(12, 4, seed=3, name="mir-3")]
    result = fit_problems(small, method="nuts", reduced=True, progress=False, draws=200, tune=200, chains=2,
                          loo=True)
    assert set(result.posteriors) == set(result.posteriors_reduced) == {"mir-1", "mir-3"}
    slopes = result.slope_table()
    assert np.isfinite(slopes["elpd_diff"]).all()
    assert np.isnan(slopes["log_bayes_factor"]).all()  # NUTS gives no marginal likelihood
    table = result.mirna_table()
    assert table["coef"].tolist() == ["group[T.b]", "group[T.b]"] and table["qvalue"].notna().all()


def anchor_problems(data_dir, n_mirnas: int):
    """First miRNAs of the lme4-anchored simulation as MirnaProblems (without bayesmir.data)."""
    from bayesmir.design import build_design

    folder = data_dir / "sim_monocyte_scale"
    counts = pd.read_csv(folder / "counts_long.csv.gz")
    samples = pd.read_csv(folder / "samples.csv").set_index("sample")
    design = build_design(samples, "~ group")
    total = counts.groupby("sample")["count"].sum().loc[samples.index]
    offset = np.log(total.to_numpy() / 1e4)
    problems = []
    for mirna in sorted(counts["miRNA"].unique())[:n_mirnas]:
        wide = counts[counts["miRNA"] == mirna].pivot(index="sample", columns="sequence", values="count")
        wide = wide.reindex(samples.index).fillna(0).astype(np.int64)
        problems.append(MirnaProblem(mirna, wide.to_numpy(), list(wide.columns), list(samples.index), offset,
                                     design.X, design.Z, design.coef_names, design.re_names))
    return problems, folder


@pytest.mark.slow
@pytest.mark.skipif(not nutpie_available(), reason="nutpie not installed")
def test_nuts_agrees_with_lme4_on_anchor_simulation(test_data_dir):
    """6 miRNAs of sim_monocyte_scale: NUTS posterior mean of logFC within 0.5 lme4 SE + 0.02 of
    glmer.nb's estimate (weak priors, 39 samples: posterior mean ~ MLE), and the 95% interval covers
    the simulated truth for at least 5 of 6. As in R (and the anchor), the reference level is the
    first alphabetically, ``case``, so the coefficient is ctrl vs case: the truth (case vs ctrl)
    changes sign."""
    problems, folder = anchor_problems(test_data_dir, 6)
    result = fit_problems(problems, method="nuts", progress=False, seed=1)
    table = result.mirna_table().set_index("miRNA")
    lme4 = pd.read_csv(folder / "lme4_glmer_nb.csv").set_index("miRNA")
    truth = pd.read_csv(folder / "truth_mirna.csv").set_index("miRNA")
    names = table.index
    difference = (table["estimate"] - lme4.loc[names, "logFC"]).abs()
    assert (difference < 0.5 * lme4.loc[names, "SE"] + 0.02).all(), difference
    assert set(table["coef"]) == {"group[T.ctrl]"}
    true_logfc = -truth.loc[names, "logFC"]
    covered = (table["ci_low"] < true_logfc) & (true_logfc < table["ci_high"])
    assert covered.sum() >= 5, table[["estimate", "ci_low", "ci_high"]]


def test_pooling_estimates_shared_priors_from_truth():
    """Cross-miRNA pooling (empirical Bayes): the pooled prior centres recover the simulation's shared
    values (theta = 10 for every miRNA, sd_sample 0.2) within the stated slack, and pooling refuses NUTS."""
    from bayesmir.simulation import simulate

    sim = simulate(n_mirnas=12, n_samples=6, seed=3)
    data = sim.to_data()
    fit_result = fit(data, reference=sim.reference, pooling=True, reduced=False, progress=False, seed=1)
    priors = fit_result.options["priors"]
    assert abs(priors["pooled_log_theta_mean"] - np.log(10.0)) < 0.4, priors
    assert 0.1 < np.exp(priors["pooled_log_sd_sample_mean"]) < 0.5, priors
    assert fit_result.options["pooling"] and fit_result.diagnostics["converged"].mean() > 0.8
    with pytest.raises(InputError, match="laplace"):
        fit(data, method="nuts", pooling=True, progress=False)
