"""Integration error of the nested Laplace design, and seed stability of the reported numbers.

    PYTHONPATH=$PWD python benchmarks/bench_integration.py scramble example 32,64,128 5
    PYTHONPATH=$PWD python benchmarks/bench_integration.py scramble sim 32,128 4
    PYTHONPATH=$PWD python benchmarks/bench_integration.py seeds 0,1,2,3,4,5,6,7,8,9
    PYTHONPATH=$PWD python benchmarks/bench_integration.py seeds 0,1 sim

``scramble``: per miRNA of the bundled example (or ``bayesmir.simulate(16, 10, seed=5)``), full
and reduced fits with independent design scrambles (``design_seed``) for each ``n_hyper``; prints
the SD between scrambles of log BF, lfsr and the 95% interval ends (max and median over miRNAs)
beside the mean reported SE. ``seeds``: ``bayesmir.fit`` of the example for each seed; prints
the calls per seed and the largest range over seeds of qvalue, log BF, lfsr, estimate, sd and
interval ends (all 0 with the fixed design).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bayesmir
from bayesmir import calls
from bayesmir.design import build_design
from bayesmir.inference.laplace import LaplaceInference
from bayesmir.mixture import GaussianMixture, summarise_mixture
from bayesmir.problem import mirna_problems, reduced_problem


def scramble_spread(which: str, sizes: list[int], repeats: int) -> None:
    data = bayesmir.load_example().filter() if which == "example" else bayesmir.simulate(16, 10, seed=5).to_data()
    design = build_design(data.samples, "~ group", None, None, True)
    problems = mirna_problems(data, design, "total", None)
    rows = []
    for n in sizes:
        for r in range(repeats):
            laplace = LaplaceInference(n_hyper=n, design_seed=1000 + 17 * r, draws=10)
            for problem in problems:
                full, _ = laplace.fit_one(problem, 0)
                reduced, _ = laplace.fit_one(reduced_problem(problem), 0)
                mixture = full.mixture.sel(coef=design.coef)
                summary = summarise_mixture(GaussianMixture.of(mixture["weight"].values, mixture["beta_mean"].values,
                                                               mixture["beta_sd"].values), 0.95, np.log(1.5))
                attrs = full.posterior.attrs, reduced.posterior.attrs
                rows.append({"n": n, "mirna": problem.mirna, **summary,
                             "log_bf": attrs[0]["log_marginal_likelihood"] - attrs[1]["log_marginal_likelihood"],
                             "log_bf_se": np.hypot(attrs[0]["log_marginal_likelihood_se"],
                                                   attrs[1]["log_marginal_likelihood_se"])})
    table = pd.DataFrame(rows)
    for n, part in table.groupby("n"):
        spread = part.groupby("mirna")[["log_bf", "lfsr", "ci_low", "ci_high", "estimate", "sd"]].std()
        se = part.groupby("mirna")[["log_bf_se", "lfsr_se", "ci_low_se", "ci_high_se"]].mean()
        print(f"n_hyper={n}: SD between {repeats} scrambles, max (median) over miRNAs")
        print("   ", {c: f"{spread[c].max():.3f} ({spread[c].median():.3f})" for c in spread})
        print("    reported SE:", {c: f"{se[c].max():.3f} ({se[c].median():.3f})" for c in se})


def stability_data(which: str):
    """The bundled example (filtered) or the shared 120-miRNA simulation (tests/data copy)."""
    if which == "example":
        return bayesmir.load_example().filter()
    folder = Path(__file__).resolve().parents[1] / "tests" / "data" / "sim_monocyte_scale"
    return bayesmir.read_counts(folder / "counts_long.csv.gz", samples=folder / "samples.csv")


def seed_stability(seeds: list[int], which: str = "example") -> None:
    data = stability_data(which)
    mirna, slope = [], []
    for seed in seeds:
        start = time.perf_counter()
        result = bayesmir.fit(data, seed=seed, progress=False)
        print(f"seed {seed}: {time.perf_counter() - start:.1f} s")
        mirna.append(result.mirna_table().assign(seed=seed))
        slope.append(result.slope_table().assign(seed=seed))
    mirna, slope = pd.concat(mirna), pd.concat(slope)
    mirna["de"] = calls.de_calls(mirna["qvalue"], mirna["converged"])
    slope["usage"] = calls.usage_calls(slope["log_bayes_factor"], slope["converged"])
    print("DE per seed:", mirna.groupby("seed")["de"].sum().tolist(),
          "usage per seed:", slope.groupby("seed")["usage"].sum().tolist())
    width = lambda x: x.max() - x.min()
    by = mirna.groupby("miRNA")
    ranges = {c: round(float(by[c].agg(width).max()), 4) for c in ("qvalue", "lfsr", "estimate", "sd", "ci_low",
                                                                     "ci_high")}
    ranges["log_bayes_factor"] = round(float(slope.groupby("miRNA")["log_bayes_factor"].agg(width).max()), 4)
    print(ranges)
    out = Path(__file__).resolve().parent / "results" / f"seed_stability_{which}.md"
    out.write_text(
        f"# Seed stability of the reported numbers ({which})\n\n"
        f"Command: `python benchmarks/bench_integration.py {' '.join(sys.argv[1:])}`; "
        f"{platform.platform()}, {os.cpu_count()} cores, bayesmir {bayesmir.__version__}, "
        f"python {platform.python_version()}.\n\n"
        f"- miRNAs: {mirna['miRNA'].nunique()}; seeds: {seeds}\n"
        f"- DE calls per seed: {mirna.groupby('seed')['de'].sum().tolist()}\n"
        f"- isomiR-usage calls per seed: {slope.groupby('seed')['usage'].sum().tolist()}\n"
        f"- largest range over seeds, any miRNA: {ranges}\n")


if __name__ == "__main__":
    if sys.argv[1] == "scramble":
        scramble_spread(sys.argv[2], [int(x) for x in sys.argv[3].split(",")], int(sys.argv[4]))
    else:
        seed_stability([int(x) for x in sys.argv[2].split(",")], sys.argv[3] if len(sys.argv) > 3 else "example")
