"""Benchmark: maximum-likelihood fits (full + reduced, LRT) of all 120 sim miRNAs vs glmer.nb.

usage: python benchmarks/bench_frequentist.py [--shared ../shared] [--out benchmarks/results]
       [--single-thread]

Writes ``frequentist_sim.json`` and ``frequentist_sim.md``: machine, versions, compile
seconds (one fit per size bucket and model, timed apart), per-miRNA median seconds,
total seconds, the ratio to the recorded R seconds (``sec_full + sec_reduced`` of
``lme4_glmer_nb.csv``) and the shares agreeing with lme4. Timings on a shared machine
are noisy; process CPU seconds are recorded next to wall-clock seconds.
``--single-thread`` sets ``XLA_FLAGS`` for one-threaded XLA:CPU (the problems are too
small to gain from threads, and idle worker threads cost time on a busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
if "--single-thread" in sys.argv:  # must precede the first JAX import
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {SINGLE_THREAD}".strip()

from anchor_problems import reference, sim_problems

from bayesmir.frequentist import lrt
from bayesmir.frequentist.mle import fit_problem
from bayesmir.problem import bucket_size, reduced_problem


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def compile_all(problems: list) -> float:
    """Fit one miRNA per (size bucket, model) so later timings exclude JIT compilation."""
    start = time.perf_counter()
    seen = set()
    for problem in problems:
        bucket = bucket_size(problem.n_isomirs, base=4)
        if bucket not in seen:
            seen.add(bucket)
            fit_problem(problem)
            fit_problem(reduced_problem(problem))
    return time.perf_counter() - start


def agreement(table: pd.DataFrame, ref: pd.DataFrame) -> dict:
    """Shares meeting the test criteria, over lme4 fits that converged without warnings."""
    ours = table.set_index("miRNA").loc[ref.index]
    ok = ref["warnings_full"].isna()
    groups = {"regular": ok & ~ref["singular"].astype(bool), "singular": ok & ref["singular"].astype(bool)}
    out = {}
    for name, rows in groups.items():
        o, r = ours[rows], ref[rows]
        lrt_ok = (np.abs(o["lrt_stat"] - r["lrt_stat"]) <= 0.05 * r["lrt_stat"].abs()) | (
            (o["lrt_p_naive"] < 1e-3) & (r["lrt_p"] < 1e-3))
        out[name] = {
            "n": int(rows.sum()),
            "beta_within_0.02": float((np.abs(o["estimate"] - r["logFC"]) < 0.02).mean()),
            "se_within_10pct": float((np.abs(o["se"] / r["SE"] - 1) < 0.1).mean()),
            "se_within_2pct": float((np.abs(o["se"] / r["SE"] - 1) < 0.02).mean()),
            "loglik_within_0.1": float((np.abs(o["loglik"] - r["loglik_full"]) < 0.1).mean()),
            "lrt_stat_within_5pct_or_both_p_lt_1e-3": float(lrt_ok.mean()),
        }
    failed = ~ok
    out["lme4_with_warnings"] = {
        "n": int(failed.sum()),
        "loglik_ours_minus_lme4": ours.loc[failed, "loglik"].sub(ref.loc[failed, "loglik_full"]).round(3).to_dict(),
    }
    out["singular_flag_agreement"] = float((ours["singular"] == ref["singular"].astype(bool)).mean())
    out["median_abs_beta_diff"] = float(np.median(np.abs(ours["estimate"] - ref["logFC"])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--single-thread", action="store_true", help="one-threaded XLA:CPU")
    args = parser.parse_args()
    ref = reference(args.shared, "sim_monocyte_scale/lme4_glmer_nb.csv")
    all_problems = sim_problems(args.shared)
    problems = [all_problems[m] for m in ref.index]

    compile_seconds = compile_all(problems)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    table = lrt(problems)
    total, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    r_seconds = float((ref["sec_full"] + ref["sec_reduced"]).sum())
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform(),
                    "note": "2 cores shared with other processes: wall-clock timings are noisy",
                    "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")},
        "versions": {name: metadata.version(name) for name in ("jax", "jaxlib", "scipy", "numpy")}
        | {"python": platform.python_version()},
        "n_mirnas": len(problems),
        "compile_seconds": round(compile_seconds, 2),
        "fit_seconds_total_full_plus_reduced": round(total, 2),
        "fit_cpu_seconds_total": round(cpu, 2),
        "per_mirna_median_seconds": round(float(table["seconds"].median()), 4),
        "per_mirna_max_seconds": round(float(table["seconds"].max()), 4),
        "r_glmer_nb_seconds_full_plus_reduced": round(r_seconds, 1),
        "speedup_vs_r": round(r_seconds / total, 1),
        "speedup_vs_r_including_compile": round(r_seconds / (total + compile_seconds), 1),
        "converged": int(table["converged"].sum()),
        "agreement_with_lme4": agreement(table, ref),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "frequentist_sim_single_thread" if args.single_thread else "frequentist_sim"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(json.dumps(result, indent=2))


def markdown(result: dict) -> str:
    """A short human-readable summary of the JSON."""
    agree = result["agreement_with_lme4"]
    lines = [
        "# Maximum-likelihood fits vs glmer.nb (sim_monocyte_scale, 120 miRNAs, full + reduced)",
        "", f"Command: `{result['command']}`  ",
        (f"Machine: {result['machine']['cpu']}, {result['machine']['nproc']} cores "
        f"({result['machine']['note']}); XLA_FLAGS={result['machine']['XLA_FLAGS']!r}; "
         f"versions {result['versions']}"), "",
        "| figure | value |", "|---|---|",
        f"| one-off JIT compile | {result['compile_seconds']} s |",
        (f"| total fit time (full + reduced) | {result['fit_seconds_total_full_plus_reduced']} s "
        f"(CPU {result['fit_cpu_seconds_total']} s) |"),
        f"| median per miRNA (full + reduced) | {result['per_mirna_median_seconds']} s |",
        f"| glmer.nb recorded (full + reduced) | {result['r_glmer_nb_seconds_full_plus_reduced']} s |",
        (f"| speed-up vs glmer.nb | {result['speedup_vs_r']}x "
        f"({result['speedup_vs_r_including_compile']}x counting compile) |"),
        f"| converged | {result['converged']} / {result['n_mirnas']} |",
        f"| singular flag agrees with lme4 | {agree['singular_flag_agreement']:.3f} |",
        "", "Shares agreeing with lme4 (lme4 fits without warnings):", "",
        "| lme4 fit | n | beta ±0.02 | SE ±10% | SE ±2% | loglik ±0.1 | LRT ±5% or p<1e-3 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("regular", "singular"):
        a = agree[name]
        lines.append(f"| {name} | {a['n']} | {a['beta_within_0.02']:.3f} | {a['se_within_10pct']:.3f} | "
                     f"{a['se_within_2pct']:.3f} | {a['loglik_within_0.1']:.3f} | "
                     f"{a['lrt_stat_within_5pct_or_both_p_lt_1e-3']:.3f} |")
    lines += ["", (f"lme4 fits with warnings (not compared): {agree['lme4_with_warnings']['n']}; "
              f"our log-likelihood minus lme4's there: {agree['lme4_with_warnings']['loglik_ours_minus_lme4']}"), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
