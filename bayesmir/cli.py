"""The ``bayesmir`` command line: fit, report, compare, simulate, info.

Every command turns bad input (:class:`bayesmir.InputError`, a missing file) into one
``error: ...`` line on stderr and exit code 2, without a traceback. Results go to
stdout; progress (rich spinners and bars) and warnings go to stderr, progress silenced
by ``--quiet``. Data and model options have the names and defaults of the Python API
(``--reference group=ctrl`` is ``reference={"group": "ctrl"}``, ``--library-size`` is
``read_counts(library_size=...)``, ...).

Exit codes (docs/exit_codes.md): 0 success (for ``fit``: at least one miRNA fitted; the last
line says how many fits failed), 1 every fit failed, 2 bad input or output (unreadable data,
``--out`` unusable or locked by another run), 130 interrupted (Ctrl-C; ``fit --resume``
continues).
"""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bayesmir.calls import DEFAULT_DELTA, DEFAULT_LEVEL
from bayesmir.cli_inputs import (
    CanonicalOption,
    CoefOption,
    CountsArgument,
    ExtendOption,
    FormulaOption,
    LibrarySizeOption,
    LogBaseOption,
    MinIsomirOption,
    MinIsomirsOption,
    MinMirnaOption,
    QuietOption,
    ReferenceOption,
    SamplesOption,
    SlopesOption,
    TypesCountsOption,
    check_frequentist_file,
    design_lines,
    fit_plan_lines,
    frequentist_record,
    library_size_lines,
    load_data,
    method_options,
    parse_mirnas,
    parse_reference,
    selected_mirnas,
    step,
)
from bayesmir.cli_results import (
    n_failed,
    print_top,
    read_frequentist,
    refit_problems,
    summary_line,
    write_inputs,
)
from bayesmir.errors import InputError
from bayesmir.log_base import DEFAULT_LOG_BASE

app = typer.Typer(
    name="bayesmir", no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
    help="Bayesian, isomiR-aware differential expression of microRNAs.\n\n"
         "Exit codes: 0 success (fit: at least one miRNA fitted), 1 every fit failed, "
         "2 bad input or output, 130 interrupted.",
)

EXIT_ALL_FAILED = 1
EXIT_INTERRUPTED = 130


class Method(str, Enum):
    laplace = "laplace"
    nuts = "nuts"
    advi = "advi"


class Family(str, Enum):
    nb = "nb"
    poisson = "poisson"


class Normalisation(str, Enum):
    robust = "robust"
    total = "total"
    median_ratio = "median_ratio"


def reports_input_errors(command):
    """Print ``error: <message>`` on stderr and exit with code 2 on bad input."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (InputError, FileNotFoundError) as error:
            message = str(error).strip().splitlines() or [type(error).__name__]
            typer.echo(f"error: {' '.join(line.strip() for line in message)}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper


def print_version(value: bool) -> None:
    """``--version``: print bayesmir's version and stop."""
    if value:
        from bayesmir import __version__

        typer.echo(f"bayesmir {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=print_version, is_eager=True,
                                          help="Print bayesmir's version and exit.")] = False,
) -> None:
    """Bayesian, isomiR-aware differential expression of microRNAs.

    Runs XLA and BLAS on one thread in this process, as in the workers, so that a serial run
    and a parallel one give identical numbers (set before JAX starts; only in the CLI).
    """
    import os

    from bayesmir.runner import WORKER_ENV

    for name, value in WORKER_ENV.items():
        os.environ.setdefault(name, value)


# ------------------------------------------------------------------ fit
@app.command()
@reports_input_errors
def fit(
    counts: CountsArgument,
    out: Annotated[Path, typer.Option("--out", help="Run directory to write (e.g. models/RUN).")],
    samples: SamplesOption = None,
    library_size: LibrarySizeOption = None,
    formula: FormulaOption = "~ group",
    coef: CoefOption = None,
    reference: ReferenceOption = None,
    mirnas: Annotated[str | None, typer.Option(
        "--mirnas", help="Fit only these miRNAs: a comma list, or @FILE with one name per line.")] = None,
    method: Annotated[Method, typer.Option(help="Inference method.")] = Method.laplace,
    family: Annotated[Family, typer.Option(help="Count distribution.")] = Family.nb,
    random_slope: Annotated[bool, typer.Option("--random-slope/--no-random-slope",
                                               help="IsomiR-specific slopes (miRglmm's full model).")] = True,
    filter_data: Annotated[bool, typer.Option("--filter/--no-filter", help="Apply miRglmm's filters first.")] = True,
    min_mirna_logcpm: MinMirnaOption = 5.0,
    min_isomir_logcpm: MinIsomirOption = -1.0,
    min_isomirs: MinIsomirsOption = 2,
    normalisation: Annotated[Normalisation, typer.Option(
        help="Library-size offset: robust (composition-robust, default), total (miRglmm's log T/1e4) "
             "or median_ratio (DESeq2's size factors).")] = Normalisation.robust,
    delta: Annotated[float, typer.Option(
        help="Threshold of P(|logFC| > delta) in mirna_table (natural log; default log 1.5).")] = DEFAULT_DELTA,
    level: Annotated[float, typer.Option(help="Mass of the reported intervals.")] = DEFAULT_LEVEL,
    log_base: LogBaseOption = DEFAULT_LOG_BASE,
    pooling: Annotated[bool, typer.Option("--pooling/--no-pooling",
                                          help="Cross-miRNA empirical-Bayes priors (laplace only).")] = False,
    shrinkage: Annotated[bool, typer.Option(
        "--shrinkage/--no-shrinkage",
        help="Empirical-Bayes slope-SD, sample-SD and fold-change priors learned across miRNAs, applied without "
             "refitting (laplace; off with < 20 miRNAs).")] = True,
    loo: Annotated[bool, typer.Option(
        "--loo", help="Also compute PSIS-LOO (slope_table's elpd_diff columns); costs about a third "
                      "of a laplace fit.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", help="Worker processes for methods that allow them "
                                      "(laplace); -1: one per core.")] = 1,
    scheduler: Annotated[str, typer.Option(
        help="serial, processes (--jobs workers here), dask (a local dask cluster of --jobs workers) "
             "or the address of a dask scheduler (tcp://host:8786).")] = "processes",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run in --out.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run (OUT.partial).")] = False,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Fit again only the miRNAs whose fit failed in the run in --out.")] = False,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress or top table: the summary line only.")] = False,
    draws: Annotated[int | None, typer.Option(help="Posterior draws (per chain for nuts).")] = None,
    tune: Annotated[int | None, typer.Option(help="nuts: tuning steps per chain.")] = None,
    chains: Annotated[int | None, typer.Option(help="nuts: chains.")] = None,
    slopes: SlopesOption = None,
    extend: ExtendOption = None,
) -> None:
    """Fit the Bayesian isomiR mixed model to every miRNA and save the run.

    Writes the run directory (posteriors, diagnostics) plus mirna_table.csv,
    isomir_table.csv and slope_table.csv, prints the top miRNAs and a summary line.
    Each finished miRNA is saved at once in OUT.partial; a killed or interrupted run
    continues with --resume. A used --out is refused unless --overwrite.

    Exit codes: 0 at least one miRNA fitted (the last line says how many fits failed),
    1 every fit failed, 2 bad input or output, 130 interrupted.

    Example: bayesmir fit counts.csv --samples samples.csv --reference group=ctrl --out models/run1

    Example: bayesmir fit example --method nuts --out models/example
    """
    import pandas as pd

    from bayesmir.run_folder import check_target

    check_target(out, overwrite, retry_failed)  # before the data: a used --out fails at once
    data = load_data(counts, samples, library_size, quiet)
    filtered = data
    if filter_data:
        with step("filtering", quiet):
            filtered = data.filter(min_mirna_logcpm=min_mirna_logcpm, min_isomir_logcpm=min_isomir_logcpm,
                                   min_isomirs=min_isomirs)
    if not filtered.mirnas:
        raise InputError("no miRNA left after filtering; lower --min-mirna-logcpm or use --no-filter")
    chosen = selected_mirnas(data, filtered, parse_mirnas(mirnas))
    with step("loading the fitting engine", quiet):
        import bayesmir.driver

        options = method_options(method.value, family.value, draws=draws, tune=tune, chains=chains,
                                 slopes=slopes, extend=extend)
    try:
        result = bayesmir.driver.fit(
            filtered, formula=formula, coef=coef, family=family.value, random_slope=random_slope,
            method=method.value, reference=parse_reference(reference), normalisation=normalisation.value,
            pooling=pooling, shrinkage=shrinkage, seed=seed, n_jobs=jobs, scheduler=scheduler,
            progress=not quiet, mirnas=chosen, delta=delta, level=level, log_base=log_base, loo=loo, out=out,
            overwrite=overwrite, resume=resume, retry_failed=retry_failed,
            **options,
        )
    except KeyboardInterrupt:
        typer.echo(f"interrupted: the finished fits are kept in {out}.partial; continue with --resume",
                   err=True)
        raise typer.Exit(code=EXIT_INTERRUPTED) from None
    write_inputs(out, counts, samples, filter_data, min_mirna_logcpm, min_isomir_logcpm, min_isomirs)
    tables = {name: pd.read_csv(out / f"{name}_table.csv") for name in ("mirna", "isomir", "slope")}
    if not quiet:
        print_top(tables["mirna"])
    typer.echo(summary_line(result, tables, out))
    if n_failed(result) == len(result.diagnostics):
        raise typer.Exit(code=EXIT_ALL_FAILED)


# ------------------------------------------------------------------ report
@app.command()
@reports_input_errors
def report(
    run: Annotated[Path, typer.Argument(help="Run directory written by 'bayesmir fit'.")],
    out: Annotated[Path | None, typer.Option("--out", help="HTML file (default reports/<RUN>.html).")] = None,
    frequentist: Annotated[Path | None, typer.Option(
        "--frequentist", help="CSV of frequentist results to compare with.")] = None,
    top: Annotated[int, typer.Option(help="miRNAs (smallest lfsr) with their own panel.")] = 10,
    counts: TypesCountsOption = None,
    canonical: CanonicalOption = None,
    quiet: QuietOption = False,
) -> None:
    """Write the self-contained HTML diagnostic report of a run.

    Example: bayesmir report models/run1 --out reports/run1.html
    """
    from bayesmir.reporting import report as write_report
    from bayesmir.results import load_fit

    with step(f"loading {run}", quiet):
        result = load_fit(run)
        table = None if frequentist is None else read_frequentist(frequentist)
        if table is not None:
            check_frequentist_file(result, frequentist, table)
    data = None if counts is None else load_data(counts, None, None, quiet).subset(mirnas=result.mirnas)
    with step("writing the report (plots for every panel)", quiet):
        path = write_report(result, out or Path("reports") / f"{Path(run).name}.html", frequentist=table, top=top,
                            data=data, canonical=canonical)
    typer.echo(f"report written to {path}")


# ------------------------------------------------------------------ compare
@app.command()
@reports_input_errors
def compare(
    run: Annotated[Path, typer.Argument(help="Run directory written by 'bayesmir fit'.")],
    frequentist: Annotated[Path | None, typer.Option(
        "--frequentist", help="CSV of frequentist results (bayesmir's or R miRglmm output).")] = None,
    refit: Annotated[bool, typer.Option(
        "--refit", help="Fit the frequentist model and LRT now, on the run's own data.")] = False,
    counts: Annotated[str | None, typer.Option(
        "--counts", help="With --refit: refit these counts (file or 'example') instead.")] = None,
    samples: SamplesOption = None,
    library_size: LibrarySizeOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="CSV to write (default RUN/comparison.csv).")] = None,
    quiet: QuietOption = False,
) -> None:
    """Compare a Bayesian run with frequentist (lme4-like) results.

    With --refit the maximum-likelihood fits and the random-slope LRT are run on the
    counts stored with the run and saved as RUN/frequentist.csv (usable by 'report').

    Example: bayesmir compare models/run1 --frequentist miRglmm_results.csv

    Example: bayesmir compare models/run1 --refit
    """
    from bayesmir.results import load_fit
    from bayesmir.run_folder import write_csv, write_json

    if (frequentist is None) == (not refit):
        raise InputError("give exactly one of --frequentist CSV or --refit")
    with step(f"loading {run}", quiet):
        result = load_fit(run)
        from bayesmir.frequentist import compare as compare_fits
        from bayesmir.frequentist import lrt

    if refit:
        problems = refit_problems(result, counts, samples, library_size, quiet)
        with step(f"fitting the ML model and LRT to {len(result.mirnas)} miRNAs", quiet):
            table = lrt(problems, formula=result.options.get("formula") or "~ group",
                        coef=result.options.get("coef"), family=result.options.get("family", "nb"),
                        reference=result.options.get("reference"),
                        normalisation=result.options.get("normalisation") or "total")
        write_csv(Path(run) / "frequentist.csv", table)
        write_json(Path(run) / "frequentist.json", frequentist_record(result))
    else:
        table = read_frequentist(frequentist)
        check_frequentist_file(result, frequentist, table)
    with step("comparing", quiet):
        comparison = compare_fits(result, table)
    path = out or Path(run) / "comparison.csv"
    write_csv(path, comparison.table)
    typer.echo(repr(comparison))
    disagree = comparison.table[comparison.table["disagree"].fillna(False).astype(bool)
                                | comparison.table["slope_disagree"].fillna(False).astype(bool)]
    if len(disagree):
        typer.echo(f"\n{len(disagree)} disagreements:")
        columns = ["miRNA", "estimate_bayes", "estimate_freq", "call_bayes", "call_freq",
                   "slope_call_bayes", "slope_call_freq", "reason"]
        typer.echo(disagree.reindex(columns=columns).head(20).to_string(index=False))
    typer.echo(f"comparison of {len(comparison.table)} miRNAs written to {path}")


# ------------------------------------------------------------------ simulate
@app.command()
@reports_input_errors
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder for the CSV files.")],
    mirnas: Annotated[int, typer.Option("--mirnas", help="Number of miRNAs.")] = 20,
    samples: Annotated[int, typer.Option("--samples", help="Number of samples (two groups, ctrl and case).")] = 12,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Simulate isomiR counts with known truth (NB mixed model).

    Writes counts_long.csv, samples.csv, library_size.csv, truth_mirna.csv and
    truth_isomir.csv. The truth's log fold changes are case vs ctrl: fit them with
    'bayesmir fit OUT/counts_long.csv --samples OUT/samples.csv --reference group=ctrl --out RUN'
    (without --reference the reference is the level that sorts first, 'case', and every sign flips).

    Example: bayesmir simulate --out sim1 --mirnas 50 --samples 12 --seed 1
    """
    from bayesmir.simulation import simulate as run_simulation

    simulation = run_simulation(n_mirnas=mirnas, n_samples=samples, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    simulation.counts.to_csv(out / "counts_long.csv", index=False)
    simulation.samples.rename_axis("sample").to_csv(out / "samples.csv")
    simulation.library_size.rename("library_size").rename_axis("sample").to_csv(out / "library_size.csv")
    simulation.truth_mirna.to_csv(out / "truth_mirna.csv", index=False)
    simulation.truth_isomir.to_csv(out / "truth_isomir.csv", index=False)
    reference = " ".join(f"--reference {variable}={level}" for variable, level in simulation.reference.items())
    typer.echo(f"{simulation!r} written to {out}; fit with: bayesmir fit {out / 'counts_long.csv'} "
               f"--samples {out / 'samples.csv'} {reference} --out RUN")


# ------------------------------------------------------------------ info
@app.command()
@reports_input_errors
def info(
    counts: CountsArgument,
    samples: SamplesOption = None,
    library_size: LibrarySizeOption = None,
    formula: FormulaOption = "~ group",
    coef: CoefOption = None,
    reference: ReferenceOption = None,
    min_mirna_logcpm: MinMirnaOption = 5.0,
    min_isomir_logcpm: MinIsomirOption = -1.0,
    min_isomirs: MinIsomirsOption = 2,
    quiet: QuietOption = False,
) -> None:
    """Summarise a data set: library totals used, groups and reference level, the
    coefficients a fit will estimate, and what the filters would keep.

    Example: bayesmir info counts.csv --samples samples.csv --reference group=ctrl

    Example: bayesmir info example
    """
    data = load_data(counts, samples, library_size, quiet)
    typer.echo(repr(data))
    typer.echo(library_size_lines(data))
    typer.echo(design_lines(data, formula, coef, parse_reference(reference)))
    with step("filtering", quiet):
        filtered = data.filter(min_mirna_logcpm=min_mirna_logcpm, min_isomir_logcpm=min_isomir_logcpm,
                               min_isomirs=min_isomirs)
    typer.echo("\nfilters:")
    typer.echo(filtered.filter_report.to_string(index=False))
    typer.echo(fit_plan_lines(filtered))


if __name__ == "__main__":
    app()