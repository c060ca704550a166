"""FitResult: posteriors and diagnostics of a run, its tables, and saving/loading.

Tables (all computed from posterior draws, so every method that returns draws fills
them; failed fits appear with NaN and ``flag = "failed: ..."``, unconverged ones with
``flag = "not converged: ..."``):

- :meth:`FitResult.mirna_table`: per miRNA and coefficient, posterior summaries, the
  local false sign rate ``lfsr = min(P(beta >= 0), P(beta <= 0))``, ``P(|beta| > delta)``
  ``qvalue``: Benjamini-Hochberg adjustment, per coefficient across miRNAs, of the
  posterior two-sided tail probability ``2 * lfsr`` (equal to the two-sided Wald p-value
  for a Gaussian posterior under a flat prior), so ``qvalue < 0.05`` calls behave like
  DESeq2's ``padj < 0.05``; and ``svalue``: ashr's s-value, the running mean of the sorted
  lfsr (a Bayesian false *sign* rate; it calls more, since under a continuous prior an
  effect of exactly 0 has no mass, and on the shared simulation it called 26 of 80 null
  miRNAs at 0.05 where ``qvalue`` called 5).
- :meth:`FitResult.isomir_table`: per isomiR, its own log fold change ``beta_c + b_jc``,
  its deviation ``b_jc`` from the miRNA's, and its baseline share (softmax of the isomiR
  intercept effects: the expected share of the miRNA's counts at the reference levels).
- :meth:`FitResult.slope_table`: evidence for isomiR-specific slopes.

Evidence columns of :meth:`FitResult.slope_table` and which methods fill them:

- ``sd_slope_median``, ``sd_slope_eti_low/high``, ``p_sd_slope_gt_delta``: every method.
- ``elpd_diff``, ``elpd_diff_se``: PSIS-LOO ELPD of the full minus the reduced model
  (positive favours slopes) when both fits have draws and the run had ``reduced=True``
  (NUTS and any sampling method; the pointwise likelihood is recomputed from
  ``constant_data`` if the ``log_likelihood`` group is absent).
- ``log_bayes_factor``: ``log p(y | full) - log p(y | reduced)`` (positive favours slopes)
  when both fits carry ``posterior.attrs["log_marginal_likelihood"]`` — the convention
  for methods with a marginal-likelihood estimate (nested Laplace).
- ``log_bf_savage_dickey``: Savage-Dickey log Bayes factor of the full model against
  ``sd_slope = 0`` from the full fit alone, ``log prior density(0) - log posterior
  density(0)``, the posterior density at the boundary from a reflected Gaussian KDE of
  the draws (rough; one slope term only). Filled for every method with draws.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
from scipy import stats

from bayesmir.design import Design
from bayesmir.fdr import benjamini_hochberg
from bayesmir.inference.base import DIAGNOSTIC_COLUMNS, problem_from_idata

DIAGNOSTIC_NUMERIC = ("seconds", "rhat", "ess_bulk", "ess_tail", "divergences", "bfmi", "pareto_k")


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
        self.posteriors = dict(posteriors)
        self.diagnostics = _diagnostics_frame(diagnostics)
        self.posteriors_reduced = dict(posteriors_reduced or {})
        self.diagnostics_reduced = (
            None if diagnostics_reduced is None else _diagnostics_frame(diagnostics_reduced)
        )
        self.design = design
        self.mirna_info = _mirna_info_frame(mirna_info, self.diagnostics)
        self.options = dict(options or {})
        self.filter_report = filter_report

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
    def mirna_table(self, delta: float = 0.0, coefs: list[str] | None = None, hdi_prob: float = 0.95):
        """Per miRNA and coefficient: posterior summaries, lfsr, P(|beta| > delta), q-value.

        Parameters
        ----------
        delta : float
            Threshold of ``p_abs_gt_delta`` (natural-log fold change).
        coefs : list of str, optional
            Coefficients to report; default every one but the intercept.
        hdi_prob : float
            Mass of the equal-tailed and highest-density intervals.

        Returns
        -------
        pandas.DataFrame
        """
        rows = []
        default = coefs or self._default_coefs()
        for mirna in self.mirnas:
            idata = self.posteriors.get(mirna)
            names = coefs or (self._coef_names(idata) if idata is not None else default)
            for coef in names:
                draws = None if idata is None else _draws(idata.posterior["beta"].sel(coef=coef))
                rows.append({"miRNA": mirna, "coef": coef, **summarise_draws(draws, delta, hdi_prob)})
        table = pd.DataFrame(rows)
        by_coef = table.groupby("coef", dropna=False)["lfsr"]
        table["qvalue"] = by_coef.transform(lambda lfsr: benjamini_hochberg(np.minimum(2 * lfsr, 1.0)))
        table["svalue"] = by_coef.transform(qvalues_from_lfsr)
        front = ["miRNA", "coef", "mean", "sd", "median", "eti_low", "eti_high", "hdi_low", "hdi_high",
                 "lfsr", "p_abs_gt_delta", "qvalue", "svalue"]
        return self._with_flags(table[front])

    def isomir_table(self, hdi_prob: float = 0.95) -> pd.DataFrame:
        """Per isomiR: own log fold change, deviation from the miRNA's, baseline share.

        Returns
        -------
        pandas.DataFrame
            ``miRNA, sequence, coef, logfc_mean, logfc_sd, logfc_eti_low, logfc_eti_high,
            logfc_lfsr, deviation_mean, deviation_sd, deviation_eti_low, deviation_eti_high,
            deviation_lfsr, baseline_share_mean, baseline_share_eti_low,
            baseline_share_eti_high``, then ``converged`` and ``flag``.
        """
        tail = (1 - hdi_prob) / 2
        rows = []
        for mirna in self.mirnas:
            idata = self.posteriors.get(mirna)
            if idata is None:
                rows.append({"miRNA": mirna})
                continue
            rows.extend(_isomir_rows(mirna, idata.posterior, self._coef_names(idata), tail))
        return self._with_flags(pd.DataFrame(rows), extra=False)

    def slope_table(self, delta: float = 0.1, hdi_prob: float = 0.95) -> pd.DataFrame:
        """Evidence for isomiR-specific slopes per miRNA (see the module docstring).

        Parameters
        ----------
        delta : float
            Threshold of ``p_sd_slope_gt_delta``.
        hdi_prob : float
            Mass of the equal-tailed interval of ``sd_slope``.

        Returns
        -------
        pandas.DataFrame
            ``miRNA, term, sd_slope_median, sd_slope_eti_low, sd_slope_eti_high,
            p_sd_slope_gt_delta, elpd_diff, elpd_diff_se, log_bayes_factor,
            log_bf_savage_dickey``, then ``converged`` (both fits) and ``flag``.
        """
        tail = (1 - hdi_prob) / 2
        scale = self.options.get("priors", {}).get("sd_slope_scale", 1.0)
        rows = []
        for mirna in self.mirnas:
            full = self.posteriors.get(mirna)
            terms = [] if full is None else [str(t) for t in full.posterior["re_term"].values[1:]]
            reduced = self.posteriors_reduced.get(mirna)
            comparison = _model_comparison(full, reduced) if terms else {}
            for term in terms or [None]:
                row = {"miRNA": mirna, "term": term}
                if term is not None:
                    sd = _draws(full.posterior["sd_isomir"].sel(re_term=term))
                    row.update(
                        sd_slope_median=float(np.median(sd)),
                        sd_slope_eti_low=float(np.quantile(sd, tail)),
                        sd_slope_eti_high=float(np.quantile(sd, 1 - tail)),
                        p_sd_slope_gt_delta=float(np.mean(sd > delta)),
                        log_bf_savage_dickey=savage_dickey_log_bf(sd, scale) if len(terms) == 1 else math.nan,
                        **comparison,
                    )
                rows.append(row)
        columns = ["miRNA", "term", "sd_slope_median", "sd_slope_eti_low", "sd_slope_eti_high",
                   "p_sd_slope_gt_delta", "elpd_diff", "elpd_diff_se", "log_bayes_factor",
                   "log_bf_savage_dickey"]
        table = pd.DataFrame(rows).reindex(columns=columns)
        return self._with_flags(table, extra=False, both_models=True)

    def _default_coefs(self) -> list[str | None]:
        """Non-intercept coefficients of the design (or of any fit); ``[None]`` if unknown."""
        if self.design is not None:
            return [c for c in self.design.coef_names if c != "Intercept"]
        for idata in self.posteriors.values():
            return self._coef_names(idata)
        return [None]

    def _coef_names(self, idata) -> list[str]:
        return [str(c) for c in idata.posterior["coef"].values if str(c) != "Intercept"]

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
        return {"mirna": self.mirna_table(), "isomir": self.isomir_table(), "slope": self.slope_table()}


def load_fit(path: str | Path) -> FitResult:
    """Read a run folder written by :func:`bayesmir.fit` or :meth:`FitResult.save`
    (:func:`bayesmir.run_folder.load_fit`)."""
    from bayesmir.run_folder import load_fit as load

    return load(path)


# ---------------------------------------------------------------------- statistics
def summarise_draws(draws: np.ndarray | None, delta: float = 0.0, hdi_prob: float = 0.95) -> dict:
    """Mean, sd, median, equal-tailed and HDI intervals, lfsr and P(|x| > delta) of draws."""
    keys = ["mean", "sd", "median", "eti_low", "eti_high", "hdi_low", "hdi_high", "lfsr", "p_abs_gt_delta"]
    if draws is None or draws.size == 0:
        return dict.fromkeys(keys, math.nan)
    tail = (1 - hdi_prob) / 2
    hdi = az.hdi(draws, hdi_prob=hdi_prob)
    return {
        "mean": float(draws.mean()), "sd": float(draws.std(ddof=1)), "median": float(np.median(draws)),
        "eti_low": float(np.quantile(draws, tail)), "eti_high": float(np.quantile(draws, 1 - tail)),
        "hdi_low": float(hdi[0]), "hdi_high": float(hdi[1]),
        "lfsr": lfsr(draws), "p_abs_gt_delta": float(np.mean(np.abs(draws) > delta)),
    }


def lfsr(draws: np.ndarray) -> float:
    """Local false sign rate ``min(P(x >= 0), P(x <= 0))`` estimated from draws."""
    return float(min(np.mean(draws >= 0), np.mean(draws <= 0)))


def qvalues_from_lfsr(values) -> np.ndarray:
    """Bayesian FDR of rejecting all hypotheses with lfsr at most each one's (ashr's s-value).

    The running mean of the sorted lfsr, mapped back to the input order; NaN stay NaN.
    """
    values = np.asarray(values, dtype=float)
    result = np.full(values.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(values[finite], kind="stable")]
    result[order] = np.cumsum(values[order]) / np.arange(1, order.size + 1)
    return result


def savage_dickey_log_bf(sd_draws: np.ndarray, prior_scale: float) -> float:
    """Log Bayes factor for ``sd > 0`` against ``sd = 0`` (Savage-Dickey density ratio).

    Half-normal prior density at 0 over the posterior density at 0, the latter from a
    Gaussian KDE of the draws reflected about 0 (boundary correction).
    """
    sd_draws = np.asarray(sd_draws, dtype=float)
    prior_at_zero = math.sqrt(2 / math.pi) / prior_scale
    kde = stats.gaussian_kde(np.concatenate([sd_draws, -sd_draws]))
    posterior_at_zero = 2 * float(kde(0.0)[0])
    return math.log(prior_at_zero) - math.log(max(posterior_at_zero, 1e-300))


def _draws(array) -> np.ndarray:
    return np.asarray(array.values, dtype=float).ravel()


def _isomir_rows(mirna: str, posterior, coef_names: list[str], tail: float) -> list[dict]:
    """Rows of :meth:`FitResult.isomir_table` for one miRNA."""
    effect = posterior["isomir_effect"].stack(s=("chain", "draw")).transpose("isomir", "re_term", "s")
    terms = [str(t) for t in posterior["re_term"].values]
    slopes = [t for t in terms[1:] if t in coef_names] or coef_names[:1]
    levels = effect.sel(re_term=terms[0]).values
    share = np.exp(levels - levels.max(axis=0))
    share /= share.sum(axis=0)
    rows = []
    for coef in slopes:
        beta = posterior["beta"].sel(coef=coef).stack(s=("chain", "draw")).values
        for j, sequence in enumerate(posterior["isomir"].values):
            deviation = effect.sel(re_term=coef).values[j] if coef in terms else np.zeros_like(beta)
            rows.append({
                "miRNA": mirna, "sequence": str(sequence), "coef": coef,
                **_interval(beta + deviation, "logfc", tail), "logfc_lfsr": lfsr(beta + deviation),
                **_interval(deviation, "deviation", tail), "deviation_lfsr": lfsr(deviation),
                "baseline_share_mean": float(share[j].mean()),
                "baseline_share_eti_low": float(np.quantile(share[j], tail)),
                "baseline_share_eti_high": float(np.quantile(share[j], 1 - tail)),
            })
    return rows


def _interval(draws: np.ndarray, prefix: str, tail: float) -> dict:
    return {f"{prefix}_mean": float(draws.mean()), f"{prefix}_sd": float(draws.std(ddof=1)),
            f"{prefix}_eti_low": float(np.quantile(draws, tail)),
            f"{prefix}_eti_high": float(np.quantile(draws, 1 - tail))}


def _model_comparison(full, reduced) -> dict:
    """ELPD difference (PSIS-LOO) and log Bayes factor of full vs reduced, NaN when unavailable."""
    result = {"elpd_diff": math.nan, "elpd_diff_se": math.nan, "log_bayes_factor": math.nan}
    if full is None or reduced is None:
        return result
    lml = [fit.posterior.attrs.get("log_marginal_likelihood") for fit in (full, reduced)]
    if all(value is not None for value in lml):
        result["log_bayes_factor"] = float(lml[0]) - float(lml[1])
    try:
        pointwise = [_pointwise_elpd(fit) for fit in (full, reduced)]
    except (KeyError, ValueError, AttributeError):
        return result
    difference = pointwise[0] - pointwise[1]
    result["elpd_diff"] = float(difference.sum())
    result["elpd_diff_se"] = float(math.sqrt(difference.size * difference.var()))
    return result


def _pointwise_elpd(idata: az.InferenceData) -> np.ndarray:
    """PSIS-LOO pointwise ELPD, recomputing the log-likelihood from constant_data if needed."""
    import warnings

    if "log_likelihood" not in idata.groups():
        from bayesmir.model import pointwise_log_likelihood

        problem = problem_from_idata(idata)
        family = idata.posterior.attrs.get("family", "nb")
        loglik = pointwise_log_likelihood(idata.posterior, problem, family).to_dataset()
        idata = az.InferenceData(posterior=idata.posterior, log_likelihood=loglik)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = az.loo(idata, pointwise=True)
    return np.asarray(loo.loo_i.values, dtype=float).ravel()


def _flag(row: pd.Series) -> str:
    if bool(row["converged"]):
        return ""
    message = str(row["message"] or "")
    return message if message.startswith("failed") else f"not converged: {message}"


# ---------------------------------------------------------------------- frames and files
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
