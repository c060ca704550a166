"""Offset error of each normalisation over many simulations (no model fits: seconds, not hours).

A null miRNA's log fold change estimate inherits the group contrast of ``log D_i - offset_i``
(``D_i`` the generating depth of ``bayesmir.simulate``), so that contrast, averaged over
``--seeds`` data sets of 200 miRNAs, is the systematic null bias each normalisation causes, and
its SD across data sets the noise it adds. Scenarios: ``paired`` (30% DE in balanced up/down
pairs) and ``up`` (25% DE, all up, the most abundant among them: composition stress).

Run: ``PYTHONPATH=$PWD python benchmarks/bench_normalisation.py --seeds 20``
(writes ``benchmarks/results/normalisation.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmir.design import build_design
from bayesmir.problem import NORMALISATIONS, library_offset
from bayesmir.simulation import simulate

RESULTS = Path(__file__).parent / "results"
SIZES = (6, 10, 20, 39)
SCENARIOS = {"paired": {"frac_de": 0.3}, "up": {"frac_de": 0.25, "de_direction": "up"}}


def offset_error(sim, normalisation: str) -> float:
    """Group contrast (case minus ctrl) of ``log D - offset``: the bias a null miRNA inherits."""
    data = sim.to_data()
    design = build_design(data.samples, "~ group", reference=sim.reference)
    offset = library_offset(data.library_size, data.mirna_counts(), normalisation, design)
    gap = np.log(sim.depth) - offset[sim.depth.index]
    case = (sim.samples["group"] == "case").to_numpy()
    return float(gap[case].mean() - gap[~case].mean())


def run(seeds: int, n_mirnas: int) -> pd.DataFrame:
    rows = []
    for scenario, options in SCENARIOS.items():
        for n_samples in SIZES:
            for seed in range(seeds):
                sim = simulate(n_mirnas=n_mirnas, n_samples=n_samples, frac_slope=0.0,
                               dispersion=(5.0, 20.0), seed=seed, **options)
                rows += [{"scenario": scenario, "n_samples": n_samples, "normalisation": name, "seed": seed,
                          "error": offset_error(sim, name)} for name in NORMALISATIONS]
    return pd.DataFrame(rows)


def summary(errors: pd.DataFrame) -> pd.DataFrame:
    grouped = errors.groupby(["scenario", "n_samples", "normalisation"], sort=False)["error"]
    table = grouped.agg(mean="mean", sd="std", n="size").reset_index()
    table["se_of_mean"] = table["sd"] / np.sqrt(table["n"])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n-mirnas", type=int, default=200)
    args = parser.parse_args()
    table = summary(run(args.seeds, args.n_mirnas))
    lines = ["# bench_normalisation", "",
             f"Command: `python benchmarks/bench_normalisation.py --seeds {args.seeds} --n-mirnas {args.n_mirnas}`",
             "", __doc__.split("\n\n")[1].replace("\n", " "), "",
             "| scenario | samples | normalisation | mean error (null bias) | SD over data sets | SE of mean |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r.scenario} | {r.n_samples} | {r.normalisation} | {r.mean:+.4f} | {r.sd:.4f} | {r.se_of_mean:.4f} |"
              for r in table.itertuples()]
    (RESULTS / "normalisation.md").write_text("\n".join(lines) + "\n")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
