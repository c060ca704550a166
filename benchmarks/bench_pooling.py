"""Does cross-miRNA pooling (empirical-Bayes priors) help? Small-sample simulations with known truth.

Data: ``bayesmir.simulation.simulate`` (3 seeds x 60 miRNAs x 6 samples, 3 vs 3, where per-miRNA
dispersion and sample SDs are poorly identified) and the monocyte-scale simulation of ../shared
(120 miRNAs x 39 samples). Each is fitted with ``laplace`` with and without ``pooling=True``
and scored against the truth: MSE of the log fold change, 95% interval coverage and mean width,
TPR/TNR at q < 0.05, seconds.

usage: python benchmarks/bench_pooling.py      -> benchmarks/results/pooling.json and pooling.md
"""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

import bayesmir
from bayesmir.simulation import simulate

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT.parent / "shared" / "anchors" / "sim_monocyte_scale"
RESULTS = ROOT / "benchmarks" / "results"


def score(fit, truth: pd.Series) -> dict:
    table = fit.mirna_table().set_index("miRNA")
    table = table[table["coef"] != "Intercept"]
    truth = truth.loc[table.index]
    de = truth != 0
    call = table["qvalue"] < 0.05
    return {
        "mse": float(np.mean((table["mean"] - truth) ** 2)),
        "coverage": float(np.mean((table["eti_low"] <= truth) & (truth <= table["eti_high"]))),
        "mean_width": float(np.mean(table["eti_high"] - table["eti_low"])),
        "TPR_q": float(call[de].mean()) if de.any() else None,
        "TNR_q": float((~call[~de]).mean()) if (~de).any() else None,
        "converged": int(fit.diagnostics["converged"].sum()),
        "n_mirnas": len(table),
    }


def data_sets():
    for seed in (1, 2, 3):
        sim = simulate(n_mirnas=60, n_samples=6, seed=seed)
        yield f"simulate(60 miRNAs, 6 samples, seed={seed})", sim.to_data(), sim.reference, \
            sim.truth_mirna.set_index("miRNA")["logfc"]
    if SIM.is_dir():
        data = bayesmir.read_counts(SIM / "counts_long.csv", samples=SIM / "samples.csv")
        truth = pd.read_csv(SIM / "truth_mirna.csv").set_index("miRNA")["logFC"]
        yield "sim_monocyte_scale (120 miRNAs, 39 samples)", data, {"group": "ctrl"}, truth


def main() -> None:
    rows = []
    for name, data, reference, truth in data_sets():
        for pooling in (False, True):
            start = time.perf_counter()
            fit = bayesmir.fit(data, reference=reference, pooling=pooling, reduced=False, progress=False, seed=1)
            rows.append({"data": name, "pooling": pooling, "seconds": time.perf_counter() - start,
                         **score(fit, truth)})
            print(rows[-1], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    versions = {p: metadata.version(p) for p in ("bayesmir", "jax", "numpy")}
    env = {"command": " ".join(sys.argv), "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "python": platform.python_version(), "versions": versions}
    (RESULTS / "pooling.json").write_text(json.dumps({"environment": env, "results": rows}, indent=2))
    frame = pd.DataFrame(rows)
    lines = [f"# bench_pooling: {env['date']}", "", f"`{env['command']}`, versions {versions}", "",
             "| data | pooling | seconds | MSE | coverage | mean width | TPR q<0.05 | TNR q<0.05 | converged |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in frame.itertuples(index=False):
        lines.append(f"| {row.data} | {row.pooling} | {row.seconds:.1f} | {row.mse:.4f} | {row.coverage:.3f} | "
                     f"{row.mean_width:.3f} | {row.TPR_q:.3f} | {row.TNR_q:.3f} | {row.converged}/{row.n_mirnas} |")
    (RESULTS / "pooling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
