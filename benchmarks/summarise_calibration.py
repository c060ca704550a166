"""Per-cell markdown tables of ``bench_calibration.py`` results, for docs/calibration_notes.md.

One table per cell: for each method, coverage of the 95% intervals, median width ratio to
the ML Wald interval, null bias, MSE, AUC and TPR at TNR >= 0.95.

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


def main(paths: list[str]) -> None:
    table = pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
    table = table.drop_duplicates(["cell", "method"], keep="last")
    print(cell_tables(table))


if __name__ == "__main__":
    main(sys.argv[1:])
