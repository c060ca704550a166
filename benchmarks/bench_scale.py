"""Scale of the fast path: time, time per miRNA, peak memory and the growth law of the cost.

    PYTHONPATH=$PWD python benchmarks/bench_scale.py run 100x40 500x40 2000x40     # miRNAs x samples
    PYTHONPATH=$PWD python benchmarks/bench_scale.py run 20x100 --scheduler dask --jobs 2
    PYTHONPATH=$PWD python benchmarks/bench_scale.py summarise

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
seconds of both models, table seconds, n_isomirs, n_samples) to ``results/scale_mirnas.csv``.

``summarise``: fits the growth law ``seconds per miRNA = c * samples^a * isomiRs^b`` (least
squares on the log costs of every miRNA of the serial points) for the fits and for the tables,
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

    n_mirnas, n_samples = (int(x) for x in point.lower().split("x"))
    keep = os.environ.get("BENCH_KEEP")  # a folder to keep the run folders in (to time the tables again)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        if keep:
            folder = tempfile.mkdtemp(prefix=f"{point}-{scheduler}{jobs}-", dir=keep)
        report = Path(folder) / "point.json"
        command = ["nice", "-n", "10", sys.executable, __file__, "child", point, scheduler, str(jobs),
                   str(Path(folder) / "run"), str(report)]
        load_before = os.getloadavg()
        start = time.perf_counter()
        child = psutil.Popen(command, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
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
    pd.DataFrame([row]).to_csv(POINTS, mode="a", header=not POINTS.exists(), index=False)
    per_mirna = per_mirna.assign(point=point, scheduler=scheduler, jobs=jobs)
    per_mirna.to_csv(MIRNAS, mode="a", header=not MIRNAS.exists(), index=False)
    print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)


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


def summarise() -> None:
    import bayesmir

    points = pd.read_csv(POINTS)
    points["steady_per_mirna"] = points["fit_total"] / points["n_mirnas"]
    mirnas = pd.read_csv(MIRNAS)
    serial_points = points[points["scheduler"].isin(["processes", "serial"]) & (points["jobs"] == 1)]
    serial = mirnas[mirnas["scheduler"].isin(["processes", "serial"]) & (mirnas["jobs"] == 1)]
    fit_law, table_law = growth_law(serial, "fit_seconds"), growth_law(serial, "table_seconds")
    isomirs = bayesmir.simulate(CORNER[0], 4, seed=1).truth_mirna["n_isomirs"].to_numpy(dtype=float)
    fits, tables = predicted(fit_law, CORNER[1], isomirs), predicted(table_law, CORNER[1], isomirs)
    write = float((points["write"] / points["n_mirnas"]).median()) * CORNER[0]
    two_workers = (fits + tables) / 2 + write
    at_40 = serial_points[serial_points["n_samples"] == serial_points["n_samples"].min()]
    memory_slope = np.polyfit(at_40["n_mirnas"], at_40["peak_gb"], 1)[0] * 1000 if len(at_40) > 1 else np.nan
    biggest = serial_points.sort_values("n_samples").iloc[-1]
    view = ["n_mirnas", "n_samples", "scheduler", "jobs", "wall_seconds", "seconds_per_mirna", "steady_per_mirna",
            "peak_gb", "startup", "compile", "fits", "write", "tables", "table rows", "commit", "disk_mb",
            "load_before", "load_after"]
    lines = [
        "# Scale of the fast path (`benchmarks/bench_scale.py`)", "",
        (f"Machine: {platform.platform()}, {os.cpu_count()} cores, shared with 4 other helpers' jobs (load "
        "average before/after in every row: every time here is inflated by that contention, typically 2-5x on "
        f"a load of 8-12); python {platform.python_version()}, bayesmir {bayesmir.__version__}."),
        ("Data: `bayesmir.simulate(M, S, seed=1)` (2-12 isomiRs per miRNA, mean ~4.8), `bayesmir.fit(data, "
        "out=...)`, laplace, full and reduced model, run folder written as by the CLI. Every point a fresh "
        "process under `nice -n 10`; the compile cache on disk was warm for 40 samples only. Peak memory: the "
        "whole process tree (workers included), polled every 0.2 s."), "",
        "## Points", "",
        _markdown(points[view]), "",
        ("Seconds: `wall` the whole process; `startup` imports; `compile` a warm-up fit of one miRNA per isomiR "
        "count (what a cold start adds for these shapes); `fits` the runner (incl. each fit's PSIS-LOO ELPD); "
        "`write` saving each fit (.npz); `tables` the three tables streamed over the run folder; `table rows` "
        "their per-miRNA part plus the ELPDs (serial points); `commit` the rest of the final save. "
        "`steady_per_mirna` = (fits + write + tables + commit) / miRNAs."), "",
        "## Growth law (per miRNA, serial points)", "",
        (f"- fits (full + reduced): {fit_law['c']:.3g} s x samples^{fit_law['a']:.2f} x isomiRs^{fit_law['b']:.2f} "
        f"(RMSE {fit_law['rmse_log']:.2f} in log, {fit_law['n']} miRNAs)"),
        (f"- tables incl. ELPD: {table_law['c']:.3g} s x samples^{table_law['a']:.2f} x "
        f"isomiRs^{table_law['b']:.2f} (RMSE {table_law['rmse_log']:.2f} in log)"),
        f"- writing: median {write / CORNER[0] * 1e3:.0f} ms per miRNA (both fits)",
        (f"- memory at {int(at_40['n_samples'].min()) if len(at_40) else '?'} samples: "
        f"{memory_slope:+.3f} GB per 1,000 miRNAs (fitted over {len(at_40)} points: flat means ~0)"), "",
        f"## {CORNER[0]:,} miRNAs x {CORNER[1]} samples (extrapolated, not run)", "",
        (f"From the growth laws over the isomiR counts of `simulate({CORNER[0]}, ., seed=1)`: fits "
        f"{fits / 60:.0f} min and tables {tables / 60:.0f} min of one process, writing {write / 60:.1f} min; on "
        f"the 2 cores (2 workers, perfect split) about {two_workers / 60:.0f} min, "
        f"{two_workers / TARGET_SECONDS:.1f}x the 10-minute target (the fits are "
        f"{fits / (fits + tables + write):.0%} of it). Memory: {biggest['peak_gb']:.2f} GB peak at "
        f"{int(biggest['n_mirnas'])} x {int(biggest['n_samples'])} (target {TARGET_GB:.0f} GB); the per-miRNA "
        "state is one fit, so 2,000 miRNAs need what one miRNA at 500 samples needs plus the tables' rows."),
        "", "## Notes", "",
        ("- Where the brief's points (100-2,000 miRNAs; 40-500 samples at 100 miRNAs) would not fit in the "
        "session on the shared machine they were cut (see the rows); the corner is extrapolated, not run."),
        "- The first 25 x 40 row's `table rows` misses the ELPDs (timed from the second point on).",
        "- Dask workers compile their own programs (warm-up happens in the parent): that is in their `fits`.",
    ]
    (RESULTS / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


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
    args = parser.parse_args()
    if args.command == "run":
        RESULTS.mkdir(exist_ok=True)
        for point in args.points:
            measure(point, args.scheduler, args.jobs)
    elif args.command == "child":
        n_mirnas, n_samples = (int(x) for x in args.point.lower().split("x"))
        result = run_point(n_mirnas, n_samples, args.scheduler, int(args.jobs), Path(args.out))
        Path(args.report).write_text(json.dumps(result, default=float))
    else:
        summarise()


if __name__ == "__main__":
    main()
