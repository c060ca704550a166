"""What the ``bayesmir`` commands share: data and model options (named as in the Python API),
reading the input as :func:`bayesmir.read_counts` does, option parsers, progress on stderr, and
the data summaries of ``bayesmir info``."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Annotated

import typer

from bayesmir.errors import InputError

CountsArgument = Annotated[str, typer.Argument(
    help="Counts file (long/wide CSV or TSV, .h5ad, .rda) or the word 'example' for the bundled data.")]
SamplesOption = Annotated[Path | None, typer.Option(
    "--samples", help="Sample metadata (CSV/TSV with a 'sample' column and 'group').")]
LibrarySizeOption = Annotated[str | None, typer.Option(
    "--library-size", metavar="FILE|COLUMN|counts",
    help="Library totals T_i: a column of the sample metadata, a CSV of sample,library_size, or 'counts' "
    "(every distinct sequence of a sample). Default: the metadata's 'library_size' column if any, else "
    "'counts' (as read_counts).")]
FormulaOption = Annotated[str, typer.Option(help="Fixed effects over the sample metadata.")]
CoefOption = Annotated[str | None, typer.Option(
    help="Coefficient of interest (default: first after the intercept).")]
ReferenceOption = Annotated[list[str] | None, typer.Option(
    "--reference", metavar="VARIABLE=LEVEL",
    help="Reference level of a categorical variable, e.g. group=ctrl (repeatable). Default: the level "
    "that sorts first, as R's factor().")]
MinMirnaOption = Annotated[float, typer.Option(help="Keep miRNAs with log (natural) median CPM above this.")]
MinIsomirOption = Annotated[float, typer.Option(help="Keep isomiRs with log (natural) median CPM above this.")]
MinIsomirsOption = Annotated[int, typer.Option(help="Keep miRNAs with at least this many isomiRs.")]
QuietOption = Annotated[bool, typer.Option("--quiet", help="No progress output (results and errors only).")]
LogBaseOption = Annotated[str, typer.Option(
    help="Base of the log fold changes in the tables: e (natural log), 2 (log2: columns log2fc, "
         "log2fc_ci_low, ...) or 10. --delta stays a natural-log threshold.")]
SlopesOption = Annotated[str | None, typer.Option(
    help="nuts: isomiR slopes auto (chosen per miRNA), centred or non-centred (default auto).")]
ExtendOption = Annotated[int | None, typer.Option(
    help="nuts: extra sampling rounds for a fit that misses the convergence rule (default 2).")]
TypesCountsOption = Annotated[str | None, typer.Option(
    "--counts", help="The counts the run was fitted on: their canonical annotation (mirtop, miRge3) "
                     "types the isomiRs of the 'effects by type' section.")]
CanonicalOption = Annotated[Path | None, typer.Option(
    "--canonical", help="Canonical mature sequences (miRBase mature.fa, or a CSV/TSV of miRNA, sequence) "
                        "for the isomiR types; without it or --counts annotations, the most abundant "
                        "sequence of each miRNA (a proxy, said so).")]


def load_data(counts: str, samples: Path | None, library_size: str | None = None, quiet: bool = False):
    """IsomirData from a file, or the bundled example for ``counts == "example"``, read by
    :func:`bayesmir.read_counts` (so the library totals follow the API's rule); warnings
    (e.g. merged sequence spellings) are printed on stderr as ``warning: ...``."""
    import bayesmir
    from bayesmir.data.example import example_path

    if counts == "example":
        if samples is not None:
            raise InputError("--samples cannot be combined with the bundled 'example' data")
        counts, samples = (str(path) for path in example_path())
    with step("reading counts", quiet), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        data = bayesmir.read_counts(counts, samples=samples, library_size=library_size)
    for warning in caught:
        console(stderr=True).print(f"warning: {warning.message}", markup=False, highlight=False)
    return data


def parse_reference(values: list[str] | None) -> dict[str, str] | None:
    """``["group=ctrl", ...]`` as ``{"group": "ctrl", ...}`` (InputError if malformed or repeated)."""
    if not values:
        return None
    reference = {}
    for value in values:
        variable, sep, level = (part.strip() for part in value.partition("="))
        if not sep or not variable or not level:
            raise InputError(f"--reference {value!r}: write VARIABLE=LEVEL, e.g. --reference group=ctrl")
        if variable in reference:
            raise InputError(f"--reference: two levels given for {variable!r}")
        reference[variable] = level
    return reference


def parse_mirnas(value: str | None) -> list[str] | None:
    """``--mirnas``: a comma-separated list, or ``@FILE`` with one name per line."""
    if value is None:
        return None
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise InputError(f"--mirnas {value}: file {path} not found")
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        names = [name.strip() for name in value.split(",")]
    names = [name for name in names if name]
    if not names:
        raise InputError(f"--mirnas {value!r}: no miRNA names")
    return names


def selected_mirnas(data, filtered, names: list[str] | None) -> list[str] | None:
    """``names`` checked against the data: unknown names and names the filters removed are errors."""
    if names is None:
        return None
    unknown = [name for name in names if name not in set(data.mirnas)]
    if unknown:
        raise InputError(f"--mirnas: {', '.join(unknown[:5])} not in {data.source}")
    removed = [name for name in names if name not in set(filtered.mirnas)]
    if removed:
        raise InputError(f"--mirnas: {', '.join(removed[:5])} removed by the filters; lower the thresholds "
                         "or use --no-filter")
    return names


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, width=140)


@contextlib.contextmanager
def step(message: str, quiet: bool = False):
    """A rich spinner on stderr while a step runs (nothing with ``quiet`` or off a terminal)."""
    if quiet:
        yield
        return
    with console(stderr=True).status(f"{message}..."):
        yield


def library_size_lines(data, shown: int = 12) -> str:
    """The library totals T_i per sample and where they came from."""
    sizes = data.library_size
    values = ", ".join(f"{sample} {value:,.0f}" for sample, value in sizes.head(shown).items())
    more = f" and {len(sizes) - shown} more" if len(sizes) > shown else ""
    return f"\nlibrary totals (T_i) from {data.library_size_source}:\n  {values}{more}"


def fit_plan_lines(filtered) -> str:
    """What ``bayesmir fit`` with its defaults will do with ``filtered``: method, normalisation and
    whether the empirical-Bayes shrinkage can be learned (it needs :data:`~bayesmir.shrinkage.MIN_MIRNAS`
    converged miRNAs)."""
    from bayesmir.problem import DEFAULT_NORMALISATION
    from bayesmir.shrinkage import MIN_MIRNAS

    n = len(filtered.mirnas)
    shrinkage = (f"on (priors learned across the {n} miRNAs; --no-shrinkage for fixed priors)" if n >= MIN_MIRNAS
                 else f"off: {n} miRNAs, fewer than the {MIN_MIRNAS} it needs; fixed priors")
    return (f"\nfit defaults: method laplace, normalisation {DEFAULT_NORMALISATION}, full and reduced model\n"
            f"  shrinkage: {shrinkage}\n"
            "  PSIS-LOO: off (usage evidence from the Bayes factor; --loo adds slope_table's elpd_diff)")


def design_lines(data, formula: str, coef: str | None, reference: dict | None) -> str:
    """Groups with their reference level and the coefficients a fit will produce."""
    from bayesmir.design import build_design, reference_levels

    if data.samples.columns.empty:
        return "\ndesign: no sample metadata (give --samples)"
    design = build_design(data.samples, formula, coef, reference)
    levels = reference_levels(data.samples, formula, reference)
    lines = [f"\ndesign {design.formula}:"]
    for variable, levels_of in levels.items():
        counts = data.samples[variable].astype(str).value_counts()
        listed = ", ".join(f"{level} ({counts[level]})" for level in levels_of)
        lines.append(f"  {variable}: {listed}; reference {levels_of[0]}")
    lines.append(f"  coefficients: {', '.join(design.coef_names)}")
    lines.append(f"  coefficient of interest: {design.coef} (isomiR slopes on {', '.join(design.slope_names)})")
    return "\n".join(lines)


def frequentist_record(result) -> dict:
    """What ``compare --refit`` records beside ``frequentist.csv``: the fitted data's SHA-256 and model."""
    from bayesmir.provenance import fitted_data_sha256

    options = result.options
    return {"data_sha256": fitted_data_sha256(result), "formula": options.get("formula"),
            "coef": options.get("coef"), "normalisation": options.get("normalisation")}


def check_frequentist_file(result, path: Path, table) -> None:
    """Refuse frequentist results that were not made from the run's data.

    A file written by ``compare --refit`` has a record beside it (``frequentist.json``) whose
    data SHA-256 and formula must be the run's; any other file (e.g. R output) must share
    miRNAs with the run.
    """
    import json

    record_path = Path(path).with_suffix(".json")
    if record_path.is_file():
        record, ours = json.loads(record_path.read_text()), frequentist_record(result)
        differ = [key for key in ("data_sha256", "formula", "coef") if record.get(key) != ours[key]]
        if differ:
            raise InputError(f"{path}: made from other {' and '.join(differ)} than this run "
                             "(refit with 'bayesmir compare RUN --refit')")
    if "miRNA" in table.columns and not set(table["miRNA"].astype(str)) & set(result.mirnas):
        raise InputError(f"{path}: none of its miRNAs is in this run (other data?)")


def method_options(method: str, family: str, **given) -> dict:
    """The options given on the command line, checked against the method's (InputError if unknown)."""
    from bayesmir.inference import get_method

    options = {key: value for key, value in given.items() if value is not None}
    try:
        get_method(method, family, **options)
    except (TypeError, ValueError) as error:
        raise InputError(f"--method {method}: {error}") from None
    return options
