"""Benchmark of the Bayesian fit on the monocyte-scale simulation with known truth (../shared/anchors).

Each configuration runs in its own subprocess (so peak memory is its own) and is scored
against the truth: MSE of the log fold change, coverage of its 95% interval (all miRNAs,
with and without isomiR slopes), TPR/TNR of calls at q < 0.05 and lfsr < 0.05, AUC, and
slope detection (log Bayes factor > log 3). Times are compared with glmer.nb's recorded
853 s (full + reduced, ../shared/anchors/README.md) unless R is run live.

usage:
    python benchmarks/bench_fit.py                       # laplace (total + median_ratio), nuts on a subset
    python benchmarks/bench_fit.py --configs laplace     # one configuration
    python benchmarks/bench_fit.py --configs nuts        # NUTS on all 120 miRNAs, full model (its default)
Results: benchmarks/results/fit_sim.json and fit_sim.md, per-miRNA estimates in fit_sim_<config>.csv.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

ROOT = Path(__file__).resolve().parents[1]
#: The shared simulation: ../shared beside the checkout (a worktree of /work/wt/NAME looks two levels up).
SIM = next((base / "shared" / "anchors" / "sim_monocyte_scale" for base in ROOT.parents
            if (base / "shared" / "anchors").is_dir()), ROOT.parent / "shared" / "anchors" / "sim_monocyte_scale")
RESULTS = ROOT / "benchmarks" / "results"
GLMER_SECONDS = 853.0  # full 593 s + reduced 260 s, anchors/README.md (lme4_run.log)
CONFIGS = {
    "laplace": {"method": "laplace", "normalisation": "total"},
    "laplace_median_ratio": {"method": "laplace", "normalisation": "median_ratio"},
    "laplace_2jobs": {"method": "laplace", "normalisation": "total", "n_jobs": 2},
    "nuts_subset": {"method": "nuts", "normalisation": "total", "mirnas": 12},
    "nuts": {"method": "nuts", "normalisation": "total", "reduced": False},
    "laplace_subset": {"method": "laplace", "normalisation": "total", "mirnas": 12},
}


def run_config(name: str) -> dict:
    """Fit one configuration in this process and score it."""
    import bayesmir

    config = CONFIGS[name]
    data = bayesmir.read_counts(SIM / "counts_long.csv", samples=SIM / "samples.csv")
    mirnas = data.mirnas[: config["mirnas"]] if "mirnas" in config else None
    start = time.perf_counter()
    fit = bayesmir.fit(data, formula="~ group", reference={"group": "ctrl"}, method=config["method"],
                       normalisation=config["normalisation"], reduced=config.get("reduced", True),
                       progress=False, seed=1,
                       mirnas=mirnas, n_jobs=config.get("n_jobs", 1))
    seconds = time.perf_counter() - start
    per_mirna = fit.diagnostics["seconds"].to_numpy()
    if fit.diagnostics_reduced is not None:
        per_mirna = per_mirna + fit.diagnostics_reduced["seconds"].to_numpy()
    fit_seconds = float(per_mirna.sum())
    scores = score(fit)
    estimates(fit).to_csv(RESULTS / f"fit_sim_{name}.csv", index=False)
    return {
        "config": name, **config, "n_mirnas": len(fit.mirnas), "seconds_total": seconds,
        "seconds_fitting": fit_seconds, "seconds_compile_and_overhead": seconds - fit_seconds,
        "seconds_per_mirna_median": float(np.median(per_mirna)),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "converged": int(fit.diagnostics["converged"].sum()),
        **scores,
    }


def score(fit) -> dict:
    """Accuracy against truth_mirna.csv (logFC = case vs ctrl, sd_slope)."""
    truth = pd.read_csv(SIM / "truth_mirna.csv").set_index("miRNA")
    table = fit.mirna_table().set_index("miRNA")
    table = table[table["coef"] == "group[T.case]"].reindex(fit.mirnas)
    truth = truth.loc[table.index]
    covered = (table["ci_low"] <= truth["logFC"]) & (truth["logFC"] <= table["ci_high"])
    de, slope = truth["logFC"] != 0, truth["sd_slope"] > 0
    log_bf = fit.slope_table().set_index("miRNA")["log_bayes_factor"].reindex(table.index)
    out = {
        "mse": float(np.mean((table["estimate"] - truth["logFC"]) ** 2)),
        "bias_null": float(np.mean(table["estimate"][~de] - truth["logFC"][~de])) if (~de).any() else None,
        "coverage": float(covered.mean()),
        "coverage_with_slope": float(covered[slope].mean()) if slope.any() else None,
        "coverage_without_slope": float(covered[~slope].mean()) if (~slope).any() else None,
        "slope_detected": int(((log_bf > np.log(3)) & slope).sum()),
        "slope_false": int(((log_bf > np.log(3)) & ~slope).sum()),
        "n_true_slopes": int(slope.sum()),
    }
    for label, call in (("q", table["qvalue"] < 0.05), ("lfsr", table["lfsr"] < 0.05)):
        out[f"TPR_{label}"] = float(call[de].mean()) if de.any() else None
        out[f"TNR_{label}"] = float((~call[~de]).mean()) if (~de).any() else None
    if de.any() and (~de).any():
        ranks = rankdata(-table["lfsr"].to_numpy())
        n1, n0 = int(de.sum()), int((~de).sum())
        out["AUC"] = float((ranks[de.to_numpy()].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    return out


def estimates(fit) -> pd.DataFrame:
    """Per miRNA: true and estimated logFC (mean, sd, 95% interval), isomiRs, convergence."""
    truth = pd.read_csv(SIM / "truth_mirna.csv").set_index("miRNA")
    table = fit.mirna_table()
    table = table[table["coef"] == "group[T.case]"].set_index("miRNA").reindex(fit.mirnas)
    columns = ["n_isomirs", "estimate", "sd", "ci_low", "ci_high", "converged"]
    return table[columns].join(truth[["logFC", "sd_slope"]].add_prefix("true_")).reset_index()


def environment() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = {p: metadata.version(p) for p in ("bayesmir", "jax", "pymc", "nutpie", "arviz", "numpy")}
    import os

    return {"command": " ".join(sys.argv), "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "versions": versions,
            "load_average": os.getloadavg()}


def write(rows: list[dict]) -> None:
    """Write fit_sim.json/.md; rows of configurations not re-run this time are kept from the last file."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    previous = RESULTS / "fit_sim.json"
    if previous.is_file():
        done = {row["config"] for row in rows}
        kept = [row for row in json.loads(previous.read_text())["results"] if row["config"] not in done]
        rows = kept + rows
    reference = pd.read_csv(SIM / "lme4_metrics_vs_truth.csv").iloc[0].to_dict()
    document = {"environment": environment(), "glmer_nb_recorded": {**reference, "seconds": GLMER_SECONDS},
                "results": rows}
    (RESULTS / "fit_sim.json").write_text(json.dumps(document, indent=2, default=float))
    frame = pd.DataFrame(rows)
    frame["speedup_vs_glmer_nb"] = GLMER_SECONDS / 120 * frame["n_mirnas"] / frame["seconds_total"]
    frame["speedup_fitting_only"] = GLMER_SECONDS / 120 * frame["n_mirnas"] / frame["seconds_fitting"]
    columns = ["config", "n_mirnas", "seconds_total", "seconds_fitting", "speedup_vs_glmer_nb",
               "speedup_fitting_only", "peak_rss_gb", "converged", "mse", "bias_null", "coverage",
               "coverage_with_slope", "coverage_without_slope", "TPR_q", "TNR_q", "TPR_lfsr", "TNR_lfsr", "AUC",
               "slope_detected",
               "slope_false"]
    lines = [f"# bench_fit: {document['environment']['date']}", "",
             (f"`{document['environment']['command']}` on {document['environment']['cpu']} "
             f"({document['environment']['cores']} cores), versions {document['environment']['versions']}"), "",
             markdown_table(frame.reindex(columns=columns)), "",
             (f"glmer.nb (recorded, all 120 miRNAs): MSE {reference['mse']:.4f}, coverage {reference['coverage']:.3f}, "
             f"TPR {reference['TPR']:.3f}, TNR {reference['TNR']:.3f}, {GLMER_SECONDS:.0f} s.")]
    (RESULTS / "fit_sim.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table (no extra dependency)."""
    def cell(value):
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    rows = [list(frame.columns), ["---"] * frame.shape[1]] + [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs",
                        default="laplace,laplace_median_ratio,laplace_2jobs,laplace_subset,nuts_subset")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_config(args.single)))
        return
    rows = []
    for name in args.configs.split(","):
        output = subprocess.run([sys.executable, __file__, "--single", name], capture_output=True, text=True,
                                check=True)
        rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
        print(name, rows[-1], flush=True)
    write(rows)


if __name__ == "__main__":
    main()
