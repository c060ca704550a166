"""report(): one self-contained HTML file from a :class:`~bayesmir.results.FitResult`.

Sections: run summary, diagnostics of every miRNA (worst first), results (volcano, MA
plot, top miRNAs), one panel per miRNA for the ``top`` by lfsr and every flagged fit
(ArviZ rank/density plots, isomiR forest plot, posterior-predictive check, slope SD
against its prior), isomiR effects by type (:mod:`~bayesmir.reporting.types_section`) and,
when frequentist results are given, a comparison. Tables and figures are in natural log. Figures are
embedded as base64 PNG; the only script is a few lines that sort tables on click.
"""

from __future__ import annotations

import base64
import io
import math
import time
from datetime import datetime
from pathlib import Path

import jinja2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from markupsafe import Markup

from bayesmir import calls
from bayesmir.log_base import in_natural_log
from bayesmir.reporting import comparison, plots
from bayesmir.reporting.types_section import types_context

TEMPLATE = "report.html.j2"
DPI = 80
DIAGNOSTIC_VIEW = ["miRNA", "converged", "rhat", "ess_bulk", "ess_tail", "divergences", "ess_importance", "pareto_k",
                   "seconds", "message"]
TOP_VIEW = ["miRNA", "coef", "estimate", "sd", "ci_low", "ci_high", "lfsr", "qvalue", "n_isomirs",
            "converged", "flag"]


def report(fit, path: str | Path, frequentist: pd.DataFrame | None = None, top: int = 10, data=None,
           canonical=None) -> Path:
    """Write the HTML diagnostic report of a run.

    Parameters
    ----------
    fit : FitResult
        The run (from :func:`bayesmir.fit` or :func:`bayesmir.load_fit`).
    path : str or Path
        Output file (parent folders are created).
    frequentist : pandas.DataFrame, optional
        Frequentist results with the columns of docs/architecture.md (``miRNA, coef,
        estimate, se, ci_low, ci_high, wald_p, converged``; ``lrt_p_mixture`` for the
        slope comparison). Adds the Bayesian-versus-frequentist section.
    top : int
        Number of miRNAs (smallest lfsr) with their own panel; flagged fits always get one.
    data, canonical : optional
        The data fitted and canonical sequences (mapping or miRBase ``mature.fa``) for the
        "isomiR effects by type" section (:mod:`bayesmir.reporting.types_section`).

    Returns
    -------
    Path
        The report file.

    Raises
    ------
    InputError
        ``frequentist`` lacks the contract columns.
    """
    start = time.perf_counter()
    if frequentist is not None:
        frequentist = comparison.check_frequentist(frequentist)
    with plots.agg_backend():
        context = report_context(fit, frequentist, top)
        context["types"] = types_context(fit, data, canonical)
    context["seconds_report"] = f"{time.perf_counter() - start:.1f}"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_template().render(**context), encoding="utf-8")
    return path


def report_context(fit, frequentist: pd.DataFrame | None, top: int) -> dict:
    """Everything the template shows (figures already encoded).

    The run's tables are built once (one pass over its fits) and shared by every section.
    """
    # the report is in natural log whatever the run's log_base
    tables = {name: in_natural_log(table) for name, table in fit.tables().items()}
    table = coefficient_table(fit, tables.get("mirna"))
    isomirs = tables["isomir"] if tables else in_natural_log(fit.isomir_table())
    return {
        "title": f"bayesmir report: {fit.options.get('method', '?')} fit of {len(fit.diagnostics)} miRNAs",
        "created": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "summary": run_summary(fit),
        "filter_report": _filter_table(fit.filter_report),
        "priors": fit.options.get("priors", {}),
        "versions": fit.options.get("versions", {}),
        "method_options": fit.options.get("method_options", {}),
        "diagnostics": _html_table(diagnostics_overview(fit)),
        "n_flagged": int((~fit.diagnostics["converged"]).sum()),
        "results": results_section(fit, table),
        "mirnas": [mirna_panel(fit, table, isomirs, name, reason)
                   for name, reason in selected_mirnas(fit, table, top)],
        "comparison": None if frequentist is None else comparison_section(fit, table, frequentist, tables),
    }


def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("bayesmir.reporting", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    return environment.get_template(TEMPLATE)


def coefficient_table(fit, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """:meth:`FitResult.mirna_table` (or ``table``, the same already built) for the coefficient of interest only."""
    table = in_natural_log(fit.mirna_table()) if table is None else table
    coef = fit.options.get("coef") or (fit.design.coef if fit.design is not None else None)
    if coef is not None and (table["coef"] == coef).any():
        table = table[table["coef"].isin([coef]) | table["coef"].isna()]
    else:
        table = table.drop_duplicates("miRNA")
    return table.reset_index(drop=True)


def run_summary(fit) -> dict[str, str]:
    """Label -> value pairs: data sizes, model, method, time."""
    info = fit.mirna_info
    diagnostics = fit.diagnostics
    seconds = float(np.nansum(diagnostics["seconds"]))
    if fit.diagnostics_reduced is not None:
        seconds += float(np.nansum(fit.diagnostics_reduced["seconds"]))
    options = fit.options
    return {
        "samples": _count(info["n_samples"].max()),
        "groups": design_groups(fit),
        "miRNAs": f"{len(diagnostics)} ({int(diagnostics['converged'].sum())} converged)",
        "isomiRs": _count(info["n_isomirs"].sum()),
        "formula": str(options.get("formula") or "?"),
        "coefficient": str(options.get("coef") or "?"),
        "isomiR-specific slopes": str(options.get("random_slope", "?")),
        "family": str(options.get("family", "?")),
        "method": str(options.get("method", "?")) + (" (experimental)" if options.get("experimental") else ""),
        "reduced model fitted": str(options.get("reduced", "?")),
        "normalisation": str(options.get("normalisation") or "?"),
        "seed": str(options.get("seed", "?")),
        "fitting time": f"{seconds:.1f} s (sum over miRNAs)",
    }


def _count(value) -> str:
    return "?" if value is None or (isinstance(value, float) and math.isnan(value)) else str(int(value))


def design_groups(fit) -> str:
    """Sample counts per distinct row of the fixed-effects design (the groups for ``~ group``)."""
    if fit.design is None:
        return "?"
    X = np.asarray(fit.design.X)
    rows, counts = np.unique(X, axis=0, return_counts=True)
    names = fit.design.coef_names
    labels = []
    for row, count in zip(rows, counts):
        active = [n for n, v in zip(names, row) if n != "Intercept" and v != 0]
        labels.append(f"{' + '.join(active) or 'reference'}: {count}")
    return f"{len(rows)} (" + "; ".join(labels) + ")" if len(rows) <= 12 else str(len(rows))


def diagnostics_overview(fit) -> pd.DataFrame:
    """Every miRNA's diagnostics, worst first: not converged, then by R-hat, then Pareto k."""
    frame = fit.diagnostics.reindex(columns=DIAGNOSTIC_VIEW)
    return frame.sort_values(["converged", "rhat", "pareto_k"], ascending=[True, False, False],
                             na_position="last", kind="stable")


def mean_log_cpm(fit) -> pd.Series:
    """Per miRNA: mean over samples of log2(1 + counts per million of the offset's library)."""
    values = {}
    for mirna, idata in fit.posteriors.items():
        if "observed_data" not in idata.groups() or "constant_data" not in idata.groups():
            continue
        total = idata.observed_data["count"].sum("isomir").values.astype(float)
        library = np.exp(idata.constant_data["offset"].values) * 1e4
        values[mirna] = float(np.mean(np.log2(1 + total / library * 1e6)))
    return pd.Series(values, dtype=float)


def results_section(fit, table: pd.DataFrame) -> dict:
    """Volcano and MA plots and the top of the miRNA table."""
    ordered = by_lfsr(table)
    abundance = mean_log_cpm(fit)
    return {
        "volcano": rendered(lambda: plots.volcano_plot(table)),
        "ma": rendered(lambda: plots.ma_plot(table, abundance)) if len(abundance) else None,
        "n_de": calls.count_de(table),
        "top_table": _html_table(ordered.reindex(columns=TOP_VIEW).head(max(30, len(ordered) // 4))),
    }


def by_lfsr(table: pd.DataFrame) -> pd.DataFrame:
    """Rows by increasing lfsr, ties (e.g. lfsr = 0) broken by decreasing ``|estimate|``."""
    order = table.assign(_size=-table["estimate"].abs())
    order = order.sort_values(["lfsr", "_size"], na_position="last", kind="stable")
    return order.drop(columns="_size")


def selected_mirnas(fit, table: pd.DataFrame, top: int) -> list[tuple[str, str]]:
    """``(miRNA, reason)`` for the ``top`` smallest lfsr, then every flagged fit."""
    ordered = by_lfsr(table.dropna(subset=["lfsr"]))["miRNA"].tolist()
    chosen = {name: f"top {top} by lfsr" for name in ordered[:top]}
    for _, row in fit.diagnostics.iterrows():
        if not row["converged"]:
            note = f"flagged: {row['message']}" if row["message"] else "flagged: not converged"
            chosen[row["miRNA"]] = (chosen[row["miRNA"]] + "; " + note) if row["miRNA"] in chosen else note
    return list(chosen.items())


def mirna_panel(fit, table: pd.DataFrame, isomirs: pd.DataFrame, mirna: str, reason: str) -> dict:
    """Figures and key numbers of one miRNA (only the message when the fit failed)."""
    panel = {"name": mirna, "reason": reason, "figures": [], "facts": {}}
    idata = fit.posteriors.get(mirna)
    if idata is None:
        return panel
    row = table.set_index("miRNA").loc[mirna]
    panel["facts"] = {"posterior mean logFC": f"{row['estimate']:.3g}",
                      "95% interval": f"[{row['ci_low']:.3g}, {row['ci_high']:.3g}]",
                      "lfsr": f"{row['lfsr']:.3g}", "q-value": f"{row['qvalue']:.3g}"}
    figures = panel["figures"]
    _add_figure(figures, "posterior draws", lambda: plots.chain_plot(idata))
    isomirs = isomirs[(isomirs["miRNA"] == mirna) & (isomirs["coef"] == row["coef"])]
    if len(isomirs):
        _add_figure(figures, "isomiR forest", lambda: plots.isomir_forest_plot(isomirs, row))
    if "observed_data" in idata.groups() and "constant_data" in idata.groups():
        family = idata.posterior.attrs.get("family", fit.options.get("family", "nb"))
        _add_figure(figures, "posterior predictive check",
                    lambda: plots.ppc_plot(idata, family, seed=int(fit.options.get("seed", 0))))
    scale = float(fit.options.get("priors", {}).get("sd_slope_scale", 1.0))
    _add_figure(figures, "slope SD: posterior vs prior", lambda: plots.sd_slope_plot(idata, scale))
    return panel


def figure_uri(figure) -> str:
    """PNG ``data:`` URI of a matplotlib ``figure``; the figure is closed."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def rendered(make) -> str | None:
    """:func:`figure_uri` of the figure ``make()`` returns (``None`` for ``None``).

    Every figure opened meanwhile is closed, also when ``make`` fails half-way.
    """
    before = set(plt.get_fignums())
    try:
        figure = make()
        return None if figure is None else figure_uri(figure)
    finally:
        for number in set(plt.get_fignums()) - before:
            plt.close(number)


def _add_figure(figures: list, caption: str, make) -> None:
    """Append ``{caption, uri}`` (or ``{caption, error}`` when the figure cannot be drawn)."""
    try:
        uri = rendered(make)
    except Exception as error:  # noqa: BLE001 - one bad figure must not lose the report
        figures.append({"caption": caption, "error": f"{type(error).__name__}: {error}"})
        return
    if uri is not None:
        figures.append({"caption": caption, "uri": uri})


def comparison_section(fit, table: pd.DataFrame, frequentist: pd.DataFrame, tables: dict | None = None) -> dict:
    """Estimate scatter, slope evidence against LRT p, and the list of disagreements."""
    merged = comparison.merged_table(fit, frequentist, coef=str(table["coef"].iloc[0]) if len(table) else None,
                                     tables=tables)
    slope_plot = None
    if merged["lrt_p"].notna().any() and merged["log_bayes_factor"].notna().any():
        slope_plot = rendered(lambda: plots.slope_evidence_plot(merged))
    return {
        "n_merged": len(merged),
        "estimates": rendered(lambda: plots.estimate_scatter(merged)) if len(merged) else None,
        "slopes": slope_plot,
        "disagreements": _html_table(comparison.disagreements(merged)),
        "table": _html_table(merged),
    }


def _filter_table(frame) -> str | None:
    """The filter report as HTML (its index shown only when it carries names)."""
    if not isinstance(frame, pd.DataFrame):
        return None
    return _html_table(frame, index=not isinstance(frame.index, pd.RangeIndex) and frame.index.dtype == object)


def _html_table(frame: pd.DataFrame | None, index: bool = False) -> str | None:
    """Sortable HTML table, numbers to 4 significant digits (marked safe for the template)."""
    if frame is None:
        return None
    html = frame.to_html(index=index, classes="sortable", border=0, na_rep="",
                         float_format=lambda x: f"{x:.4g}", escape=True)
    return Markup(html)
