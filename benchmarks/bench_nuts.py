"""NUTS on the monocyte-scale simulation (../shared/anchors): pass count, time, accuracy, laplace's distance.

Fits the full model of every miRNA (or ``--mirnas``) with NUTS (``bayesmir.fit``, seed 1, total-count
normalisation, as ``bench_fit.py --configs nuts``), timed with compilation, then with laplace, and
records per miRNA: the slope parameterisation NUTS chose, the convergence rule's outcome (R-hat < 1.01,
bulk and tail ESS >= 400, no divergent transition) and message, seconds and leapfrog steps (which do not
depend on machine load), the logFC's NUTS and laplace mean and SD, laplace's distance from NUTS (mean
difference in NUTS posterior SDs, SD ratio laplace / NUTS) and coverage of the truth. The summary has the
pass count, time against glmer.nb's 853 s (full + reduced, recorded), MSE and coverage against the truth
(``bench_fit.score``) and the load average before and after.

usage:
    nice python benchmarks/bench_nuts.py                                  # all 120 miRNAs (~9 min, 2 cores)
    nice python benchmarks/bench_nuts.py --mirnas hsa-miR-9000,hsa-miR-9005 --name nuts_sim_subset
    nice python benchmarks/bench_nuts.py --options '{"slopes": "non-centred", "extend": 0}'
    nice python benchmarks/bench_nuts.py --reuse-nuts benchmarks/results/nuts_sim.csv   # laplace only
Results: benchmarks/results/<name>.md and <name>.csv (default name nuts_sim).

laplace is compared like for like: the same model and priors as NUTS (``shrinkage=False``); the default
(empirical-Bayes shrinkage across miRNAs, which NUTS does not do) is reported beside it (``laplace_eb``).
``--reuse-nuts`` takes the NUTS columns of an earlier run's CSV and refits laplace only (writes
``<name>_laplace.md/.csv``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_fit import GLMER_SECONDS, RESULTS, SIM, environment, markdown_table, score

COEF = "group[T.case]"


def fit(method: str, mirnas, **options):
    """``bayesmir.fit`` of the full model on the simulation, and its seconds."""
    import bayesmir

    data = bayesmir.read_counts(SIM / "counts_long.csv", samples=SIM / "samples.csv")
    start = time.perf_counter()
    result = bayesmir.fit(data, formula="~ group", reference={"group": "ctrl"}, method=method,
                          normalisation="total", reduced=False, progress=False, seed=1, mirnas=mirnas, **options)
    return result, time.perf_counter() - start


def per_mirna(nuts, laplace, options: dict) -> pd.DataFrame:
    """One row per miRNA: truth, NUTS diagnostics, NUTS and laplace logFC, their distance."""
    from bayesmir.inference.nuts import NutsInference

    truth = pd.read_csv(SIM / "truth_mirna.csv").set_index("miRNA")
    inference = NutsInference(**options)
    tables = {name: result.mirna_table().query("coef == @COEF").set_index("miRNA")
              for name, result in (("nuts", nuts), ("laplace", laplace))}
    diagnostics = nuts.diagnostics.set_index("miRNA")
    rows = []
    for mirna in nuts.mirnas:
        idata = nuts.posterior(mirna)
        problem_slopes = "centred" if inference.slope_centred(_problem(idata, mirna)) else "non-centred"
        row = {"miRNA": mirna, "n_isomirs": int(tables["nuts"].loc[mirna, "n_isomirs"]),
               "true_logFC": truth.loc[mirna, "logFC"], "true_sd_slope": truth.loc[mirna, "sd_slope"],
               "true_theta": truth.loc[mirna, "theta"], "slopes": problem_slopes,
               **{k: diagnostics.loc[mirna, k] for k in ("converged", "message", "seconds", "rhat", "ess_bulk",
                                                          "ess_tail", "divergences")},
               "chains": idata.posterior.sizes["chain"],
               "leapfrog_steps": int(idata.sample_stats["n_steps"].sum()) if "n_steps" in idata.sample_stats else None}
        for name, table in tables.items():
            row[f"{name}_mean"], row[f"{name}_sd"] = table.loc[mirna, "estimate"], table.loc[mirna, "sd"]
            row[f"{name}_covered"] = bool(table.loc[mirna, "ci_low"] <= row["true_logFC"] <= table.loc[mirna, "ci_high"])
        row["laplace_minus_nuts_in_sd"] = (row["laplace_mean"] - row["nuts_mean"]) / row["nuts_sd"]
        row["sd_ratio_laplace_nuts"] = row["laplace_sd"] / row["nuts_sd"]
        rows.append(row)
    return pd.DataFrame(rows)


def with_laplace(frame: pd.DataFrame, laplace, prefix: str) -> pd.DataFrame:
    """``frame`` (NUTS columns per miRNA) with a laplace run's logFC mean, SD, coverage and distance from NUTS."""
    table = laplace.mirna_table().query("coef == @COEF").set_index("miRNA").loc[frame["miRNA"]]
    frame = frame.copy()
    frame[f"{prefix}_mean"], frame[f"{prefix}_sd"] = table["estimate"].to_numpy(), table["sd"].to_numpy()
    frame[f"{prefix}_covered"] = ((table["ci_low"].to_numpy() <= frame["true_logFC"])
                                  & (frame["true_logFC"] <= table["ci_high"].to_numpy()))
    frame[f"{prefix}_minus_nuts_in_sd"] = (frame[f"{prefix}_mean"] - frame["nuts_mean"]) / frame["nuts_sd"]
    frame[f"{prefix}_sd_ratio"] = frame[f"{prefix}_sd"] / frame["nuts_sd"]
    return frame


def distance_summary(frame: pd.DataFrame, prefix: str) -> dict:
    """Accuracy of a laplace run and its distance from NUTS, over every miRNA and over those NUTS passed."""
    out = {}
    for subset, rows in (("all", frame), ("nuts_passed", frame[frame["converged"].astype(bool)])):
        distance = rows[f"{prefix}_minus_nuts_in_sd"]
        out |= {f"{prefix}_{subset}_n": len(rows),
                f"{prefix}_{subset}_mse": float(np.mean((rows[f"{prefix}_mean"] - rows["true_logFC"]) ** 2)),
                f"{prefix}_{subset}_coverage": float(rows[f"{prefix}_covered"].mean()),
                f"{prefix}_{subset}_minus_nuts_in_sd_rms": float(np.sqrt(np.mean(distance**2))),
                f"{prefix}_{subset}_minus_nuts_in_sd_max_abs": float(distance.abs().max()),
                f"{prefix}_{subset}_sd_ratio_median": float(rows[f"{prefix}_sd_ratio"].median()),
                f"{prefix}_{subset}_sd_ratio_range": (f"{rows[f'{prefix}_sd_ratio'].min():.3f}.."
                                                      f"{rows[f'{prefix}_sd_ratio'].max():.3f}")}
    return out


def laplace_only(nuts_frame: pd.DataFrame, name: str) -> None:
    """laplace like for like (``shrinkage=False``) and with its defaults against an earlier run's NUTS columns."""
    keep = [c for c in nuts_frame.columns if not c.startswith("laplace") and c != "sd_ratio_laplace_nuts"]
    frame, totals = nuts_frame[keep], {"nuts_passed": int(nuts_frame["converged"].sum())}
    for prefix, options in (("laplace", {"shrinkage": False}), ("laplace_eb", {})):
        result, seconds = fit("laplace", list(frame["miRNA"]), **options)
        frame = with_laplace(frame, result, prefix)
        totals |= {f"{prefix}_seconds": seconds, **distance_summary(frame, prefix)}
    env = environment()
    frame.to_csv(RESULTS / f"{name}_laplace.csv", index=False)
    lines = [f"# laplace against NUTS on the shared simulation: {env['date']}", "",
             (f"`{env['command']}` ({env['cores']} cores, versions {env['versions']}). NUTS columns from the CSV "
             "given (seed 1, total-count normalisation); laplace refitted with the same settings, "
             "`laplace` = the same model and priors as NUTS (`shrinkage=False`), `laplace_eb` = the defaults "
             "(empirical-Bayes shrinkage across miRNAs). Distance: (laplace mean - NUTS mean) / NUTS SD; "
             "SD ratio: laplace SD / NUTS SD."), "",
             markdown_table(pd.DataFrame([totals]).T.reset_index().set_axis(["quantity", "value"], axis=1)), "",
             f"Per miRNA: `{name}_laplace.csv`."]
    (RESULTS / f"{name}_laplace.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _problem(idata, mirna):
    from bayesmir.problem import problem_from_idata

    return problem_from_idata(idata, mirna)


def summary(frame: pd.DataFrame, seconds: float, laplace_seconds: float, scores: dict) -> dict:
    """Pass count, time, accuracy and laplace's distance over the miRNAs of ``frame``."""
    distance = frame["laplace_minus_nuts_in_sd"]
    return {
        "n_mirnas": len(frame), "passed": int(frame["converged"].sum()),
        "passed_share": float(frame["converged"].mean()), "seconds": seconds,
        "glmer_nb_seconds_same_mirnas": GLMER_SECONDS / 120 * len(frame),
        "extended": int(frame["chains"].gt(frame["chains"].min()).sum()),
        "centred_slopes": int((frame["slopes"] == "centred").sum()),
        "leapfrog_steps_million": frame["leapfrog_steps"].sum() / 1e6,
        "mse": scores["mse"], "coverage": scores["coverage"],
        "coverage_with_slope": scores["coverage_with_slope"], "coverage_without_slope": scores["coverage_without_slope"],
        "laplace_seconds": laplace_seconds, "laplace_mse": float(np.mean((frame["laplace_mean"] - frame["true_logFC"]) ** 2)),
        "laplace_coverage": float(frame["laplace_covered"].mean()),
        "laplace_minus_nuts_in_sd_rms": float(np.sqrt(np.mean(distance**2))),
        "laplace_minus_nuts_in_sd_max_abs": float(distance.abs().max()),
        "sd_ratio_median": float(frame["sd_ratio_laplace_nuts"].median()),
        "sd_ratio_min": float(frame["sd_ratio_laplace_nuts"].min()),
        "sd_ratio_max": float(frame["sd_ratio_laplace_nuts"].max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirnas", help="comma-separated miRNAs (default: all)")
    parser.add_argument("--options", default="{}", help="JSON dict of NUTS options")
    parser.add_argument("--name", default="nuts_sim", help="results file name (without extension)")
    parser.add_argument("--reuse-nuts", type=Path, help="an earlier run's CSV: refit laplace only")
    args = parser.parse_args()
    options = json.loads(args.options)
    mirnas = args.mirnas.split(",") if args.mirnas else None
    if args.reuse_nuts:
        laplace_only(pd.read_csv(args.reuse_nuts), args.name)
        return
    load_before = os.getloadavg()
    nuts, seconds = fit("nuts", mirnas, **options)
    load_after = os.getloadavg()
    laplace, laplace_seconds = fit("laplace", mirnas, shrinkage=False)
    frame = per_mirna(nuts, laplace, options)
    frame = with_laplace(frame, fit("laplace", mirnas)[0], "laplace_eb")
    totals = summary(frame, seconds, laplace_seconds, score(nuts))
    env = {**environment(), "load_average_before": load_before, "load_average_after_nuts": load_after,
           "nuts_options": options}
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / f"{args.name}.csv", index=False)
    failed = frame.loc[~frame["converged"], ["miRNA", "n_isomirs", "true_sd_slope", "slopes", "message"]]
    lines = [f"# bench_nuts: {env['date']}", "",
             (f"`{env['command']}` on {env['cpu']} ({env['cores']} cores, shared), versions {env['versions']}; "
             f"load average (1, 5, 15 min) {np.round(load_before, 2).tolist()} before, "
             f"{np.round(load_after, 2).tolist()} after NUTS; NUTS options {options}"), "",
             markdown_table(pd.DataFrame([totals]).T.reset_index().set_axis(["quantity", "value"], axis=1)), "",
             "Fits that miss the rule:", "", markdown_table(failed) if len(failed) else "none", "",
             f"Per miRNA: `{args.name}.csv`."]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
