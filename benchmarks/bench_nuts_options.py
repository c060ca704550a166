"""NUTS options on 16 miRNAs of the monocyte-scale simulation, 4 per isomiR-count bucket.

For each set of NUTS options (default: the defaults, 1,000 tuning steps, target_accept 0.95),
fits the full model of the first 4 miRNAs of each bucket (2-4, 5-8, 9-16, 17-32 isomiRs) with
seed 1 and records per miRNA the seconds, leapfrog steps per draw, logFC mean and SD, R-hat,
bulk/tail ESS, divergences and the convergence message. Compilation is done before timing.

usage:
    python benchmarks/bench_nuts_options.py
    python benchmarks/bench_nuts_options.py --options '{"tune": 300}'
Results: benchmarks/results/nuts_options.json and nuts_options.md.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd
from bench_fit import RESULTS, SIM, environment, markdown_table

OPTIONS = [{}, {"tune": 1000}, {"target_accept": 0.95}]


def picked_problems(per_bucket: int = 4):
    """The first ``per_bucket`` miRNAs of each isomiR-count bucket, as MirnaProblems."""
    import bayesmir
    from bayesmir.design import build_design
    from bayesmir.problem import bucket_size, mirna_problems

    data = bayesmir.read_counts(SIM / "counts_long.csv", samples=SIM / "samples.csv")
    problems = mirna_problems(data, build_design(data.samples, "~ group", reference={"group": "ctrl"}))
    buckets: dict[int, list] = {}
    for problem in problems:
        buckets.setdefault(bucket_size(problem.n_isomirs), []).append(problem)
    return [p for size in sorted(buckets) for p in buckets[size][:per_bucket]]


def run(options: dict, problems) -> list[dict]:
    """Fit each problem with NUTS and these options; one row per miRNA."""
    from bayesmir.inference.nuts import NutsInference

    inference = NutsInference(**options)
    inference.prepare(problems)
    rows = []
    for problem in problems:
        start = time.perf_counter()
        idata, diagnostics = inference.fit_one(problem, 1)
        beta = idata.posterior["beta"].sel(coef="group[T.case]")
        rows.append({
            "options": json.dumps(options), "miRNA": problem.mirna, "n_isomirs": problem.n_isomirs,
            "seconds": time.perf_counter() - start,
            "steps_per_draw": float(idata.sample_stats["n_steps"].mean()),
            "mean": float(beta.mean()), "sd": float(beta.std()),
            **{k: diagnostics[k] for k in ("converged", "rhat", "ess_bulk", "ess_tail", "divergences", "message")},
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--options", help="one JSON dict of NUTS options (default: the three of OPTIONS)")
    args = parser.parse_args()
    problems = picked_problems()
    rows = [row for options in ([json.loads(args.options)] if args.options else OPTIONS)
            for row in run(options, problems)]
    frame = pd.DataFrame(rows)
    summary = frame.groupby("options", sort=False).agg(
        seconds=("seconds", "sum"), converged=("converged", "sum"), divergences=("divergences", "sum"),
        steps_per_draw=("steps_per_draw", "mean")).reset_index()
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = environment()
    (RESULTS / "nuts_options.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=2, default=float))
    lines = [f"# bench_nuts_options: {env['date']}", "", f"`{env['command']}` on {env['cpu']} ({env['cores']} cores)",
             "", markdown_table(summary), "", markdown_table(frame.drop(columns="message")), ""]
    (RESULTS / "nuts_options.md").write_text("\n".join(lines))
    print("\n".join(lines[:6]))


if __name__ == "__main__":
    main()
