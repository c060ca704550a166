"""Scale of the fast path: time, time per miRNA, peak memory and the growth law of the cost.

    PYTHONPATH=$PWD python benchmarks/bench_scale.py run 100x40 500x40 2000x40     # miRNAs x samples
    PYTHONPATH=$PWD python benchmarks/bench_scale.py run 20x100 --scheduler dask --jobs 2
    PYTHONPATH=$PWD python benchmarks/bench_scale.py summarise
    PYTHONPATH=$PWD python benchmarks/bench_scale.py steps 6x500        # seconds per step of the fit
    PYTHONPATH=$PWD python benchmarks/bench_scale.py padding 500 4,8,16,32  # fit cost against padding

``run``: each point is a fresh process (under ``nice``) that simulates ``bayesmir.simulate(M, S,
seed=1)`` and runs ``bayesmir.fit(..., out=FOLDER)`` with the default ``laplace`` (full and
reduced model), as the CLI does, after a warm-up fit of one miRNA per isomiR count in the same
process (``compile``: what a cold start adds, on the shapes of this point), timing its steps:
``prepare`` (compiling up front), ``fits`` (the runner,
writes excluded; it includes each fit's PSIS-LOO ELPD, made with the fit), ``write`` (saving each
fit), ``tables`` (the three tables, streamed over the run folder) and ``commit`` (the rest of the
final save); ``table rows`` is the per-miRNA part of the tables plus the ELPDs (serial runs). This process polls the resident memory of
the whole process tree (workers included) every 0.2 s. Every point appends one row to
``results/scale.csv`` (with the load average before and after) and its per-miRNA costs (fit
seconds of both models, table seconds, n_isomirs, n_samples) to ``results/scale_mirnas.csv``, both
tagged with the ``engine`` measured (``$BENCH_ENGINE`` or the worktree's commit).

``summarise``: fits the growth law ``seconds per miRNA = c * samples^a * isomiRs^b`` (least
squares on the log costs of every miRNA of the serial points) for the fits and for the tables,
separately for the latest engine ("after") and all earlier ones ("before"),
extrapolates to 2,000 miRNAs x 500 samples, compares with the targets (10 minutes, 4 GB, memory
flat in the number of miRNAs) and writes ``results/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
POINTS, MIRNAS = RESULTS / "scale.csv", RESULTS / "scale_mirnas.csv"
TARGET_SECONDS, TARGET_GB, CORNER = 600.0, 4.0, (2000, 500)


# ---------------------------------------------------------------------- one point (child process)
def run_point(n_mirnas: int, n_samples: int, scheduler: str, jobs: int, out: Path) -> dict:
    """Simulate and fit one point in this process; step timings and per-miRNA costs."""
    import bayesmir
    from bayesmir import driver, results, run_folder

    steps = dict.fromkeys(("simulate", "compile", "prepare", "write", "tables", "commit"), 0.0)
    table_seconds: dict[str, float] = {}

    def timed(owner, name, step, per_mirna=False):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                steps[step] += spent
                if per_mirna:
                    mirna = args[0] if isinstance(args[0], str) else args[0].posterior.attrs.get("mirna")
                    table_seconds[mirna] = table_seconds.get(mirna, 0.0) + spent
        setattr(owner, name, wrapper)

    timed(driver, "_prepare", "prepare")
    timed(run_folder.RunFolder, "write_fit", "write")
    timed(run_folder.RunFolder, "commit", "commit")
    timed(results.FitResult, "tables", "tables")
    for name in ("mirna_rows", "isomir_rows", "slope_rows"):
        timed(results, name, "table rows", per_mirna=True)
    timed(driver, "with_pointwise_elpd", "table rows", per_mirna=True)  # made with each fit (serial runs)
    steps["table rows"] = 0.0
    start = time.perf_counter()
    data = bayesmir.simulate(n_mirnas, n_samples, seed=1).to_data()
    steps["simulate"] = time.perf_counter() - start
    start = time.perf_counter()
    sizes = {mirna: data.isomir_counts(mirna).sizes["isomir"] for mirna in data.mirnas}
    one_per_size = list({size: mirna for mirna, size in sizes.items()}.values())
    bayesmir.fit(data.subset(mirnas=one_per_size), progress=False, scheduler="serial")
    steps["compile"] = time.perf_counter() - start
    start = time.perf_counter()
    fit = bayesmir.fit(data, out=out, progress=False, scheduler=scheduler, n_jobs=jobs)
    total = time.perf_counter() - start
    steps["commit"] -= steps["tables"]
    steps["fits"] = total - steps["prepare"] - steps["write"] - steps["tables"] - steps["commit"]
    full, reduced = fit.diagnostics.set_index("miRNA"), fit.diagnostics_reduced.set_index("miRNA")
    per_mirna = pd.DataFrame({
        "n_isomirs": fit.mirna_info["n_isomirs"], "n_samples": fit.mirna_info["n_samples"],
        "fit_seconds": full["seconds"] + reduced["seconds"],
        "table_seconds": pd.Series(table_seconds).reindex(fit.mirna_info.index),
        "converged": full["converged"] & reduced["converged"],
    })
    disk = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    return {"fit_total": total, **steps, "disk_mb": disk / 1e6,
            "mean_isomirs": float(per_mirna["n_isomirs"].mean()), "per_mirna": per_mirna.reset_index().to_dict("list")}


# ---------------------------------------------------------------------- driver (parent process)
def tree_rss(process) -> int:
    """Resident bytes of ``process`` and all its descendants."""
    import psutil

    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(point: str, scheduler: str, jobs: int) -> None:
    """Run one point in a child process and append its rows to the results."""
    import psutil

    # as the CLI: one-thread XLA in the child process too, so the warm-up's compiled programs are the
    # workers' (XLA's flags are part of the compile cache's key)
    from bayesmir.runner import WORKER_ENV

    n_mirnas, n_samples = (int(x) for x in point.lower().split("x"))
    keep = os.environ.get("BENCH_KEEP")  # a folder to keep the run folders in (to time the tables again)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        if keep:
            folder = tempfile.mkdtemp(prefix=f"{point}-{scheduler}{jobs}-", dir=keep)
        report = Path(folder) / "point.json"
        command = ["nice", "-n", "10", sys.executable, __file__, "child", point, scheduler, str(jobs),
                   str(Path(folder) / "run"), str(report)]
        load_before, engine = os.getloadavg(), engine_label()  # the code the child imports
        start = time.perf_counter()
        child = psutil.Popen(command, env={**os.environ, **WORKER_ENV,
                                           "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_rss(child))
            time.sleep(0.2)
        wall = time.perf_counter() - start
        if child.returncode != 0:
            raise SystemExit(f"point {point} failed (exit {child.returncode})")
        result = json.loads(report.read_text())
    per_mirna = pd.DataFrame(result.pop("per_mirna"))
    row = {"n_mirnas": n_mirnas, "n_samples": n_samples, "scheduler": scheduler, "jobs": jobs,
           "wall_seconds": wall, "seconds_per_mirna": wall / n_mirnas, "peak_gb": peak / 1e9,
           "startup": wall - result["simulate"] - result["compile"] - result["fit_total"], **result, "load_before": load_before[0], "load_after": os.getloadavg()[0],
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    row["engine"] = engine
    append(POINTS, pd.DataFrame([row]))
    append(MIRNAS, per_mirna.assign(point=point, scheduler=scheduler, jobs=jobs, engine=row["engine"]))
    print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)


def engine_label() -> str:
    """The code measured: ``$BENCH_ENGINE``, else the worktree's commit (``+`` if it has changes)."""
    import subprocess

    if os.environ.get("BENCH_ENGINE"):
        return os.environ["BENCH_ENGINE"]
    root = Path(__file__).resolve().parents[1]
    run = partial(subprocess.run, cwd=root, capture_output=True, text=True)
    commit = run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip() or "unknown"
    dirty = run(["git", "status", "--porcelain", "bayesmir"]).stdout.strip()
    return commit + ("+" if dirty else "")


def append(path: Path, rows: pd.DataFrame) -> None:
    """Append rows to a CSV, widening its columns when the new rows have more."""
    if path.exists():
        rows = pd.concat([pd.read_csv(path), rows], ignore_index=True)
    rows.to_csv(path, index=False)


# ---------------------------------------------------------------------- summary
def growth_law(rows: pd.DataFrame, column: str) -> dict:
    """Least squares of ``log seconds = log c + a log samples + b log isomiRs`` over miRNAs."""
    rows = rows[np.isfinite(rows[column]) & (rows[column] > 0)]
    design = np.column_stack([np.ones(len(rows)), np.log(rows["n_samples"]), np.log(rows["n_isomirs"])])
    coef, *_ = np.linalg.lstsq(design, np.log(rows[column]), rcond=None)
    residual = np.log(rows[column]) - design @ coef
    return {"c": float(np.exp(coef[0])), "a": float(coef[1]), "b": float(coef[2]),
            "rmse_log": float(np.sqrt(np.mean(residual**2))), "n": len(rows)}


def predicted(law: dict, n_samples: int, isomirs: np.ndarray) -> float:
    return float(np.sum(law["c"] * n_samples ** law["a"] * isomirs ** law["b"]))


def extrapolate(points: pd.DataFrame, mirnas: pd.DataFrame, isomirs: np.ndarray) -> dict:
    """Growth laws of one engine's serial points and the 2,000 x 500 corner extrapolated from them."""
    serial = mirnas[mirnas["scheduler"].isin(["processes", "serial"]) & (mirnas["jobs"] == 1)]
    fit_law, table_law = growth_law(serial, "fit_seconds"), growth_law(serial, "table_seconds")
    fits, tables = predicted(fit_law, CORNER[1], isomirs), predicted(table_law, CORNER[1], isomirs)
    write = float((points["write"] / points["n_mirnas"]).median()) * CORNER[0]
    return {"fit_law": fit_law, "table_law": table_law, "fits": fits, "tables": tables, "write": write,
            "two_workers": (fits + tables) / 2 + write}


def law_lines(name: str, result: dict) -> list[str]:
    fit_law, table_law = result["fit_law"], result["table_law"]
    return [
        (f"- {name}, fits (full + reduced): {fit_law['c']:.3g} s x samples^{fit_law['a']:.2f} x "
         f"isomiRs^{fit_law['b']:.2f} (RMSE {fit_law['rmse_log']:.2f} in log, {fit_law['n']} miRNAs); tables incl. "
         f"ELPD: {table_law['c']:.3g} s x samples^{table_law['a']:.2f} x isomiRs^{table_law['b']:.2f} "
         f"(RMSE {table_law['rmse_log']:.2f}); writing {result['write'] / CORNER[0] * 1e3:.0f} ms per miRNA"),
        (f"  - {CORNER[0]:,} x {CORNER[1]} extrapolated: fits {result['fits'] / 60:.1f} min, tables "
         f"{result['tables'] / 60:.1f} min, writing {result['write'] / 60:.1f} min of one process; on 2 workers "
         f"(perfect split) ~{result['two_workers'] / 60:.1f} min = {result['two_workers'] / TARGET_SECONDS:.2f}x "
         f"the 10-minute target (fits {result['fits'] / (result['fits'] + result['tables'] + result['write']):.0%})"),
    ]


def summarise() -> None:
    import bayesmir

    points = pd.read_csv(POINTS)
    points["steady_per_mirna"] = points["fit_total"] / points["n_mirnas"]
    points["fits_per_mirna"] = points["fits"] / points["n_mirnas"]
    mirnas = pd.read_csv(MIRNAS)
    serial = points["scheduler"].isin(["processes", "serial"]) & (points["jobs"] == 1)
    after = points.loc[serial, "engine"].iloc[-1]  # the engine of the latest serial point
    isomirs = bayesmir.simulate(CORNER[0], 4, seed=1).truth_mirna["n_isomirs"].to_numpy(dtype=float)
    results = {name: extrapolate(points[keep], mirnas[mirnas["engine"].isin(points[keep]["engine"])], isomirs)
               for name, keep in (("before", points["engine"] != after), ("after", points["engine"] == after))}
    serial_points = points[points["scheduler"].isin(["processes", "serial"]) & (points["jobs"] == 1)
                           & (points["engine"] == after)]
    at_40 = serial_points[serial_points["n_samples"] == serial_points["n_samples"].min()]
    memory_slope = np.polyfit(at_40["n_mirnas"], at_40["peak_gb"], 1)[0] * 1000 if len(at_40) > 1 else np.nan
    biggest = serial_points.sort_values(["n_samples", "n_mirnas"]).iloc[-1]
    view = ["engine", "n_mirnas", "n_samples", "scheduler", "jobs", "wall_seconds", "seconds_per_mirna",
            "steady_per_mirna", "peak_gb", "startup", "compile", "fits", "write", "tables", "table rows", "commit",
            "disk_mb", "load_before", "load_after", "date"]
    serial_all = points[points["scheduler"].isin(["processes", "serial"]) & (points["jobs"] == 1)]
    compare = serial_all.assign(group=np.where(serial_all["engine"] == after, "after", "before")).pivot_table(
        index=["n_mirnas", "n_samples"], columns="group", values="fits_per_mirna", aggfunc="last")
    if {"before", "after"} <= set(compare.columns):
        compare["speed-up"] = compare["before"] / compare["after"]
    at_corner = serial_points[serial_points["n_samples"] == CORNER[1]].sort_values("n_mirnas")
    direct = []
    if len(at_corner):
        row = at_corner.iloc[-1]
        per_fit, per_table = row["fits"] / row["n_mirnas"], (row["tables"] + row["write"]) / row["n_mirnas"]
        corner = CORNER[0] * (per_fit + per_table) / 2 + row["compile"]
        direct = [(f"- after, from the measured {int(row['n_mirnas'])} x {CORNER[1]} point instead (load "
                   f"{row['load_before']:.1f}): {per_fit:.2f} s per miRNA in the runner (fits + ELPD; the ELPD "
                   f"{row['table rows'] / row['n_mirnas']:.2f} s of it) + {per_table:.2f} s tables and writing: "
                   f"{CORNER[0]:,} miRNAs on 2 workers (perfect split) ~{corner / 60:.1f} min with the compile "
                   f"({row['compile']:.0f} s) = {corner / TARGET_SECONDS:.2f}x the target")]
    measured = points[(points["n_mirnas"] == CORNER[0]) & (points["n_samples"] == CORNER[1])]
    for _, row in measured.iterrows():
        direct.append(
            f"- **measured** {CORNER[0]:,} x {CORNER[1]} (engine {row['engine']}, {row['scheduler']}, "
            f"{int(row['jobs'])} jobs, load "
            f"{row['load_before']:.1f}-{row['load_after']:.1f}, {row['date']}): `bayesmir.fit` {row['fit_total']:.0f} s "
            f"= {row['fit_total'] / TARGET_SECONDS:.2f}x the 10-minute target (fits {row['fits']:.0f} s, writing "
            f"{row['write']:.0f} s, tables {row['tables']:.0f} s), the whole process {row['wall_seconds']:.0f} s "
            f"with the data simulated and a warm-up; peak {row['peak_gb']:.2f} GB (target {TARGET_GB:.0f} GB); "
            f"run folder {row['disk_mb'] / 1000:.1f} GB")
    lines = [
        "# Scale of the fast path (`benchmarks/bench_scale.py`)", "",
        (f"Machine: {platform.platform()}, {os.cpu_count()} cores, shared with other helpers' and the lead's jobs "
         "(load average before/after in every row: times under load are indicative; the morning rows ran at a "
         f"load of 8-12, the others at 2-6); python {platform.python_version()}, bayesmir {bayesmir.__version__}."),
        ("Data: `bayesmir.simulate(M, S, seed=1)` (2-12 isomiRs per miRNA, mean ~4.8), `bayesmir.fit(data, "
         "out=...)`, laplace, full and reduced model, run folder written as by the CLI. Every point a fresh "
         "process under `nice -n 10`. Peak memory: the whole process tree (workers included), polled every 0.2 s."),
        (f"Engines (`engine` column): `{after}` = the latent field solved by eliminating the sample block when "
         "n > J_pad q (bayesmir/latent_blocks.py) and the isomiR axis padded to powers of 2 from 4 from 64 samples "
         "on; `ab5c8eb` and `morning (pre-ab5c8eb)` = the dense (beta, v) block of size p + n (O(n^3)), padded "
         "to >= 64 isomiRs (ab5c8eb rows: the same points re-run this session from an export of that commit)."), "",
        "## Points", "",
        _markdown(points[view]), "",
        ("Seconds: `wall` the whole process; `startup` imports; `compile` a warm-up fit of one miRNA per isomiR "
         "count (what a cold start adds for these shapes, compile cache on disk as found); `fits` the runner "
         "(incl. each fit's PSIS-LOO ELPD); `write` saving each fit (.npz); `tables` the three tables streamed over "
         "the run folder; `table rows` their per-miRNA part plus the ELPDs (serial points); `commit` the rest of "
         "the final save. `steady_per_mirna` = (fits + write + tables + commit) / miRNAs."), "",
        "## Before / after: `fits` seconds per miRNA (full + reduced, serial, latest row of each)", "",
        _markdown(compare.reset_index()), "",
        "## Growth law (per miRNA, serial points) and the 2,000 x 500 corner", "",
        *law_lines(f"before (every engine but `{after}`)", results["before"]),
        *law_lines(f"after (`{after}`)", results["after"]),
        *direct,
        (f"- memory (after): {memory_slope:+.3f} GB per 1,000 miRNAs at {int(at_40['n_samples'].min())} samples "
         f"({len(at_40)} points); " if len(at_40) > 1 else "- memory (after): ") + (f"{biggest['peak_gb']:.2f} GB peak at "
         f"{int(biggest['n_mirnas'])} x {int(biggest['n_samples'])} (target {TARGET_GB:.0f} GB)"), "",
        "## Where the time goes now (after)", "",
        ("- `steps 6x500` (load 5.6): 1.43 s per miRNA (full + reduced): PSIS-LOO pointwise ELPD 0.84 s "
         "(`table_rows.with_pointwise_elpd`, numpy: the log-likelihood of 1,000 draws x 500 samples x isomiRs and "
         "the Pareto tail fits), importance sampling of psi 0.43 s (a latent mode per design point), psi's mode "
         "0.07 s, draws 0.04 s, latent Gaussians 0.03 s, psi's Hessian 0.02 s. The engine is ~40% of a fit; the "
         "ELPD is the next cost to cut."),
        ("- `padding 500 4,8,16,64` (load 5.5): per fit (full + reduced) of a 3-4 isomiR miRNA 0.5 / 0.85 / 2.0 "
         "/ 8.3 s padded to 4 / 8 / 16 / 64 columns (the dense block is p + J_pad q); compile + first fit 32-43 s "
         "per size. Hence powers of 2 from 4 from 64 samples on (`problem.padded_size`): a few extra compiles "
         "(paid once, the disk cache keeps them) against seconds per fit. With fewer samples the padding is "
         "unchanged (>= 64 columns, the isomiR blocks eliminated while n < J_pad q)."),
        ("- Compile (warm-up of one miRNA per isomiR count): 106 s at 10 x 500 (3 padded sizes, cold, load "
         "5.9), 32 s at 100 x 500 (disk cache warm). Before: one size, but 913 s, as the warm-up fits themselves "
         "took ~86 s each."), "",
        "## Notes", "",
        "- The corner is extrapolated from the growth law over the isomiR counts of `simulate(2000, ., seed=1)`.",
        ("- The after engine's cost is no power law of the samples: at 40 samples the padding (>= 64 columns) and "
         "the order (isomiR blocks eliminated) are as before, from 64 samples on the padding is tight, so its "
         "fitted exponent (~0.1) only describes these points; read the corner from the measured 100 x 500 point."),
        ("- 200 x 500 on 2 worker processes (load 1.6 -> 4.3, the lead's benchmarks started meanwhile): 463 s of "
         "runner, 2.3 s per miRNA, slower than serial: each worker compiles the 3 padded sizes itself (~2 min "
         "each under load) and the other jobs took ~half the cores; peak 5.5 GB for parent + 2 workers, over "
         "the 4 GB target (1.3 GB serial). Not a clean test of the 2-worker split; to be re-run on a quiet machine."),
        ("- The ab5c8eb 10 x 500 re-run overlapped ~9 min with a test run of this worktree (load 3-4.5), the "
         "after rows with the lead's benchmarks and short probes (load 4-6)."),
        "- Dask workers compile their own programs (warm-up happens in the parent): that is in their `fits`.",
    ]
    (RESULTS / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def profile_steps(n_mirnas: int, n_samples: int) -> None:
    """Seconds per miRNA (full + reduced) of the laplace fit's steps, after a warm-up fit of every shape."""
    from collections import defaultdict

    import jax

    import bayesmir
    from bayesmir import driver
    from bayesmir.inference import laplace, laplace_posterior

    data = bayesmir.simulate(n_mirnas, n_samples, seed=1).to_data()
    seconds: dict[str, float] = defaultdict(float)

    def timed(owner, name):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            out = original(*args, **kwargs)
            for leaf in jax.tree_util.tree_leaves(out):  # JAX computes asynchronously
                if isinstance(leaf, jax.Array):
                    leaf.block_until_ready()
            seconds[name] += time.perf_counter() - start
            return out
        setattr(owner, name, wrapper)

    for name in ("hyper_mode", "hyper_covariance", "importance_sample", "posterior_draws"):
        timed(laplace.LaplaceInference, name)
    timed(laplace_posterior, "gaussians_at")
    timed(driver, "with_pointwise_elpd")
    bayesmir.fit(data, progress=False, scheduler="serial")
    seconds.clear()
    start = time.perf_counter()
    bayesmir.fit(data, progress=False, scheduler="serial")
    total = time.perf_counter() - start
    print(f"{n_mirnas} x {n_samples}, load {os.getloadavg()[0]:.1f}: {total / n_mirnas:.2f} s per miRNA;",
          {name: round(value / n_mirnas, 3) for name, value in seconds.items()})


def padding_trade(n_samples: int, sizes: list[int]) -> None:
    """Fit seconds (full + reduced) of three 3-4 isomiR miRNAs with the isomiR axis padded to each size."""
    import bayesmir
    from bayesmir import marginal

    data = bayesmir.simulate(12, n_samples, seed=1).to_data()
    chosen = [m for m in data.mirnas if data.isomir_counts(m).sizes["isomir"] <= 4][:3]
    for size in sizes:
        marginal.padded_size = lambda n_isomirs, n_samples=None, size=size: size
        start = time.perf_counter()
        bayesmir.fit(data, mirnas=chosen[:1], progress=False, scheduler="serial")
        first = time.perf_counter() - start
        fit = bayesmir.fit(data, mirnas=chosen, progress=False, scheduler="serial")
        each = fit.diagnostics["seconds"].to_numpy() + fit.diagnostics_reduced["seconds"].to_numpy()
        print(f"{n_samples} samples, padded to {size}: compile + first fit {first:.1f} s, then per miRNA "
              f"{np.round(each, 2).tolist()} (load {os.getloadavg()[0]:.1f})", flush=True)


def _markdown(frame: pd.DataFrame) -> str:
    cells = frame.map(lambda v: f"{v:.3g}" if isinstance(v, float) else str(v))
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns)
    return head + "\n" + "\n".join("| " + " | ".join(row) + " |" for row in cells.to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("points", nargs="+", help="MIRNASxSAMPLES, e.g. 100x40")
    run.add_argument("--scheduler", default="processes")
    run.add_argument("--jobs", type=int, default=1)
    child = sub.add_parser("child")
    for name in ("point", "scheduler", "jobs", "out", "report"):
        child.add_argument(name)
    sub.add_parser("summarise")
    steps = sub.add_parser("steps", help="seconds per miRNA of each step of the fit")
    steps.add_argument("point", help="MIRNASxSAMPLES")
    padding = sub.add_parser("padding", help="fit seconds against the isomiR padding")
    padding.add_argument("samples", type=int)
    padding.add_argument("sizes", help="comma-separated padded sizes")
    args = parser.parse_args()
    if args.command == "run":
        RESULTS.mkdir(exist_ok=True)
        for point in args.points:
            measure(point, args.scheduler, args.jobs)
    elif args.command == "child":
        n_mirnas, n_samples = (int(x) for x in args.point.lower().split("x"))
        result = run_point(n_mirnas, n_samples, args.scheduler, int(args.jobs), Path(args.out))
        Path(args.report).write_text(json.dumps(result, default=float))
    elif args.command == "steps":
        profile_steps(*(int(x) for x in args.point.lower().split("x")))
    elif args.command == "padding":
        padding_trade(args.samples, [int(x) for x in args.sizes.split(",")])
    else:
        summarise()


if __name__ == "__main__":
    main()
