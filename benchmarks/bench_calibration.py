"""Calibration of every method on parametric simulations: coverage, width, null bias, MSE, AUC, TPR.

Cells are ``bayesmir.simulate`` data sets (``--replicates`` per cell, ``--n-mirnas`` miRNAs each,
paper fold changes, theta uniform in (5, 20); figures pool the replicates):

- ``n3v3``, ``n5v5``, ``n10v10``, ``n20v19`` (samples per group), each ``_flat`` (no isomiR
  slopes) and ``_slope`` (half the miRNAs with slope SD 0.5); 30% DE in abundance-matched
  up/down pairs (library size unmoved);
- ``stress5v5``, ``stress10v10``: composition stress, 25% of miRNAs up (the most abundant
  among them), none down, no slopes.

Methods: ``laplace_<normalisation>`` (``bayesmir.fit`` with its defaults, empirical-Bayes shrinkage on,
``reduced=False``), ``laplace_robust_noshrink`` (``shrinkage=False``: the fixed default priors),
``laplace_robust_pooled``
(``pooling=True``), ``laplace_robust_pooled_noslope`` (the same two passes without the pooled
``sd_slope_scale``: ``pooled_priors(..., slope_scale=False)``), ``laplace_robust_scale05`` (half the default scales of ``sd_sample`` and
``sd_slope``), ``ml`` (``fit_frequentist``, offset ``log T`` as glmer.nb in miRglmm),
``ml_robust``, ``nbglm`` and ``deseq2`` (``fit_aggregated``). Per cell and method:
coverage of 95% intervals (all miRNAs; null ones), mean width and median width ratio to the
ML Wald interval, mean estimate of null miRNAs (bias), MSE, AUC of ``|estimate| / sd``
against the truth, TPR at the threshold giving TNR >= 0.95.

Run (from the repository root, ``PYTHONPATH=$PWD``)::

    python benchmarks/bench_calibration.py                      # everything: ~35 min, 1 core, loaded machine
    python benchmarks/bench_calibration.py --cells n3v3_flat,stress5v5 --methods laplace_robust,ml --n-mirnas 60

Results: ``benchmarks/results/calibration.csv`` (rows merged by cell and method, so runs in
parts accumulate) and ``calibration.md`` (rewritten from the CSV).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bayesmir.pooling import MIN_SLOPE_SCALE, pooled_priors, slope_sd_points
from bayesmir.priors import Priors
from bayesmir.simulation import simulate

RESULTS = Path(__file__).parent / "results"
CELLS = {
    **{f"n{a}v{b}_{kind}": {"n_samples": a + b, "frac_slope": 0.0 if kind == "flat" else 0.5}
       for a, b in ((3, 3), (5, 5), (10, 10), (20, 19)) for kind in ("flat", "slope")},
    "stress5v5": {"n_samples": 10, "frac_slope": 0.0, "frac_de": 0.25, "de_direction": "up"},
    "stress10v10": {"n_samples": 20, "frac_slope": 0.0, "frac_de": 0.25, "de_direction": "up"},
}
LAPLACE = {
    "laplace_total": {"normalisation": "total"},
    "laplace_median_ratio": {"normalisation": "median_ratio"},
    "laplace_robust": {"normalisation": "robust"},
    "laplace_robust_noshrink": {"normalisation": "robust", "shrinkage": False},
    "laplace_robust_pooled": {"normalisation": "robust", "pooling": True},
    "laplace_robust_pooled_noslope": {"normalisation": "robust", "pooling": "noslope"},
    "laplace_robust_pooled_onestep": {"normalisation": "robust", "pooling": "onestep"},
    "laplace_robust_scale05": {"normalisation": "robust", "priors": {"sd_sample_scale": 0.5, "sd_slope_scale": 0.5}},
}
METHODS = [*LAPLACE, "ml", "ml_robust", "nbglm", "deseq2"]
Z_95 = stats.norm.ppf(0.975)


def simulation(cell: str, n_mirnas: int, seed: int):
    """The cell's simulated data set (seed from the cell's position, stable across runs)."""
    options = {"frac_de": 0.3, "dispersion": (5.0, 20.0), **CELLS[cell]}
    return simulate(n_mirnas=n_mirnas, seed=seed + list(CELLS).index(cell), **options)


def bayes_columns(result) -> pd.DataFrame:
    """The one adapter to the Bayesian table: miRNA, estimate, sd, low, high (95% ETI).

    Renames of ``FitResult.mirna_table`` columns are fixed here.
    """
    table = result.mirna_table()
    return pd.DataFrame({"miRNA": table["miRNA"], "estimate": table["estimate"], "sd": table["sd"],
                         "low": table["ci_low"], "high": table["ci_high"]})


def one_step_slope_scale(first) -> float:
    """``sqrt`` of the mean over converged miRNAs of the first pass's ``E[sd_slope^2 | y]``, at least
    ``MIN_SLOPE_SCALE``: one EM step from the default scale (``pooled_slope_scale`` iterates to the
    maximum), so miRNAs with little information pull the scale towards the default (conservative)."""
    converged = set(first.diagnostics.loc[first.diagnostics["converged"], "miRNA"])
    points = [slope_sd_points(idata) for name, idata in first.posteriors.items() if name in converged]
    second_moments = [float(np.sum(point[0][:, None] * point[1] ** 2)) / point[1].shape[1]
                      for point in points if point is not None]
    return max(MIN_SLOPE_SCALE, float(np.sqrt(np.mean(second_moments))))


def run_method(method: str, data, reference: dict) -> pd.DataFrame:
    """One method's per-miRNA ``miRNA, estimate, sd, low, high`` on ``data``."""
    import bayesmir
    from bayesmir.design import build_design
    from bayesmir.frequentist.aggregated import fit_aggregated
    from bayesmir.frequentist.mle import fit_frequentist
    from bayesmir.problem import mirna_problems

    if method in LAPLACE:
        options = dict(LAPLACE[method])
        if "priors" in options:
            options["priors"] = Priors(**options["priors"])
        if options.get("pooling") in ("noslope", "onestep"):  # pooling=True's two passes, other slope scales
            first = bayesmir.fit(data, reference=reference, reduced=False, progress=False, n_jobs=1,
                                 normalisation=options["normalisation"])
            priors = pooled_priors(first, Priors(), slope_scale=False)
            if options["pooling"] == "onestep":
                priors = dataclasses.replace(priors, sd_slope_scale=one_step_slope_scale(first))
            options.update(pooling=False, priors=priors)
        result = bayesmir.fit(data, reference=reference, reduced=False, progress=False, n_jobs=1, **options)
        columns = bayes_columns(result)
        columns.attrs["note"] = result.options.get("shrinkage_note", "")
        return columns
    if method in ("ml", "ml_robust"):
        design = build_design(data.samples, "~ group", reference=reference)
        normalisation = "robust" if method == "ml_robust" else "total"
        table = fit_frequentist(mirna_problems(data, design, normalisation), n_jobs=1)
        return pd.DataFrame({"miRNA": table["miRNA"], "estimate": table["estimate"], "sd": table["se"],
                             "low": table["ci_low"], "high": table["ci_high"]})
    table = fit_aggregated(data, methods=(method,), reference=reference)
    return pd.DataFrame({"miRNA": table["miRNA"], "estimate": table["estimate"], "sd": table["se"],
                         "low": table["ci_low"], "high": table["ci_high"]})


def tpr_at_tnr(score: np.ndarray, is_de: np.ndarray, tnr: float = 0.95) -> float:
    """Fraction of DE miRNAs scoring above the smallest threshold that keeps TNR >= ``tnr``."""
    null = np.sort(score[~is_de])
    if len(null) == 0 or is_de.sum() == 0:
        return np.nan
    threshold = null[int(np.ceil(tnr * len(null))) - 1]
    return float((score[is_de] > threshold).mean())


def metrics(fits: pd.DataFrame, truth: pd.DataFrame, wald: pd.DataFrame | None) -> dict:
    """Calibration and ranking figures of one method on one cell (NaN fits count as failures)."""
    table = truth[["miRNA", "logfc", "is_de"]].merge(fits, on="miRNA", how="left")
    ok = table[["estimate", "sd", "low", "high"]].notna().all(axis=1) & (table["sd"] > 0)
    table = table[ok]
    covered = (table["low"] <= table["logfc"]) & (table["logfc"] <= table["high"])
    width = table["high"] - table["low"]
    null = ~table["is_de"]
    score = (table["estimate"].abs() / table["sd"]).to_numpy()
    is_de = table["is_de"].to_numpy(dtype=bool)
    ratio = np.nan
    if wald is not None:
        merged = table.merge(wald, on="miRNA", suffixes=("", "_wald"))
        wald_width = merged["high_wald"] - merged["low_wald"]
        ratio = float(np.nanmedian((merged["high"] - merged["low"]) / wald_width.where(wald_width > 0)))
    auc = np.nan
    if 0 < is_de.sum() < len(is_de):
        auc = stats.mannwhitneyu(score[is_de], score[~is_de]).statistic / (is_de.sum() * (~is_de).sum())
    return {
        "n_fits": int(ok.sum()), "n_failed": int((~ok).sum()),
        "coverage": float(covered.mean()), "coverage_null": float(covered[null].mean()),
        "width": float(width.mean()), "width_vs_wald": ratio,
        "bias_null": float(table.loc[null, "estimate"].mean()),
        "bias_null_se": float(table.loc[null, "estimate"].std() / np.sqrt(null.sum())),
        "mse": float(((table["estimate"] - table["logfc"]) ** 2).mean()),
        "auc": float(auc), "tpr_at_tnr95": tpr_at_tnr(score, is_de),
    }


def run_cell(cell: str, methods: list[str], n_mirnas: int, seed: int, replicates: int) -> list[dict]:
    """Every method on ``replicates`` data sets of one cell, pooled; ``ml`` first, the Wald reference.

    Seeds ``seed + 1000 * r`` for replicate ``r``; miRNA names get the prefix ``r<r>:``.
    """
    sims = [simulation(cell, n_mirnas, seed + 1000 * r) for r in range(replicates)]
    truth = pd.concat([sim.truth_mirna.assign(miRNA=f"r{r}:" + sim.truth_mirna["miRNA"])
                       for r, sim in enumerate(sims)], ignore_index=True)
    rows, fits = [], {}
    for method in sorted(methods, key=lambda m: m != "ml"):
        start = time.perf_counter()
        parts = [run_method(method, sim.to_data(), sim.reference) for sim in sims]
        notes = " | ".join(part.attrs.get("note", "") for part in parts).strip(" |")
        fits[method] = pd.concat([part.assign(miRNA=lambda t, r=r: f"r{r}:" + t["miRNA"])
                                  for r, part in enumerate(parts)], ignore_index=True)
        seconds = time.perf_counter() - start
        row = {"cell": cell, "method": method, "n_mirnas": n_mirnas, "replicates": replicates,
               "n_samples": len(sims[0].samples), "seed": seed + list(CELLS).index(cell),
               "seconds": round(seconds, 1), **metrics(fits[method], truth, fits.get("ml")), "note": notes}
        rows.append(row)
        print(pd.DataFrame([row]).drop(columns="note").to_string(index=False, header=len(rows) == 1), flush=True)
    return rows


def merged_results(rows: list[dict], path: Path) -> pd.DataFrame:
    """Earlier CSV rows with this run's replacing those of the same cell and method."""
    new = pd.DataFrame(rows)
    if path.exists():
        old = pd.read_csv(path)
        keep = ~old.set_index(["cell", "method"]).index.isin(new.set_index(["cell", "method"]).index)
        new = pd.concat([old[keep], new], ignore_index=True)
    order = {cell: i for i, cell in enumerate(CELLS)}
    rank = {method: i for i, method in enumerate(METHODS)}
    return new.sort_values(["cell", "method"], key=lambda s: s.map(order if s.name == "cell" else rank))


def machine() -> str:
    versions = {}
    for package in ("bayesmir", "jax", "numpy", "scipy", "statsmodels", "pydeseq2", "pandas"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return (f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
            f"(shared; timings are noisy), Python {platform.python_version()}, {versions}")


def write_markdown(table: pd.DataFrame, command: str, path: Path) -> None:
    """calibration.md: command, machine, one table of every cell and method, the SBC section."""
    columns = ["cell", "method", "n_fits", "coverage", "coverage_null", "width", "width_vs_wald",
               "bias_null", "bias_null_se", "mse", "auc", "tpr_at_tnr95", "seconds"]
    lines = [
        "# bench_calibration", "",
        f"Command: `{command}`", "",
        f"Machine: {machine()}", "",
        ("Cells: `replicates` `bayesmir.simulate` data sets of `n_mirnas` miRNAs each, pooled "
        "(`n3v3` = 3 + 3 samples; `_flat` no isomiR slopes, "
        "`_slope` half the miRNAs with slope SD 0.5; 30% DE in up/down pairs; `stress*`: 25% up, the most "
        "abundant miRNA among them, none down). coverage: 95% intervals (laplace: ETI; others: Wald) "
        "containing the true log fold change; width_vs_wald: median ratio of the width to `ml`'s Wald "
        "interval; bias_null: mean estimate of the null miRNAs (bias_null_se: its SE over miRNAs, "
        "ignoring that one offset error is shared by all of them); AUC and TPR at TNR >= 0.95 rank "
        "`|estimate| / sd`. `laplace_robust_scale05`: `Priors(sd_sample_scale=0.5, sd_slope_scale=0.5)`."),
        "",
        _markdown_table(table[columns]), "",
    ]
    sbc = RESULTS / "sbc.md"
    if sbc.exists():
        lines += [sbc.read_text()]
    path.write_text("\n".join(lines))


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    rows = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    rows += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=",".join(CELLS), help=f"comma-separated, from {list(CELLS)}")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {METHODS}")
    parser.add_argument("--n-mirnas", type=int, default=200)
    parser.add_argument("--replicates", type=int, default=2, help="data sets per cell")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--out", default=str(RESULTS / "calibration"), help="path without .csv/.md")
    args = parser.parse_args(argv)
    cells, methods = args.cells.split(","), args.methods.split(",")
    unknown = sorted(set(cells) - set(CELLS)) + sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown cells/methods {unknown}")
    rows = []
    for cell in cells:
        rows += run_cell(cell, methods, args.n_mirnas, args.seed, args.replicates)
        table = merged_results(rows, Path(args.out + ".csv"))
        table.to_csv(args.out + ".csv", index=False)
        write_markdown(table, "python benchmarks/bench_calibration.py " + " ".join(sys.argv[1:]),
                       Path(args.out + ".md"))


if __name__ == "__main__":
    main()
