"""Per-cell markdown tables of ``bench_calibration.py`` results, for docs/calibration_notes.md.

One table per cell: for each method, coverage of the 95% intervals, median width ratio to
the ML Wald interval, null bias, MSE, AUC and TPR at TNR >= 0.95; first, one table of issue 12's
targets for the default method (``laplace_robust``): coverage 0.93-0.97, |null bias| < 0.01 with
coverage >= 0.93 on the composition-stress cells, AUC and TPR at TNR 0.95 at least the best of
``ml``, ``nbglm`` and ``deseq2``.

Run: ``python benchmarks/summarise_calibration.py benchmarks/results/calibration.csv [more.csv ...]``
(later files' rows replace earlier ones of the same cell and method).
"""

from __future__ import annotations

import sys

import pandas as pd

COLUMNS = {"method": "method", "coverage": "coverage", "width_vs_wald": "width / Wald",
           "bias_null": "null bias", "mse": "MSE", "auc": "AUC", "tpr_at_tnr95": "TPR @ TNR 0.95"}


def cell_tables(table: pd.DataFrame) -> str:
    """Markdown: a heading and a table per cell, in the order the cells appear."""
    parts = []
    for cell, rows in table.groupby("cell", sort=False):
        shown = rows[list(COLUMNS)].rename(columns=COLUMNS)
        lines = [f"#### {cell} ({int(rows['n_fits'].iloc[0])} miRNAs, {int(rows['n_samples'].iloc[0])} samples)",
                 "", "| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
        lines += ["| " + " | ".join(v if isinstance(v, str) else f"{v:.3f}" for v in row) + " |"
                  for row in shown.itertuples(index=False)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


DEFAULT = "laplace_robust"
OTHERS = ("ml", "nbglm", "deseq2")


def target_table(table: pd.DataFrame) -> str:
    """Markdown: per cell, the default method's figures against issue 12's targets (``miss`` marked)."""
    lines = ["| cell | coverage | null bias | AUC (best other) | TPR @ TNR 0.95 (best other) | misses |",
             "|---|---|---|---|---|---|"]
    for cell, rows in table.groupby("cell", sort=False):
        rows = rows.set_index("method")
        if DEFAULT not in rows.index:
            continue
        own, others = rows.loc[DEFAULT], rows.loc[rows.index.intersection(OTHERS)]
        best_auc, best_tpr = others["auc"].max(), others["tpr_at_tnr95"].max()
        misses = []
        if not 0.93 <= own["coverage"] <= 0.97:
            misses.append("coverage")
        if cell.startswith("stress") and abs(own["bias_null"]) >= 0.01:
            misses.append("null bias")
        if own["auc"] < best_auc:
            misses.append("AUC")
        if own["tpr_at_tnr95"] < best_tpr:
            misses.append("TPR")
        lines.append(f"| {cell} | {own['coverage']:.3f} | {own['bias_null']:.3f} | {own['auc']:.3f} ({best_auc:.3f}) "
                     f"| {own['tpr_at_tnr95']:.3f} ({best_tpr:.3f}) | {', '.join(misses) or '-'} |")
    return "\n".join(lines) + "\n"


def main(paths: list[str]) -> None:
    table = pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
    table = table.drop_duplicates(["cell", "method"], keep="last")
    print(target_table(table))
    print(cell_tables(table))


if __name__ == "__main__":
    main(sys.argv[1:])
