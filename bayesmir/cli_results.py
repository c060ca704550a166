"""Helpers of the ``fit``, ``report`` and ``compare`` commands that record, read or print results.

What ``fit`` records of its inputs (:func:`write_inputs`), its console summary
(:func:`print_top`, :func:`summary_line`, :func:`n_failed`) and what ``report``/``compare``
read (:func:`read_frequentist`, :func:`refit_problems`); the commands themselves are in
:mod:`bayesmir.cli`.
"""

from __future__ import annotations

import math
from pathlib import Path

from bayesmir.cli_inputs import console, load_data
from bayesmir.errors import InputError


def n_failed(result) -> int:
    """Fits (full model) that failed outright (``message`` ``failed: ...``, no posterior)."""
    return int(result.diagnostics["message"].astype(str).str.startswith("failed").sum())


def write_inputs(run: Path, counts: str, samples: Path | None, *filters) -> None:
    """``inputs.json``: the command line, input file names with their SHA-256, and the filter settings.

    File names only (no directories): a run folder holds no absolute path; the checksums
    identify the data.
    """
    import hashlib
    import sys

    from bayesmir.data.example import example_path
    from bayesmir.run_folder import write_json

    files = list(example_path()) if counts == "example" else [Path(counts)] + ([samples] if samples else [])
    checksums = {Path(path).name: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in files}
    settings = dict(zip(("filter", "min_mirna_logcpm", "min_isomir_logcpm", "min_isomirs"), filters))
    command = ["bayesmir", *(Path(arg).name if Path(arg).is_absolute() else arg for arg in sys.argv[1:])]
    record = {"command": command, "counts": Path(counts).name, "files_sha256": checksums,
              "filters": settings}
    write_json(run / "inputs.json", record)


def print_top(table, rows: int = 10) -> None:
    """Rich table of the miRNAs with the smallest lfsr."""
    from rich.table import Table

    from bayesmir.log_base import natural_names, renamed_column, scale_label

    top = table.sort_values("lfsr", na_position="last", kind="stable").head(rows)
    base = natural_names(table)[1]
    view = Table(title=f"top {len(top)} miRNAs by lfsr (log fold changes: {scale_label(base)})")
    columns = ["miRNA", "coef", *(renamed_column(c, base)[0] for c in ("estimate", "ci_low", "ci_high")),
               "lfsr", "qvalue", "flag"]
    for column in columns:
        view.add_column(column, justify="left" if column in ("miRNA", "coef", "flag") else "right")
    for _, row in top.iterrows():
        view.add_row(*[_cell(row[column]) for column in columns])
    console().print(view)


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def summary_line(result, tables: dict, run: Path) -> str:
    """``N miRNAs: n DE, n with isomiR usage, n flagged; saved to RUN`` (rules: :mod:`bayesmir.calls`)."""
    from bayesmir import calls

    n_de = calls.count_de(tables["mirna"])
    n_usage = calls.count_usage(tables["slope"])
    n_flagged = int((~result.diagnostics["converged"]).sum())
    return (f"{len(result.diagnostics)} miRNAs: {n_de} DE (qvalue < {calls.ALPHA}), {n_usage} with isomiR "
            f"usage (log BF > log 3), {n_flagged} flagged fits (never called), {n_failed(result)} failed; "
            f"saved to {run}")


def read_frequentist(path: Path):
    """Frequentist results from CSV: the contract table, or R output via import_r_results."""
    import pandas as pd

    from bayesmir.reporting.comparison import FREQUENTIST_COLUMNS

    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    table = pd.read_csv(path)
    if all(column in table.columns for column in FREQUENTIST_COLUMNS):
        return table
    from bayesmir.frequentist import import_r_results

    return import_r_results(path)


def refit_problems(result, counts: str | None, samples: Path | None, library_size: str | None, quiet: bool):
    """What --refit fits: the counts given, else the problems stored with the run's posteriors."""
    if counts is not None:
        return load_data(counts, samples, library_size, quiet).subset(mirnas=result.mirnas)
    from bayesmir.problem import problem_from_idata

    problems = [problem_from_idata(idata, mirna) for mirna, idata in result.posteriors.items()
                if "observed_data" in idata.groups() and "constant_data" in idata.groups()]
    if not problems:
        raise InputError("the run stores no counts to refit (no observed_data); give --counts")
    return problems
