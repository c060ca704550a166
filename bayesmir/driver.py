"""fit(): one model per miRNA, any inference method, never stopping on one failure.

The driver turns an :class:`~bayesmir.data.IsomirData` into one
:class:`~bayesmir.problem.MirnaProblem` per miRNA (design from
:func:`~bayesmir.design.build_design`, offsets from
:func:`~bayesmir.problem.library_offset`), fits each with the chosen method of
:mod:`bayesmir.inference` on the runner of :mod:`bayesmir.runner`, and collects everything in
a :class:`~bayesmir.results.FitResult`. A miRNA whose fit raises is recorded with
``converged=False`` and the error in ``message``; the others go on. With ``out=`` every
finished fit goes to a crash-safe run folder as it finishes (:mod:`bayesmir.run_folder`).
Pooling lives in :mod:`bayesmir.pooling`, provenance in :mod:`bayesmir.provenance`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from bayesmir import runner
from bayesmir.calls import DEFAULT_DELTA, DEFAULT_LEVEL, checked_level
from bayesmir.data import IsomirData, read_counts
from bayesmir.design import Design, build_design
from bayesmir.errors import InputError
from bayesmir.inference import Inference, diagnostics_row, get_method
from bayesmir.log_base import DEFAULT_LOG_BASE, checked_log_base
from bayesmir.pooling import pooled_priors
from bayesmir.priors import Priors
from bayesmir.problem import DEFAULT_NORMALISATION, MirnaProblem, mirna_problems, reduced_problem
from bayesmir.provenance import run_options, versions
from bayesmir.results import FitResult
from bayesmir.run_folder import RunFolder, data_sha256, read_result
from bayesmir.table_rows import with_pointwise_elpd


def mirna_seed(seed: int, mirna: str) -> int:
    """Per-miRNA seed derived from the run seed and the miRNA name (stable across runs)."""
    digest = hashlib.sha256(f"{int(seed)}|{mirna}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def fit(
    data,
    formula: str = "~ group",
    coef: str | None = None,
    family: str = "nb",
    random_slope: bool = True,
    method: str | Inference = "laplace",
    priors: Priors | None = None,
    reference: dict[str, str] | None = None,
    normalisation: str = DEFAULT_NORMALISATION,
    seed: int = 0,
    n_jobs: int = 1,
    scheduler: str = "processes",
    progress: bool = True,
    reduced: bool | None = None,
    mirnas: Sequence[str] | None = None,
    pooling: bool = False,
    shrinkage: bool = True,
    delta: float = DEFAULT_DELTA,
    level: float = DEFAULT_LEVEL,
    log_base: str = DEFAULT_LOG_BASE,
    loo: bool = False,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    retry_failed: bool = False,
    **method_options,
) -> FitResult:
    """Fit the Bayesian isomiR mixed model to every miRNA of ``data``.

    Parameters
    ----------
    data : IsomirData, str, pathlib.Path, pandas.DataFrame or anndata.AnnData
        Counts, sample metadata and library sizes (anything else is read with
        :func:`bayesmir.read_counts`).
    formula : str
        Fixed effects over the sample metadata, e.g. ``"~ group + lab"``.
    coef : str, optional
        Coefficient of interest (default: the first after the intercept).
    family : {"nb", "poisson"}
        Count distribution.
    random_slope : bool
        IsomiR-specific slopes on the term of ``coef`` (miRglmm's full model).
    method : str or Inference
        Inference method: a name of :data:`bayesmir.inference.METHODS` (``"laplace"``: nested
        Laplace, fast; ``"nuts"``: NUTS, the reference) or an instance such as
        ``LaplaceInference(n_hyper=8)`` (then ``family``, ``priors`` and method options are
        the instance's).
    priors : Priors, optional
        Prior scales; default ``Priors()``.
    reference : dict, optional
        Reference level per categorical variable, e.g. ``{"group": "nb"}``.
    normalisation : {"robust", "total", "median_ratio"}
        Library-size offset (:func:`bayesmir.problem.library_offset`). ``"robust"`` (default)
        centres the fold changes on the mode of the miRNAs' (robust to one-sided DE of
        abundant miRNAs); ``"total"`` is miRglmm's ``log(T_i / 1e4)``; ``"median_ratio"``
        DESeq2's size factors.
    seed : int
        Run seed; each miRNA gets :func:`mirna_seed` of it and its name, so the numbers do not
        depend on the scheduler, the number of workers or the order of the fits.
    n_jobs : int
        Worker processes for methods that allow them (``Inference.process_parallel``; not
        NUTS: nutpie already uses every core). ``-1``: one per core. Default 1 (the CLI's
        too): no extra processes unless asked, as a worker costs ~3 s of imports and compiles
        its own programs, which a small run does not recover.
    scheduler : str
        ``"processes"`` (default; serial when ``n_jobs=1``), ``"serial"``, ``"dask"`` (a
        ``dask.distributed.LocalCluster`` of ``n_jobs`` workers) or the address of an existing
        dask scheduler (``"tcp://host:8786"``); see :mod:`bayesmir.runner`.
    progress : bool
        Show a progress bar with ETA across miRNAs (stderr).
    reduced : bool, optional
        Also fit the model without random slopes, for model comparison in
        :meth:`FitResult.slope_table`. Default: the method's ``fits_reduced_by_default``
        (``True`` for ``"laplace"``).
    mirnas : sequence of str, optional
        Fit only these miRNAs (default all, ``data.mirnas``).
    pooling : bool
        Cross-miRNA pooling (``"laplace"`` only): a first pass fits every miRNA, then the
        priors of ``log theta``, the log isomiR-intercept SD and the log sample SD become normals
        fitted to the first pass's posterior medians (empirical Bayes; :func:`pooled_priors`),
        and every miRNA is fitted again with them.
    shrinkage : bool
        Empirical-Bayes priors learned across miRNAs and applied exactly to the fitted mixtures,
        without refitting (``"laplace"``; :mod:`bayesmir.shrinkage`): pooled half-normal scales of
        the isomiR slope SDs and of ``sd_sample``, and an adaptive scale-mixture prior on the log
        fold changes. Off
        by itself (default priors, ``options["shrinkage_note"]`` says why) with fewer than 20
        converged miRNAs.
    delta : float
        Threshold of ``P(|logFC| > delta)`` in the tables (natural log; default log 1.5, a
        1.5-fold change); stored in ``options`` and used by :meth:`FitResult.mirna_table`.
    level : float
        Mass of the reported intervals (default 0.95); stored like ``delta``.
    log_base : {"e", "2", "10"}
        Base of the log fold changes in the tables (default ``"e"``, natural log; ``"2"``:
        log2 fold changes, columns renamed ``log2fc``, ...: :mod:`bayesmir.log_base`); stored
        like ``delta``.
    loo : bool
        Also compute each fit's PSIS-LOO pointwise ELPD (stored with the fit), for the slope
        table's ``elpd_diff`` columns and ``az.loo``-style comparisons. Off by default, as
        bambi's ``log_likelihood``: it costs about a third of a laplace fit (the
        log-likelihood of every count under every draw, and a Pareto fit per count), and the
        usage call is made on the Bayes factor.
    out : path, optional
        Run folder to stream the fits to (crash-safe, see :mod:`bayesmir.run_folder`); the
        result is then read back from it. Default: keep everything in memory.
    overwrite : bool
        With ``out``: replace a run (complete or interrupted) already there.
    resume : bool
        With ``out``: continue an interrupted run (``out.partial``); refused when it was made
        from other data or options. The tables equal those of an uninterrupted run.
    retry_failed : bool
        With ``out``: fit again only the miRNAs whose fit failed in the run there.
    **method_options
        Passed to the method, e.g. ``draws=500, tune=500`` for NUTS.

    Returns
    -------
    FitResult

    Raises
    ------
    InputError
        Bad formula/design, unknown method, scheduler or normalisation; ``out`` not usable
        (:class:`~bayesmir.run_folder.RunFolderError`).
    """
    if not isinstance(data, IsomirData):  # a file path, pandas DataFrame or AnnData
        data = read_counts(data)
    runner.check_scheduler(scheduler)
    inference = resolve_method(method, family, priors, **method_options)
    design = build_design(data.samples, formula, coef, reference, random_slope)
    problems = mirna_problems(data, design, normalisation, mirnas)
    extra = {"normalisation": normalisation, "reference": reference, "pooling": bool(pooling),
             "shrinkage": bool(shrinkage),
             "delta": float(delta), "level": checked_level(level),
             "log_base": checked_log_base(log_base), "loo": bool(loo),
             "library_size": data.library_size.astype(float).to_dict(),
             "library_size_source": file_names_only(getattr(data, "library_size_source", None))}
    folder = None
    if out is not None:
        manifest = run_manifest(problems, inference, seed, reduced, design, extra)
        folder = RunFolder(out, manifest, overwrite=overwrite, resume=resume, retry_failed=retry_failed)
    with folder if folder is not None else contextlib.nullcontext():
        if pooling:
            if inference.name != "laplace":
                raise InputError(f"pooling=True needs method='laplace', not {inference.name!r}")
            first = fit_problems(problems, method=inference, seed=seed, n_jobs=n_jobs, scheduler=scheduler,
                                 progress=progress, reduced=False)
            inference = resolve_method(inference.name, inference.family,
                                       pooled_priors(first, inference.priors, inference.family),
                                       **inference.options)
        return fit_problems(
            problems, method=inference, seed=seed, n_jobs=n_jobs, scheduler=scheduler, progress=progress,
            reduced=reduced, design=design, filter_report=getattr(data, "filter_report", None),
            folder=folder, extra_options=extra, loo=loo,
        )


def file_names_only(text: str | None) -> str | None:
    """``text`` with the folders of any path in it removed (a run folder holds no absolute path)."""
    return None if text is None else re.sub(r"(?:[A-Za-z]:)?(?:[^\s,'\"]*[\\/])+(?=[^\\/\s,'\"]+)", "", text)


def resolve_method(method: str | Inference, family: str = "nb", priors: Priors | None = None,
                   **method_options) -> Inference:
    """The :class:`Inference` of ``method`` (a name or an instance, used as it is)."""
    if isinstance(method, Inference):
        if method_options:
            raise InputError(f"method options {sorted(method_options)} cannot be combined with an "
                             "Inference instance; give them to its constructor")
        return method
    try:
        return get_method(method, family, priors, **method_options)
    except TypeError as error:
        raise InputError(f"method {method!r}: {error}") from None


def run_manifest(problems: Sequence[MirnaProblem], inference: Inference, seed: int, reduced: bool | None,
                 design: Design | None, extra: dict) -> dict:
    """The manifest of a run folder: the fingerprint a resume must match, plus provenance."""
    if reduced is None:
        reduced = inference.fits_reduced_by_default
    fingerprint = {
        "data_sha256": data_sha256(problems),
        "method": inference.name, "family": inference.family, "priors": inference.priors.to_dict(),
        "method_options": {k: repr(v) for k, v in sorted(inference.options.items())},
        "seed": int(seed), "reduced": bool(reduced),
        "formula": design.formula if design else None, "coef": design.coef if design else None,
        **{k: v for k, v in extra.items() if k != "normalisation"},
    }
    return {"fingerprint": fingerprint, "n_mirnas": len(problems), "versions": versions(),
            "normalisation": extra.get("normalisation")}


def fit_problems(
    problems: Sequence[MirnaProblem],
    method: str | Inference = "laplace",
    family: str = "nb",
    priors: Priors | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    scheduler: str = "processes",
    progress: bool = True,
    reduced: bool | None = None,
    design: Design | None = None,
    filter_report=None,
    folder: RunFolder | None = None,
    extra_options: dict | None = None,
    loo: bool = False,
    **method_options,
) -> FitResult:
    """Fit prepared :class:`MirnaProblem` objects (the loop behind :func:`fit`).

    Parameters are those of :func:`fit`; ``design``, ``filter_report`` and ``extra_options``
    are only stored in the result. ``folder``: an open :class:`RunFolder` to stream the fits
    to (fits already in it are not done again).

    Returns
    -------
    FitResult
    """
    inference = resolve_method(method, family, priors, **method_options)
    if reduced is None:
        reduced = inference.fits_reduced_by_default
    reduced = bool(reduced and any(problem.Z.shape[1] > 1 for problem in problems))
    if inference.experimental:
        warnings.warn(
            f"method {inference.name!r} is experimental: it is known to be poorly calibrated on this "
            "model (see docs); use it for exploration and check against 'nuts'", UserWarning, stacklevel=2,
        )
    tasks = [runner.Task(("full", p.mirna), p, mirna_seed(seed, p.mirna)) for p in problems]
    if reduced:
        tasks += [runner.Task(("reduced", p.mirna), reduced_problem(p), mirna_seed(seed, p.mirna))
                  for p in problems]
    done = folder.done if folder is not None else {}
    tasks = [task for task in tasks if task.key not in done]
    if not inference.process_parallel:
        scheduler = "serial"
    if inference.needs_x64:
        from bayesmir.marginal import use_compilation_cache

        use_compilation_cache()
    if scheduler == "serial" or n_jobs == 1:
        _prepare(inference, [task.problem for task in tasks])  # compile here, where the fits run
    fitted: dict = {}
    stream = runner.run(functools.partial(fit_safely, inference, loo=loo), tasks, scheduler=scheduler, n_jobs=n_jobs,
                        shape_key=inference.shape_key, progress=progress, label=f"bayesmir {inference.name}")
    for task, (idata, row) in stream:
        if folder is not None:
            folder.write_fit(*task.key, idata, row)
        else:
            fitted[task.key] = (idata, row)
    options = {**run_options(inference, inference.family, inference.priors, seed, reduced, design),
               **(extra_options or {})}
    info = {p.mirna: {"n_isomirs": p.n_isomirs, "n_samples": p.n_samples} for p in problems}
    order = [p.mirna for p in problems]
    if folder is not None:
        result = read_result(folder.partial, order, design, info, options, filter_report, reduced)
        folder.commit(result)
        return result
    kinds = ("full", "reduced") if reduced else ("full",)
    rows = {kind: [fitted[(kind, m)][1] for m in order] for kind in kinds}
    posteriors = {kind: {m: fitted[(kind, m)][0] for m in order if fitted[(kind, m)][0] is not None}
                  for kind in kinds}
    return FitResult(
        posteriors=posteriors["full"], diagnostics=rows["full"],
        posteriors_reduced=posteriors.get("reduced", {}), diagnostics_reduced=rows.get("reduced"),
        design=design, mirna_info=info, options=options, filter_report=filter_report,
    )


def _prepare(inference: Inference, problems: list[MirnaProblem]) -> None:
    """Compile once up front; a failure here is reported per miRNA by the fits themselves."""
    try:
        inference.prepare(problems)
    except Exception as error:  # noqa: BLE001 - any compile failure is retried per miRNA
        warnings.warn(f"{inference.name}: preparing the models failed ({error}); fitting anyway",
                      RuntimeWarning, stacklevel=3)


def fit_safely(inference: Inference, problem: MirnaProblem, seed: int, loo: bool = False):
    """``inference.fit_timed`` that returns ``(None, failure row)`` instead of raising.

    With ``loo`` the fit gets its PSIS-LOO pointwise ELPD here, where it is made (in a worker
    when there are workers), so that building the slope table costs no model evaluation
    (:func:`~bayesmir.table_rows.with_pointwise_elpd`).
    """
    try:
        idata, row = inference.fit_timed(problem, seed)
    except Exception as error:  # noqa: BLE001 - one miRNA must never stop the run
        message = f"failed: {type(error).__name__}: {error}"
        return None, diagnostics_row(problem.mirna, inference.name, converged=False, message=message)
    return (with_pointwise_elpd(idata) if loo and idata is not None else idata), row
