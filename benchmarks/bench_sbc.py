"""Simulation-based calibration (Talts et al. 2018) of the nested-Laplace path.

Each replicate draws every parameter of one miRNA from the prior (``bayesmir.priors.Priors``
defaults, but ``intercept_sd = 1`` so that counts stay in the range of real data: the check
holds for whatever prior the fit uses, as long as simulation and fit share it), simulates its
counts from the model (5 + 5 samples, ``--isomirs`` isomiRs, random slopes, offset
``log(1e6 / 1e4)``), fits it with ``laplace`` and records the rank of each true value among
``L = 99`` thinned posterior draws (ties broken at random with a fixed seed). Calibrated
inference gives uniform ranks on ``0..L``.

Output: ``benchmarks/results/sbc.png`` (rank histograms with the 99% band of a uniform, and
ECDF differences), ``sbc.csv`` (ranks), ``sbc.md`` (chi-square on 10 bins and KS p-values),
which ``bench_calibration.py`` appends to ``calibration.md``.

Run: ``PYTHONPATH=$PWD python benchmarks/bench_sbc.py --replicates 200``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bayesmir.inference import get_method
from bayesmir.priors import Priors
from bayesmir.problem import MirnaProblem

RESULTS = Path(__file__).parent / "results"
N_PER_GROUP = 5
THIN = 99  # posterior draws kept per fit: ranks on 0..THIN
PARAMETERS = ["beta", "sd_isomir", "sd_slope", "sd_sample", "theta"]


def prior_draw(rng: np.random.Generator, priors: Priors) -> dict:
    """One draw of every parameter from ``priors`` (the model of ``bayesmir.model``)."""
    eta = priors.lkj_eta
    return {
        "intercept": rng.normal(0, priors.intercept_sd),
        "beta": rng.normal(0, priors.beta_sd),
        "sd_isomir": abs(rng.normal(0, priors.sd_isomir_scale)),
        "sd_slope": abs(rng.normal(0, priors.sd_slope_scale)),
        "corr": 2 * rng.beta(eta, eta) - 1,  # LKJ(eta) in 2 dimensions
        "sd_sample": abs(rng.normal(0, priors.sd_sample_scale)),
        "theta": 1 / abs(rng.normal(0, priors.inv_sqrt_theta_scale)) ** 2,
    }


def simulated_problem(rng: np.random.Generator, truth: dict, n_isomirs: int) -> MirnaProblem:
    """Counts of one miRNA given ``truth``: NB (gamma-Poisson) around the model's mean."""
    x = np.repeat([0.0, 1.0], N_PER_GROUP)
    n = len(x)
    X = np.c_[np.ones(n), x]
    sd = np.array([truth["sd_isomir"], truth["sd_slope"]])
    corr = np.array([[1, truth["corr"]], [truth["corr"], 1]])
    b = rng.multivariate_normal(np.zeros(2), corr * np.outer(sd, sd), size=n_isomirs)
    offset = np.full(n, np.log(1e6 / 1e4))
    log_mu = (offset + truth["intercept"] + truth["beta"] * x + rng.normal(0, truth["sd_sample"], n))[:, None] \
        + (X @ b.T)
    mu = np.exp(np.minimum(log_mu, 40.0))
    theta = truth["theta"]
    counts = rng.poisson(np.minimum(rng.gamma(theta, mu / theta), 1e15)).astype(np.int64)
    return MirnaProblem(
        mirna="sbc", counts=counts, sequences=[f"iso{j}" for j in range(n_isomirs)],
        samples=[f"S{i}" for i in range(n)], offset=offset, X=X, Z=X, coef_names=["Intercept", "group"],
        re_names=["Intercept", "group"],
    )


def posterior_values(idata) -> dict[str, np.ndarray]:
    """Draws of each checked parameter (flattened over chains)."""
    post = idata.posterior
    return {
        "beta": post["beta"].sel(coef="group").values.ravel(),
        "sd_isomir": post["sd_isomir"].isel(re_term=0).values.ravel(),
        "sd_slope": post["sd_isomir"].isel(re_term=1).values.ravel(),
        "sd_sample": post["sd_sample"].values.ravel(),
        "theta": post["theta"].values.ravel(),
    }


def rank(true: float, draws: np.ndarray, rng: np.random.Generator) -> int:
    """Rank of ``true`` among ``THIN`` evenly thinned draws, ties broken at random."""
    kept = draws[np.linspace(0, len(draws) - 1, THIN).round().astype(int)]
    below, ties = int((kept < true).sum()), int((kept == true).sum())
    return below + int(rng.integers(0, ties + 1))


def run(replicates: int, n_isomirs: int, seed: int) -> pd.DataFrame:
    priors = Priors(intercept_sd=1.0)
    inference = get_method("laplace", "nb", priors)
    rng = np.random.default_rng(seed)
    rows = []
    for replicate in range(replicates):
        truth = prior_draw(rng, priors)
        problem = simulated_problem(rng, truth, n_isomirs)
        start = time.perf_counter()
        try:
            idata, diagnostics = inference.fit_timed(problem, seed + replicate)
        except Exception as error:  # noqa: BLE001 - a failed fit is a finding, recorded
            rows.append({"replicate": replicate, "converged": False, "message": str(error)})
            continue
        draws = posterior_values(idata)
        rows.append({"replicate": replicate, "converged": bool(diagnostics["converged"]),
                     "seconds": time.perf_counter() - start,
                     **{f"true_{name}": truth[name] for name in PARAMETERS},
                     **{f"rank_{name}": rank(truth[name], draws[name], rng) for name in PARAMETERS}})
    return pd.DataFrame(rows)


def uniformity(ranks: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Chi-square (``bins`` equal bins of 0..THIN) and KS p-values of each parameter's ranks."""
    rows = []
    for name in PARAMETERS:
        values = ranks[f"rank_{name}"].dropna().to_numpy()
        counts = np.histogram(values, bins=bins, range=(-0.5, THIN + 0.5))[0]
        chi2 = stats.chisquare(counts)
        u = (values + 0.5) / (THIN + 1)
        rows.append({"parameter": name, "n": len(values), "chi2": chi2.statistic, "chi2_p": chi2.pvalue,
                     "ks": stats.kstest(u, "uniform").statistic, "ks_p": stats.kstest(u, "uniform").pvalue})
    return pd.DataFrame(rows)


def plot(ranks: pd.DataFrame, path: Path, bins: int = 10) -> None:
    """Rank histograms (with the 99% band of a uniform) over ECDF differences, per parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(PARAMETERS), figsize=(3.2 * len(PARAMETERS), 5.5))
    for column, name in enumerate(PARAMETERS):
        values = ranks[f"rank_{name}"].dropna().to_numpy()
        n = len(values)
        low, high = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
        axes[0, column].axhspan(low, high, color="0.85")
        axes[0, column].hist(values, bins=bins, range=(-0.5, THIN + 0.5), color="C0", edgecolor="white")
        axes[0, column].set_title(name)
        u = np.sort((values + 0.5) / (THIN + 1))
        grid = np.linspace(0, 1, 201)
        ecdf = np.searchsorted(u, grid, side="right") / n
        band = 2.576 * np.sqrt(grid * (1 - grid) / n)  # pointwise 99%
        axes[1, column].fill_between(grid, -band, band, color="0.85")
        axes[1, column].plot(grid, ecdf - grid, color="C0")
        axes[1, column].set_xlabel("normalised rank")
    axes[0, 0].set_ylabel("count")
    axes[1, 0].set_ylabel("ECDF - uniform")
    fig.suptitle(f"SBC of laplace: {n} replicates, 5 + 5 samples, ranks among {THIN} draws")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(ranks: pd.DataFrame, table: pd.DataFrame, command: str) -> str:
    from bench_calibration import machine  # same folder: run as a script

    failed = int((~ranks["converged"].astype(bool)).sum())
    lines = [
        "## Simulation-based calibration (laplace)", "",
        (f"Command: `{command}`. {len(ranks)} prior draws of one miRNA (5 + 5 samples, random slopes), "
        f"{failed} fits not converged or failed (kept when they returned draws); ranks among {THIN} "
        "thinned draws; plot `benchmarks/results/sbc.png`. Uniform ranks (large p) = calibrated."), "",
        f"Machine: {machine()}", "",
        "| parameter | n | chi2 (9 df) | chi2 p | KS | KS p |", "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r.parameter} | {r.n} | {r.chi2:.1f} | {r.chi2_p:.3f} | {r.ks:.3f} | {r.ks_p:.3f} |"
              for r in table.itertuples()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--isomirs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ranks = run(args.replicates, args.isomirs, args.seed)
    ranks.to_csv(RESULTS / "sbc.csv", index=False)
    table = uniformity(ranks)
    plot(ranks, RESULTS / "sbc.png")
    command = f"python benchmarks/bench_sbc.py --replicates {args.replicates} --isomirs {args.isomirs} --seed {args.seed}"
    (RESULTS / "sbc.md").write_text(markdown(ranks, table, command))
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
