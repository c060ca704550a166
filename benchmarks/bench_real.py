"""Speed on real data: bayesmir's fast path against glmer.nb and glmmTMB on the same miRNAs.

Data: ../shared/data/somel2010_brain with miRglmm's filters (120 miRNAs, 15,757 isomiRs, up to
1,052 per miRNA). Every tool fits the full model (random isomiR slopes) and the reduced one
(no slopes) of every miRNA:

- glmer.nb: ``../shared/anchors/fit_glmm.R`` (lme4, miRglmm's control settings), run live with
  ``--glmer run``; by default its recorded per-miRNA seconds are re-used
  (``anchors/somel2010_brain/lme4_glmer_nb.csv``, 1,435 s in all), as the 24-minute run is long
  on a shared machine;
- glmmTMB: ``benchmarks/r/fit_glmmtmb.R`` (nbinom2, the same formulas), run live unless
  ``--glmmtmb-csv`` names the output of an earlier run of it;
- bayesmir ``fit(method="laplace")`` with its defaults, each in a fresh process: *cold* (an empty
  compile cache, ``BAYESMIR_JAX_CACHE`` pointing at a new folder) then *warm* (the same folder,
  now filled). The time is that of ``bayesmir.fit`` (data already read); the process's wall
  time, with imports and reading, is reported beside it.

usage:
    python benchmarks/bench_real.py                          # glmer.nb from the anchor, the rest live
    python benchmarks/bench_real.py --glmmtmb-csv FILE       # re-use a glmmTMB run of fit_glmmtmb.R
    python benchmarks/bench_real.py --mirnas 10              # a quick check on the first 10 miRNAs
    python benchmarks/bench_real.py --jobs 2                 # bayesmir on 2 worker processes
Results: benchmarks/results/speed_real.md, speed_real.csv (per miRNA), speed_real.json
(speed_real_<N>jobs.* with --jobs N).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = next(folder / "shared" for folder in ROOT.parents if (folder / "shared" / "data").is_dir())
DATA = SHARED / "data" / "somel2010_brain"
ANCHOR = SHARED / "anchors" / "somel2010_brain" / "lme4_glmer_nb.csv"
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {("glmer.nb", "warm"): 50, ("glmmTMB", "warm"): 10, ("glmer.nb", "cold"): 20, ("glmmTMB", "cold"): 4}

BAYESMIR_CHILD = """
import json, sys, time
start = time.perf_counter()
import bayesmir
data = bayesmir.read_counts(sys.argv[1], samples=sys.argv[2]).filter()
mirnas = data.mirnas[:int(sys.argv[3])] if int(sys.argv[3]) else None
begin, begin_cpu = time.perf_counter(), time.process_time()
fit = bayesmir.fit(data, method="laplace", progress=False, mirnas=mirnas, n_jobs=int(sys.argv[4]))
end, end_cpu = time.perf_counter(), time.process_time()
table = fit.mirna_table()
print(json.dumps({"fit_seconds": end - begin, "fit_cpu_seconds": end_cpu - begin_cpu,
                  "process_seconds": end - start,
                  "n_mirnas": int(len(fit.diagnostics)), "mirnas": list(fit.diagnostics["miRNA"]),
                  "seconds_full": fit.diagnostics["seconds"].tolist(),
                  "seconds_reduced": fit.diagnostics_reduced["seconds"].tolist(),
                  "failed": int((~fit.diagnostics["converged"].astype(bool)).sum()),
                  "estimate": dict(zip(table["miRNA"], table["estimate"]))}))
"""


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run_bayesmir(cache: Path, n_mirnas: int, timeout: float, n_jobs: int = 1) -> dict:
    """One fit of the real set in a fresh process with the compile cache ``cache`` (stopped after
    ``timeout`` seconds: a fit has been seen to wait forever on an XLA result, speed_real.md)."""
    env = {**os.environ, "BAYESMIR_JAX_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    load_before = load_average()
    start = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-c", BAYESMIR_CHILD, str(DATA / "counts_long.csv"), str(DATA / "samples.csv"),
         str(n_mirnas), str(n_jobs)], env=env, capture_output=True, text=True, check=True, timeout=timeout)
    wall = time.perf_counter() - start
    result = json.loads(output.stdout.strip().splitlines()[-1])
    return {**result, "wall_seconds": wall, "load_before": load_before, "load_after": load_average()}


def run_r(script: Path, out_csv: Path, n_mirnas: int) -> dict:
    """An R script's fits (per-miRNA seconds in its CSV), niced, with the load around it."""
    load_before = load_average()
    command = ["nice", "-n", "5", "Rscript", str(script), str(DATA / "counts_long.csv"), str(DATA / "samples.csv"),
               str(out_csv), "--filter"] + (["--mirnas", str(n_mirnas)] if n_mirnas else [])
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return {"wall_seconds": time.perf_counter() - start, "load_before": load_before, "load_after": load_average(),
            "command": " ".join(command)}


def r_seconds(csv: Path, mirnas: list[str]) -> pd.DataFrame:
    """Per-miRNA full and reduced seconds of an R run, restricted to ``mirnas``."""
    table = pd.read_csv(csv).set_index("miRNA")
    missing = sorted(set(mirnas) - set(table.index))
    if missing:
        raise SystemExit(f"{csv} lacks {len(missing)} miRNAs, e.g. {missing[:3]}")
    return table.loc[mirnas, ["n_isomirs", "logFC", "sec_full", "sec_reduced"]]


def versions() -> dict:
    """Python packages and R packages used."""
    found = {name: metadata.version(name) for name in ("jax", "jaxlib", "numpy", "scipy", "arviz")}
    r_query = ('cat(R.version.string, as.character(packageVersion("lme4")), '
               'as.character(packageVersion("glmmTMB")), sep = "|")')
    try:
        r_out = subprocess.run(["Rscript", "-e", r_query], capture_output=True, text=True, check=True).stdout
        found.update(zip(("R", "lme4", "glmmTMB"), r_out.split("|")))
    except (OSError, subprocess.CalledProcessError):
        found["R"] = "not found"
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return {"python": platform.python_version(), "bayesmir_commit": commit, **found}


def machine() -> dict:
    """CPU model, cores and memory of this machine."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal")))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory_kb / 2**20, 1),
            "platform": platform.platform()}


def write_outputs(summary: dict, per_mirna: pd.DataFrame, n_jobs: int = 1) -> None:
    """speed_real.md, .csv and .json in benchmarks/results (speed_real_<N>jobs.* with ``n_jobs`` N > 1)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "speed_real" if n_jobs == 1 else f"speed_real_{n_jobs}jobs"
    per_mirna.to_csv(RESULTS / f"{stem}.csv", index_label="mirna")
    (RESULTS / f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")
    times, ratios = summary["seconds"], summary["ratios"]
    lines = [
        "# Speed on real data (somel2010_brain, miRglmm's filters)", "",
        f"Command: `{summary['command']}` ({summary['date']}).",
        (f"Data: {summary['n_mirnas']} miRNAs, {summary['n_isomirs']} isomiRs (up to {summary['max_isomirs']} "
         "per miRNA), 6 samples; every tool fits the full and the reduced model of every miRNA. "
         f"bayesmir with n_jobs={n_jobs} "
         + ("(one core, as glmer.nb and glmmTMB, which are single-threaded)." if n_jobs == 1 else
            f"({n_jobs} worker processes; glmer.nb and glmmTMB use one core).")), "",
        "| tool | seconds (full + reduced) | load before / after | note |", "|---|---|---|---|",
    ]
    for name, entry in summary["runs"].items():
        lines.append(f"| {name} | {times[name]:.1f} | {entry.get('load_before', '')} / "
                     f"{entry.get('load_after', '')} | {entry.get('note', '')} |")
    lines += ["", "| bayesmir laplace vs | ratio | target | met |", "|---|---|---|---|"]
    for (peer, state), target in TARGETS.items():
        ratio = ratios[f"{state} vs {peer}"]
        lines.append(f"| {peer}, {state} | {ratio:.1f}x | {target}x | {'yes' if ratio >= target else 'no'} |")
    lines += ["", f"Machine: {summary['machine']}.", f"Versions: {summary['versions']}.", "",
              "bayesmir seconds are those of `bayesmir.fit` in a fresh process (data already read); the "
              "process's wall time with imports and reading: "
              + ", ".join(f"{state} {summary['runs'][f'bayesmir {state}']['wall_seconds']:.1f} s"
                          for state in ("cold", "warm")) + "; CPU seconds of the fit: "
              + ", ".join(f"{state} {summary['runs'][f'bayesmir {state}']['fit_cpu_seconds']:.1f} s"
                          for state in ("cold", "warm")) + " (on a loaded machine CPU time is the steadier figure).",
              ""]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirnas", type=int, default=0, help="only the first N miRNAs (0: all)")
    parser.add_argument("--glmer", choices=("anchor", "run"), default="anchor")
    parser.add_argument("--glmmtmb-csv", type=Path, help="re-use this output of fit_glmmtmb.R")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed to each bayesmir fit")
    parser.add_argument("--jobs", type=int, default=1,
                        help="bayesmir's n_jobs (1: one core, as glmer.nb and glmmTMB; results file speed_real_<N>jobs)")
    args = parser.parse_args()
    runs: dict[str, dict] = {}
    raw = Path(tempfile.mkdtemp(prefix="bench_real_"))
    with tempfile.TemporaryDirectory(prefix="bayesmir_jax_cache_") as cache:
        for state in ("cold", "warm"):
            runs[f"bayesmir {state}"] = run_bayesmir(Path(cache), args.mirnas, args.timeout, args.jobs)
            print(f"bayesmir {state}: {runs[f'bayesmir {state}']['fit_seconds']:.1f} s", flush=True)
    mirnas = runs["bayesmir cold"]["mirnas"]
    if args.glmmtmb_csv is None:
        args.glmmtmb_csv = raw / "glmmtmb.csv"
        runs["glmmTMB"] = run_r(ROOT / "benchmarks" / "r" / "fit_glmmtmb.R", args.glmmtmb_csv, args.mirnas)
    else:
        runs["glmmTMB"] = {"note": f"re-used {args.glmmtmb_csv.name}, an earlier run of fit_glmmtmb.R"}
    glmer_csv = ANCHOR
    if args.glmer == "run":
        runs["glmer.nb"] = run_r(SHARED / "anchors" / "fit_glmm.R", raw / "lme4", args.mirnas)
        glmer_csv = raw / "lme4_glmer_nb.csv"
    else:
        runs["glmer.nb"] = {"note": "per-miRNA seconds recorded in anchors/somel2010_brain (not re-run)"}
    tmb, glmer = r_seconds(args.glmmtmb_csv, mirnas), r_seconds(glmer_csv, mirnas)
    per_mirna = pd.DataFrame({
        "n_isomirs": glmer["n_isomirs"],
        "glmer_nb_seconds": glmer["sec_full"] + glmer["sec_reduced"],
        "glmmtmb_seconds": tmb["sec_full"] + tmb["sec_reduced"],
        **{f"bayesmir_{state}_seconds": pd.Series(
            [a + b for a, b in zip(runs[f"bayesmir {state}"]["seconds_full"],
                                   runs[f"bayesmir {state}"]["seconds_reduced"])], index=mirnas)
           for state in ("cold", "warm")},
        "logfc_glmer_nb": glmer["logFC"], "logfc_glmmtmb": tmb["logFC"],
        "logfc_bayesmir": pd.Series(runs["bayesmir warm"]["estimate"]).reindex(mirnas),
    })
    seconds = {"glmer.nb": float(per_mirna["glmer_nb_seconds"].sum()),
               "glmmTMB": float(per_mirna["glmmtmb_seconds"].sum()),
               **{f"bayesmir {state}": runs[f"bayesmir {state}"]["fit_seconds"] for state in ("cold", "warm")}}
    ratios = {f"{state} vs {peer}": seconds[peer] / seconds[f"bayesmir {state}"]
              for peer in ("glmer.nb", "glmmTMB") for state in ("cold", "warm")}
    for run in runs.values():
        for key in ("mirnas", "estimate", "seconds_full", "seconds_reduced"):
            run.pop(key, None)
    summary = {"command": " ".join(["python", *sys.argv]), "date": datetime.now(UTC).isoformat(timespec="seconds"),
               "n_mirnas": len(mirnas), "n_isomirs": int(per_mirna["n_isomirs"].sum()),
               "max_isomirs": int(per_mirna["n_isomirs"].max()), "seconds": seconds, "ratios": ratios,
               "runs": runs, "machine": machine(), "versions": versions()}
    write_outputs(summary, per_mirna, args.jobs)
    print(json.dumps({"seconds": seconds, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
