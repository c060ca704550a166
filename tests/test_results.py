"""FitResult tables against hand-made posteriors with known draws; save/load round trip."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from bayesmir.calls import svalues
from bayesmir.inference.base import diagnostics_row
from bayesmir.mixture import MIXTURE_GROUP
from bayesmir.results import FitResult, load_fit

CHAINS, DRAWS = 4, 2000
N = CHAINS * DRAWS
SEQUENCES = ["AAA", "CCC", "GGG"]
COEFS = ["Intercept", "group[T.b]"]


def hand_made_idata(mean: float, sd: float, seed: int, slope_sd_draws=None, lml=None) -> az.InferenceData:
    """Posterior with beta[group] ~ N(mean, sd), constant isomiR intercepts log(1, 2, 3), isomiR
    slope deviations ~ N(0.1 * j, 0.05)."""
    rng = np.random.default_rng(seed)
    shape = (CHAINS, DRAWS)
    beta = np.stack([rng.normal(1.0, 0.1, shape), rng.normal(mean, sd, shape)], axis=-1)
    effect = np.empty((*shape, 3, 2))
    effect[..., 0] = np.log([1.0, 2.0, 3.0])
    effect[..., 1] = rng.normal([0.0, 0.1, 0.2], 0.05, (*shape, 3))
    sd_slope = rng.uniform(0, 1, shape) if slope_sd_draws is None else slope_sd_draws.reshape(shape)
    posterior = xr.Dataset(
        {
            "beta": (("chain", "draw", "coef"), beta),
            "sd_isomir": (("chain", "draw", "re_term"), np.stack([np.ones(shape), sd_slope], -1)),
            "isomir_effect": (("chain", "draw", "isomir", "re_term"), effect),
            "sd_sample": (("chain", "draw"), np.full(shape, 0.2)),
        },
        coords={"chain": np.arange(CHAINS), "draw": np.arange(DRAWS), "coef": COEFS, "re_term": COEFS,
                "isomir": SEQUENCES},
        attrs={"method": "hand", "family": "nb"} | ({} if lml is None else {"log_marginal_likelihood": lml}),
    )
    return az.InferenceData(posterior=posterior)


@pytest.fixture(scope="module")
def result() -> FitResult:
    truths = {"mir-a": (0.5, 0.4), "mir-b": (-1.0, 0.5), "mir-c": (0.05, 0.3)}
    posteriors = {m: hand_made_idata(mu, s, seed=k) for k, (m, (mu, s)) in enumerate(truths.items())}
    rows = [diagnostics_row(m, "hand", converged=True, rhat=1.0) for m in truths]
    rows[2]["converged"], rows[2]["message"] = False, "R-hat 1.2 >= 1.01"
    rows.append(diagnostics_row("mir-fail", "hand", converged=False, message="failed: ValueError: boom"))
    info = {m: {"n_isomirs": 3, "n_samples": 10} for m in [*truths, "mir-fail"]}
    fit = FitResult(posteriors, rows, mirna_info=info, options={"method": "hand", "priors": {}})
    fit.truths = truths
    return fit


def test_mirna_table_matches_normal_theory(result):
    """Mean within 5 MC standard errors; lfsr = Phi(-|mu|/sd) and P(|b| > delta) within 5 binomial
    SE; interval ends within 0.15 sd (quantile MC error at n = 8000 is ~0.04 sd)."""
    table = result.mirna_table(delta=0.2).set_index("miRNA")
    for mirna, (mu, sd) in result.truths.items():
        row = table.loc[mirna]
        assert row["coef"] == "group[T.b]"
        assert abs(row["estimate"] - mu) < 5 * sd / math.sqrt(N)
        expected_lfsr = stats.norm.cdf(-abs(mu) / sd)
        assert abs(row["lfsr"] - expected_lfsr) < 5 * math.sqrt(expected_lfsr * (1 - expected_lfsr) / N) + 1e-9
        p_gt = stats.norm.cdf((-0.2 - mu) / sd) + stats.norm.sf((0.2 - mu) / sd)
        assert abs(row["p_abs_gt_0.200"] - p_gt) < 5 * math.sqrt(p_gt * (1 - p_gt) / N)
        for column, z in [("ci_low", -1.96), ("ci_high", 1.96), ("hdi_low", -1.96), ("hdi_high", 1.96)]:
            assert abs(row[column] - (mu + z * sd)) < 0.15 * sd, column
        # ArviZ's MCSE of independent draws: quantile SE ~ sqrt(p(1-p)/N)/density ~ 0.025 sd here,
        # an indicator mean's ~ sqrt(p(1-p)/N); within a factor 2 of the iid values
        iid = math.sqrt(0.025 * 0.975 / N) / stats.norm.pdf(1.96) * sd
        assert 0.5 * iid < row["ci_low_se"] < 2 * iid
        if expected_lfsr > 1e-3:
            iid = math.sqrt(expected_lfsr * (1 - expected_lfsr) / N)
            assert 0.5 * iid < row["lfsr_se"] < 2 * iid
        assert row["n_isomirs"] == 3 and row["n_samples"] == 10
    assert table.loc["mir-a", "flag"] == "" and table.loc["mir-a", "converged"]
    assert table.loc["mir-c", "flag"].startswith("not converged") and not table.loc["mir-c", "converged"]
    assert table.loc["mir-fail", "flag"].startswith("failed") and np.isnan(table.loc["mir-fail", "lfsr"])


def test_svalue_is_running_mean_of_sorted_lfsr(result):
    """Hand-computed: lfsr (0.3, 0.01, NaN, 0.1) -> sorted 0.01, 0.1, 0.3 -> s 0.01, 0.055, 0.41/3."""
    s = svalues([0.3, 0.01, np.nan, 0.1])
    np.testing.assert_allclose(s, [0.41 / 3, 0.01, np.nan, 0.055], rtol=1e-12)
    table = result.mirna_table()
    finite = table.dropna(subset=["lfsr"])
    np.testing.assert_allclose(finite["svalue"], svalues(finite["lfsr"]), rtol=1e-12)


def test_qvalue_is_bh_of_twice_lfsr():
    """Hand-computed BH of p = 2 lfsr = (0.6, 0.02, 0.2): sorted 0.02, 0.2, 0.6 -> 0.06, 0.3, 0.6."""
    from bayesmir.fdr import benjamini_hochberg

    np.testing.assert_allclose(benjamini_hochberg([0.6, 0.02, np.nan, 0.2]), [0.6, 0.06, np.nan, 0.3])


def test_isomir_table_shares_and_fold_changes(result):
    """Baseline shares are exactly 1/6, 2/6, 3/6 (constant intercept effects log 1, 2, 3); isomiR
    log fold change = beta + deviation (means add exactly); deviation means 0, 0.1, 0.2 within 5 SE."""
    table = result.isomir_table()
    one = table[table["miRNA"] == "mir-a"].set_index("sequence")
    np.testing.assert_allclose(one["baseline_share_estimate"], [1 / 6, 2 / 6, 3 / 6], rtol=1e-12)
    beta_mean = result.posteriors["mir-a"].posterior["beta"].sel(coef="group[T.b]").mean().item()
    np.testing.assert_allclose(one["logfc_estimate"], beta_mean + one["deviation_estimate"], rtol=1e-9)
    np.testing.assert_allclose(one["deviation_estimate"], [0.0, 0.1, 0.2], atol=5 * 0.05 / math.sqrt(N))
    assert table[table["miRNA"] == "mir-fail"]["flag"].iloc[0].startswith("failed")


def test_slope_table_bayes_factor_and_elpd_conventions():
    """log_bayes_factor = difference of the attrs, its SE the root sum of squares of theirs;
    identical full/reduced fits give ELPD diff 0."""
    full = hand_made_idata(0.5, 0.2, seed=1, lml=-100.0)
    reduced = hand_made_idata(0.5, 0.2, seed=1, lml=-103.5)
    full.posterior.attrs["log_marginal_likelihood_se"] = 0.3
    reduced.posterior.attrs["log_marginal_likelihood_se"] = 0.4
    loglik = xr.Dataset({"count": (("chain", "draw", "obs"), np.random.default_rng(0).normal(-2, 0.1, (CHAINS, DRAWS, 5)))})
    full.add_groups(log_likelihood=loglik)
    reduced.add_groups(log_likelihood=loglik)
    rows = [diagnostics_row("m", "hand", converged=True)]
    fit = FitResult({"m": full}, rows, {"m": reduced}, rows, options={"priors": {"sd_slope_scale": 1.0}})
    row = fit.slope_table(delta=0.5).iloc[0]
    assert row["log_bayes_factor"] == pytest.approx(3.5, abs=1e-12)
    assert row["log_bayes_factor_se"] == pytest.approx(0.5, abs=1e-12)
    assert row["elpd_diff"] == pytest.approx(0.0, abs=1e-9) and row["elpd_diff_se"] == pytest.approx(0.0, abs=1e-9)
    sd = full.posterior["sd_isomir"].sel(re_term="group[T.b]").values
    assert row["p_sd_slope_gt_0.500"] == pytest.approx(np.mean(sd > 0.5), abs=1e-12)
    assert row["term"] == "group[T.b]" and row["converged"]


def test_save_load_round_trip_is_exact(result, tmp_path):
    path = result.save(tmp_path / "run")
    loaded = load_fit(path)
    pd.testing.assert_frame_equal(loaded.diagnostics, result.diagnostics)
    pd.testing.assert_frame_equal(loaded.mirna_info, result.mirna_info, check_dtype=False)
    assert loaded.options == result.options
    assert set(loaded.posteriors) == set(result.posteriors)
    for mirna, idata in result.posteriors.items():
        xr.testing.assert_equal(loaded.posteriors[mirna].posterior, idata.posterior)
    pd.testing.assert_frame_equal(loaded.mirna_table(), result.mirna_table())


def test_posterior_lookup_names_failure(result):
    with pytest.raises(KeyError, match="boom"):
        result.posterior("mir-fail")


def test_saved_tables_include_a_run_where_every_fit_failed(tmp_path):
    """A run whose fits all failed still writes its three tables, each naming the miRNA as failed
    (the CLI reads them back after save)."""
    run = FitResult(posteriors={}, diagnostics=[
        diagnostics_row("mir-x", "hand", converged=False, message="failed: ValueError: boom")])
    path = run.save(tmp_path / "run")
    for name in ("mirna", "isomir", "slope"):
        table = pd.read_csv(path / f"{name}_table.csv")
        assert list(table["miRNA"]) == ["mir-x"]
        assert table["flag"].str.startswith("failed").all()


def test_mixture_group_is_summarised_exactly_and_survives_netcdf(tmp_path):
    """A fit with a ``mixture`` group is summarised from it, not from its draws: two equal-weight
    components N(-1, 0.5^2), N(1, 0.5^2) give mean 0, sd sqrt(1.25), median 0, lfsr 0.5 exactly,
    whatever the (deliberately wrong) draws say; after a netCDF round trip too."""
    idata = hand_made_idata(5.0, 0.1, seed=0)
    mixture = xr.Dataset(
        {"weight": (("point",), [0.5, 0.5]),
         "beta_mean": (("point", "coef"), [[0.0, -1.0], [0.0, 1.0]]),
         "beta_sd": (("point", "coef"), [[1.0, 0.5], [1.0, 0.5]])},
        coords={"point": [0, 1], "coef": COEFS})
    idata.add_groups({MIXTURE_GROUP: mixture}, warn_on_custom_groups=False)
    idata.to_netcdf(str(tmp_path / "m.nc"))
    idata = az.from_netcdf(str(tmp_path / "m.nc"))
    fit = FitResult({"m": idata}, [diagnostics_row("m", "hand", converged=True)])
    row = fit.mirna_table().iloc[0]
    assert row["estimate"] == pytest.approx(0.0, abs=1e-12)
    assert row["sd"] == pytest.approx(math.sqrt(1.25), abs=1e-12)
    assert row["median"] == pytest.approx(0.0, abs=1e-8)
    assert row["lfsr"] == pytest.approx(0.5, abs=1e-12)


def draws_with_data(problem, q: int, seed: int) -> az.InferenceData:
    """Posterior draws near the simulation's values for ``problem`` (``q`` random-effect terms), with
    the counts and design stored as laplace and nuts store them."""
    rng = np.random.default_rng(seed)
    shape, n, m = (1, 400), problem.n_samples, problem.n_isomirs
    coefs, terms = problem.coef_names, problem.re_names[:q]
    posterior = xr.Dataset(
        {"beta": (("chain", "draw", "coef"), rng.normal([2.0, 0.3], 0.1, (*shape, 2))),
         "sample_effect": (("chain", "draw", "sample"), rng.normal(0, 0.1, (*shape, n))),
         "isomir_effect": (("chain", "draw", "isomir", "re_term"), rng.normal(0, 0.3, (*shape, m, q))),
         "sd_isomir": (("chain", "draw", "re_term"), np.abs(rng.normal(0.5, 0.1, (*shape, q)))),
         "theta": (("chain", "draw"), rng.gamma(20.0, 0.5, shape))},
        coords={"coef": coefs, "re_term": terms, "isomir": problem.sequences, "sample": problem.samples},
        attrs={"family": "nb", "log_marginal_likelihood": -10.0 * q},
    )
    observed = xr.Dataset({"count": (("sample", "isomir"), problem.counts)},
                          coords={"sample": problem.samples, "isomir": problem.sequences})
    constant = xr.Dataset({"offset": (("sample",), problem.offset), "X": (("sample", "coef"), problem.X),
                           "Z": (("sample", "re_term"), problem.Z[:, :q])},
                          coords={"sample": problem.samples, "coef": coefs, "re_term": terms})
    return az.InferenceData(posterior=posterior, observed_data=observed, constant_data=constant)


def scipy_elpd(idata, problem) -> np.ndarray:
    """PSIS-LOO pointwise ELPD with the log-likelihood written independently with scipy.stats.nbinom."""
    post = idata.posterior
    b = post["isomir_effect"].values
    z = idata.constant_data["Z"].values
    log_mu = (np.asarray(problem.offset)[None, None, :, None]
              + np.einsum("np,cdp->cdn", problem.X, post["beta"].values)[..., None]
              + post["sample_effect"].values[..., None] + np.einsum("nq,cdjq->cdnj", z, b))
    theta = post["theta"].values[..., None, None]
    mu = np.exp(log_mu)
    loglik = stats.nbinom.logpmf(problem.counts[None, None], theta, theta / (theta + mu))
    both = az.InferenceData(posterior=post, log_likelihood=xr.Dataset({"y": (("chain", "draw", "i", "j"), loglik)}))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo(both, pointwise=True).loo_i.values.ravel()


def test_elpd_difference_against_scipy_likelihood():
    """elpd_diff of the slope table equals PSIS-LOO on a log-likelihood written with scipy's NB."""
    from mirna_sim import simulate_problem

    from bayesmir.table_rows import with_pointwise_elpd

    problem = simulate_problem(8, 4, seed=5, name="m")
    full, reduced = draws_with_data(problem, 2, seed=1), draws_with_data(problem, 1, seed=2)
    rows = [diagnostics_row("m", "hand", converged=True)]
    row = FitResult({"m": with_pointwise_elpd(full.copy())}, rows, {"m": with_pointwise_elpd(reduced.copy())},
                    rows).slope_table().iloc[0]
    difference = scipy_elpd(full, problem) - scipy_elpd(reduced, problem)
    assert row["elpd_diff"] == pytest.approx(difference.sum(), rel=1e-9)
    assert row["elpd_diff_se"] == pytest.approx(math.sqrt(difference.size * difference.var()), rel=1e-9)
    assert row["log_bayes_factor"] == pytest.approx(-10.0, abs=1e-12)


def test_tables_and_report_helpers_do_not_import_pymc(tmp_path):
    """The tables (PSIS-LOO included) and the run folder need no PyMC (it costs seconds to import)."""
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'tests'); from test_results import *; from mirna_sim import simulate_problem\n"
        "p = simulate_problem(8, 4, seed=5, name='m'); rows = [diagnostics_row('m', 'hand', converged=True)]\n"
        "from bayesmir.table_rows import with_pointwise_elpd as loo\n"
        "fit = FitResult({'m': loo(draws_with_data(p, 2, 1))}, rows, {'m': loo(draws_with_data(p, 1, 2))}, rows)\n"
        f"fit.save({str(tmp_path / 'run')!r}); t = load_fit({str(tmp_path / 'run')!r}).tables()\n"
        "assert np.isfinite(t['slope']['elpd_diff']).all()\n"
        "print('pymc' in sys.modules)"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    output = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"


def test_slope_table_has_elpd_columns_only_for_fits_with_a_pointwise_elpd():
    """Without a stored ELPD (``fit(loo=False)``, the default) the slope table has no ELPD columns
    and computes none from the draws; with it (driver.fit_safely's with_pointwise_elpd) it has them,
    and every other column is the same."""
    from mirna_sim import simulate_problem

    from bayesmir.table_rows import ELPD_COLUMNS, ELPD_GROUP, with_pointwise_elpd

    problem = simulate_problem(8, 4, seed=5, name="m")
    rows = [diagnostics_row("m", "hand", converged=True)]
    plain = FitResult({"m": draws_with_data(problem, 2, 1)}, rows, {"m": draws_with_data(problem, 1, 2)}, rows)
    full, reduced = (with_pointwise_elpd(draws_with_data(problem, q, seed)) for q, seed in ((2, 1), (1, 2)))
    assert ELPD_GROUP in full.groups() and full[ELPD_GROUP]["elpd_i"].dims == ("sample", "isomir")
    stored = FitResult({"m": full}, rows, {"m": reduced}, rows).slope_table()
    assert not set(ELPD_COLUMNS) & set(plain.slope_table().columns)
    assert np.isfinite(stored[list(ELPD_COLUMNS)]).all().all()
    pd.testing.assert_frame_equal(stored.drop(columns=list(ELPD_COLUMNS)), plain.slope_table(), check_exact=True)
