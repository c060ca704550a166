"""FitResult: posteriors and diagnostics of a run, its tables, and saving/loading.

Tables (failed fits appear with NaN and ``flag = "failed: ..."``, unconverged ones with
``flag = "not converged: ..."``; every column is described in docs/glossary.md):

- :meth:`FitResult.mirna_table`: per miRNA and coefficient, posterior summaries
  (:mod:`bayesmir.summaries`: exact from the Gaussian mixture over the hyperparameter
  design for the nested Laplace method, so independent of the seed, with the integration
  error as ``*_se`` columns; from draws with ArviZ's MCSE for the sampling methods),
  ``lfsr``, ``P(|beta| > delta)``, ``qvalue`` (BH of ``2 * lfsr`` per coefficient, the DE
  call of :mod:`bayesmir.calls`) and ``svalue`` (ashr's s-value, no call made on it).
- :meth:`FitResult.isomir_table`: per isomiR, its own log fold change ``beta_c + b_jc``,
  its deviation ``b_jc`` from the miRNA's, and its baseline share (softmax of the isomiR
  intercept effects: the expected share of the miRNA's counts at the reference levels);
  from draws.
- :meth:`FitResult.slope_table`: evidence for isomiR-specific slopes: ``sd_slope``
  summaries (draws), the PSIS-LOO ``elpd_diff`` of the full minus the reduced model when
  both fits carry a pointwise ELPD (``fit(loo=True)``; these columns are absent otherwise),
  and ``log_bayes_factor`` ``= log p(y | full) - log p(y | reduced)`` with
  its integration SE when both fits carry ``posterior.attrs["log_marginal_likelihood"]``
  (nested Laplace); the usage call of :mod:`bayesmir.calls` is made on it. (A
  Savage-Dickey estimate from a KDE of the ``sd_slope`` draws was removed: on the example it
  was within 0.5 of the marginal-likelihood Bayes factor for 0-3 of 16 miRNAs.)
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from bayesmir import calls, shrinkage
from bayesmir.calls import DEFAULT_DELTA, DEFAULT_LEVEL
from bayesmir.design import Design
from bayesmir.fit_files import StoredPosteriors
from bayesmir.inference.base import DIAGNOSTIC_COLUMNS
from bayesmir.log_base import DEFAULT_LOG_BASE, checked_log_base, in_log_base
from bayesmir.summaries import summary_columns
from bayesmir.table_rows import (
    BAYES_FACTOR_COLUMNS,
    ELPD_COLUMNS,
    coef_names,
    isomir_rows,
    mirna_rows,
    slope_rows,
    slope_terms,
)

#: Default threshold of ``P(sd_slope > delta)`` in :meth:`FitResult.slope_table`.
SLOPE_DELTA = 0.1
DIAGNOSTIC_NUMERIC = ("seconds", "rhat", "ess_bulk", "ess_tail", "divergences", "bfmi", "ess_importance",
                     "pareto_k")


class FitResult:
    """Posteriors and diagnostics of one run of :func:`bayesmir.fit`.

    Attributes
    ----------
    posteriors : dict of str to arviz.InferenceData
        Full-model fits by miRNA (failed fits are absent).
    diagnostics : pandas.DataFrame
        One row per miRNA, columns :data:`~bayesmir.inference.base.DIAGNOSTIC_COLUMNS`.
    posteriors_reduced, diagnostics_reduced
        The same for the reduced model (no slopes), when it was fitted.
    design : Design or None
    mirna_info : pandas.DataFrame
        ``n_isomirs``, ``n_samples`` indexed by miRNA.
    options : dict
        Method, family, seed, priors, method options, package versions.
    filter_report : pandas.DataFrame or None
        Passed through from the data's filters.
    """

    def __init__(
        self, posteriors: dict, diagnostics, posteriors_reduced: dict | None = None,
        diagnostics_reduced=None, design: Design | None = None, mirna_info=None,
        options: dict | None = None, filter_report=None,
    ) -> None:
        self.posteriors = _posterior_mapping(posteriors)
        self.diagnostics = _diagnostics_frame(diagnostics)
        self.posteriors_reduced = _posterior_mapping(posteriors_reduced or {})
        self.diagnostics_reduced = (
            None if diagnostics_reduced is None else _diagnostics_frame(diagnostics_reduced)
        )
        self.design = design
        self.mirna_info = _mirna_info_frame(mirna_info, self.diagnostics)
        self.options = dict(options or {})
        self.filter_report = filter_report
        self.posteriors, note = shrinkage.shrink_result(self)  # empirical-Bayes priors, when the run asks
        if note is not None:
            self.options["shrinkage_note"] = note
        self._cache: dict[tuple, pd.DataFrame] = {}

    def __repr__(self) -> str:
        n = len(self.diagnostics)
        converged = int(self.diagnostics["converged"].sum())
        return (f"FitResult(method={self.options.get('method')!r}, miRNAs={n}, converged={converged}, "
                f"reduced={self.diagnostics_reduced is not None})")

    @property
    def mirnas(self) -> list[str]:
        """miRNAs of the run, in fitting order."""
        return self.diagnostics["miRNA"].tolist()

    def posterior(self, mirna: str, reduced: bool = False) -> az.InferenceData:
        """InferenceData of one miRNA (``KeyError`` naming the reason if absent)."""
        fits = self.posteriors_reduced if reduced else self.posteriors
        if mirna not in fits:
            rows = self.diagnostics.set_index("miRNA")
            reason = rows.loc[mirna, "message"] if mirna in rows.index else "not in this run"
            raise KeyError(f"no posterior for {mirna!r}: {reason}")
        return fits[mirna]

    # ------------------------------------------------------------------ tables
    def mirna_table(self, delta: float | None = None, coefs: list[str] | None = None,
                    level: float | None = None, log_base: str | None = None) -> pd.DataFrame:
        """Per miRNA and coefficient: posterior summaries, lfsr, P(|beta| > delta), qvalue, svalue.

        Exact from the mixture over the hyperparameter design for the nested Laplace method,
        from draws otherwise (:mod:`bayesmir.summaries`); columns in docs/glossary.md.

        Parameters
        ----------
        delta : float, optional
            Threshold of ``P(|beta| > delta)`` (natural-log fold change); default the run's
            ``delta`` (``fit(delta=...)``, log 1.5 unless set). The column is named with it,
            e.g. ``p_abs_gt_0.405``.
        coefs : list of str, optional
            Coefficients to report; default every one but the intercept.
        level : float, optional
            Mass of the equal-tailed (``ci_*``) and highest-density (``hdi_*``) intervals;
            default the run's ``level`` (``fit(level=...)``, 0.95 unless set).
        log_base : {"e", "2", "10"}, optional
            Base of the log fold changes; default the run's ``log_base`` (``"e"`` unless set).
            Other than ``"e"``, the fold-change columns are renamed (``log2fc``, ...;
            :mod:`bayesmir.log_base`).

        Returns
        -------
        pandas.DataFrame
        """
        key = ("mirna", self._delta(delta), tuple(coefs) if coefs else None, self._level(level))
        return in_log_base(self._tables(key)[0], self._log_base(log_base), key[1])

    def isomir_table(self, level: float | None = None, log_base: str | None = None) -> pd.DataFrame:
        """Per isomiR: own log fold change, deviation from the miRNA's, baseline share.

        Returns
        -------
        pandas.DataFrame
            ``miRNA, sequence, coef, logfc_estimate, logfc_sd, logfc_ci_low, logfc_ci_high,
            logfc_lfsr, deviation_estimate, deviation_sd, deviation_ci_low, deviation_ci_high,
            deviation_lfsr, baseline_share_estimate, baseline_share_ci_low,
            baseline_share_ci_high``, then ``converged`` and ``flag``. From draws (their
            Monte Carlo error is that of ``draws``, and varies with the seed). ``level``,
            ``log_base``: as in :meth:`mirna_table`.
        """
        return in_log_base(self._tables(("isomir", self._level(level)))[0], self._log_base(log_base))

    def slope_table(self, delta: float = SLOPE_DELTA, level: float | None = None,
                    log_base: str | None = None) -> pd.DataFrame:
        """Evidence for isomiR-specific slopes per miRNA (see the module docstring).

        Parameters
        ----------
        delta : float
            Threshold of ``P(sd_slope > delta)``, column ``p_sd_slope_gt_<delta>`` (3 decimals).
        level : float, optional
            Mass of the equal-tailed interval of ``sd_slope``; default the run's ``level``.
        log_base : {"e", "2", "10"}, optional
            As in :meth:`mirna_table` (``sd_slope`` is on the log fold-change scale).

        Returns
        -------
        pandas.DataFrame
            ``miRNA, term, sd_slope_median, sd_slope_ci_low, sd_slope_ci_high,
            p_sd_slope_gt_<delta>, [elpd_diff, elpd_diff_se,] log_bayes_factor,
            log_bayes_factor_se``, then ``converged`` (both fits) and ``flag``; the ELPD
            columns when the fits carry a pointwise ELPD (``fit(loo=True)``).
        """
        table = self._tables(("slope", float(delta), self._level(level)))[0]
        return in_log_base(table, self._log_base(log_base), delta)

    def _tables(self, *keys: tuple) -> list[pd.DataFrame]:
        """The tables of ``keys`` (``(name, *arguments)``), built in one pass over the miRNAs.

        Each fit is looked up once per pass (read from the run folder when the result has
        one) and dropped before the next, so memory does not grow with the number of miRNAs.
        Tables are computed once per argument set and returned as copies.
        """
        missing = [key for key in dict.fromkeys(keys) if key not in self._cache]
        if missing:
            rows: dict[tuple, list] = {key: [] for key in missing}
            default = None
            for mirna in self.mirnas:
                idata = self.posteriors.get(mirna)
                for key in missing:
                    if key[0] == "mirna":
                        if not key[2] and idata is None and default is None:
                            default = self._default_coefs()
                        coefs = list(key[2] or (coef_names(idata) if idata is not None else default))
                        rows[key].extend(mirna_rows(mirna, idata, coefs, level=key[3], delta=key[1]))
                    elif key[0] == "isomir":
                        rows[key].extend(isomir_rows(mirna, idata, (1 - key[1]) / 2))
                    else:
                        reduced = self.posteriors_reduced.get(mirna) if slope_terms(idata) else None
                        rows[key].extend(slope_rows(mirna, idata, reduced, key[1], (1 - key[2]) / 2))
            for key in missing:
                self._cache[key] = self._finished(key, rows[key])
        return [self._cache[key].copy() for key in keys]

    def _finished(self, key: tuple, rows: list[dict]) -> pd.DataFrame:
        """The table ``key`` from its per-miRNA rows: columns in order, run-wide columns, flags."""
        if key[0] == "mirna":
            table = pd.DataFrame(rows).reindex(columns=["miRNA", "coef", *summary_columns(key[1])])
            by_coef = table.groupby("coef", dropna=False)["lfsr"]
            table["qvalue"] = by_coef.transform(calls.bayes_qvalues)
            table["svalue"] = by_coef.transform(calls.svalues)
            return self._with_flags(table)
        if key[0] == "isomir":
            return self._with_flags(pd.DataFrame(rows), extra=False)
        elpd = ELPD_COLUMNS if any(ELPD_COLUMNS[0] in row for row in rows) else ()  # fit(loo=True)
        columns = ["miRNA", "term", "sd_slope_median", "sd_slope_ci_low", "sd_slope_ci_high",
                   f"p_sd_slope_gt_{key[1]:.3f}", *elpd, *BAYES_FACTOR_COLUMNS]
        return self._with_flags(pd.DataFrame(rows).reindex(columns=columns), extra=False, both_models=True)

    def _delta(self, delta: float | None) -> float:
        """``delta`` or the run's (``options["delta"]``), else :data:`DEFAULT_DELTA`."""
        return float(self.options.get("delta", DEFAULT_DELTA) if delta is None else delta)

    def _level(self, level: float | None) -> float:
        """``level`` or the run's (``options["level"]``), else :data:`DEFAULT_LEVEL`."""
        return calls.checked_level(self.options.get("level", DEFAULT_LEVEL) if level is None else level)

    def _log_base(self, log_base: str | None) -> str:
        """``log_base`` or the run's (``options["log_base"]``), else natural log."""
        return checked_log_base(self.options.get("log_base", DEFAULT_LOG_BASE) if log_base is None else log_base)

    def _default_coefs(self) -> list[str | None]:
        """Non-intercept coefficients of the design (or of any fit); ``[None]`` if unknown."""
        if self.design is not None:
            return [c for c in self.design.coef_names if c != "Intercept"]
        for idata in self.posteriors.values():
            return coef_names(idata)
        return [None]

    def _with_flags(self, table: pd.DataFrame, extra: bool = True, both_models: bool = False):
        """Add sizes, ``converged``, ``flag`` (and diagnostics when ``extra``) per miRNA."""
        diagnostics = self.diagnostics.set_index("miRNA")
        converged = diagnostics["converged"].astype(bool)
        flag = diagnostics.apply(_flag, axis=1)
        if both_models and self.diagnostics_reduced is not None:
            reduced = self.diagnostics_reduced.set_index("miRNA")
            converged = converged & reduced["converged"].reindex(converged.index, fill_value=False)
            reduced_flag = reduced.apply(_flag, axis=1).reindex(flag.index, fill_value="")
            flag = flag.str.cat(np.where(reduced_flag != "", "reduced " + reduced_flag, ""), sep="; ")
            flag = flag.str.strip("; ")
        info = self.mirna_info.reindex(table["miRNA"])
        if extra:
            table = table.assign(n_isomirs=info["n_isomirs"].to_numpy(), n_samples=info["n_samples"].to_numpy())
        table = table.assign(
            converged=converged.reindex(table["miRNA"]).to_numpy(),
            flag=flag.reindex(table["miRNA"]).to_numpy(),
        )
        if extra:
            more = [c for c in DIAGNOSTIC_COLUMNS if c not in ("miRNA", "converged")]
            table = table.join(diagnostics[more], on="miRNA")
        return table.reset_index(drop=True)

    # ------------------------------------------------------------------ saving
    def save(self, path: str | Path | None = None) -> Path:
        """Write the run to a run folder (see :mod:`bayesmir.run_folder`; read it with :func:`load_fit`).

        Parameters
        ----------
        path : str or Path, optional
            Run folder: new, empty or an earlier run (replaced; files bayesmir did not write are
            kept); default ``models/bayesmir-<method>-<timestamp>``.

        Returns
        -------
        Path
            The run folder.
        """
        from bayesmir.run_folder import save

        if path is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            path = Path("models") / f"bayesmir-{self.options.get('method', 'fit')}-{stamp}"
        return save(self, path)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The default tables of the run, as :meth:`save` writes them (``<name>_table.csv``).

        Returns
        -------
        dict
            ``"mirna"``, ``"isomir"`` and ``"slope"`` tables (failed fits included, flagged);
            empty when the run has no miRNA at all.
        """
        if self.diagnostics.empty:
            return {}
        level = self._level(None)
        mirna, isomir, slope = self._tables(("mirna", self._delta(None), None, level), ("isomir", level),
                                            ("slope", SLOPE_DELTA, level))
        base = self._log_base(None)
        return {"mirna": in_log_base(mirna, base, self._delta(None)), "isomir": in_log_base(isomir, base),
                "slope": in_log_base(slope, base, SLOPE_DELTA)}


def load_fit(path: str | Path) -> FitResult:
    """Read a run folder written by :func:`bayesmir.fit` or :meth:`FitResult.save`
    (:func:`bayesmir.run_folder.load_fit`)."""
    from bayesmir.run_folder import load_fit as load

    return load(path)


# ---------------------------------------------------------------------- flags, frames and files
def _flag(row: pd.Series) -> str:
    if bool(row["converged"]):
        return ""
    message = str(row["message"] or "")
    return message if message.startswith("failed") else f"not converged: {message}"

def _posterior_mapping(posteriors):
    """A run folder's fits stay where they are (read when looked up); anything else becomes a dict."""
    posteriors = getattr(posteriors, "fits", posteriors)  # shrunk fits: shrunk again by FitResult
    return posteriors if isinstance(posteriors, StoredPosteriors) else dict(posteriors)


def _diagnostics_frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows).reindex(columns=list(DIAGNOSTIC_COLUMNS))
    frame["converged"] = frame["converged"].fillna(False).astype(bool)
    frame["message"] = frame["message"].fillna("").astype(str)
    for column in DIAGNOSTIC_NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame.reset_index(drop=True)


def _read_diagnostics(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, float_precision="round_trip", keep_default_na=False,
                        na_values={c: [""] for c in (*DIAGNOSTIC_NUMERIC, "optimizer_status")})
    return _diagnostics_frame(frame)


def _mirna_info_frame(info, diagnostics: pd.DataFrame) -> pd.DataFrame:
    if isinstance(info, pd.DataFrame):
        frame = info.copy()
    else:
        frame = pd.DataFrame.from_dict(info or {}, orient="index", columns=["n_isomirs", "n_samples"])
    frame = frame.reindex(diagnostics["miRNA"]).reindex(columns=["n_isomirs", "n_samples"])
    frame.index.name = "miRNA"
    return frame
