"""fit(): one model per miRNA, any inference method, never stopping on one failure.

The driver turns an :class:`~bayesmir.data.IsomirData` into one
:class:`~bayesmir.problem.MirnaProblem` per miRNA (design from
:func:`~bayesmir.design.build_design`, offsets from
:func:`~bayesmir.problem.library_offset`), fits each with the chosen method of
:mod:`bayesmir.inference`, and collects everything in a
:class:`~bayesmir.results.FitResult`. A miRNA whose fit raises is recorded with
``converged=False`` and the error in ``message``; the others go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
import warnings
from collections.abc import Iterator, Sequence
from importlib import metadata

import numpy as np

from bayesmir.data import IsomirData, read_counts
from bayesmir.design import Design, build_design
from bayesmir.errors import InputError
from bayesmir.inference import METHODS, Inference, diagnostics_row, get_method, method_class
from bayesmir.priors import Priors
from bayesmir.problem import MirnaProblem, mirna_problems, reduced_problem
from bayesmir.results import FitResult

#: Methods whose default is to fit the reduced (no-slope) model too, for model comparison.
REDUCED_BY_DEFAULT = {"laplace"}


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
    method: str = "laplace",
    priors: Priors | None = None,
    reference: dict[str, str] | None = None,
    normalisation: str = "total",
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = True,
    reduced: bool | None = None,
    mirnas: Sequence[str] | None = None,
    pooling: bool = False,
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
    method : str
        Inference method, one of :data:`bayesmir.inference.METHODS`
        (``"laplace"``: nested Laplace, fast; ``"nuts"``: NUTS, the reference).
    priors : Priors, optional
        Prior scales; default ``Priors()``.
    reference : dict, optional
        Reference level per categorical variable, e.g. ``{"group": "nb"}``.
    normalisation : {"total", "median_ratio"}
        Library-size offset; see :func:`bayesmir.problem.library_offset`.
    seed : int
        Run seed; each miRNA gets :func:`mirna_seed` of it and its name.
    n_jobs : int
        Worker processes, for methods that allow them (not NUTS: nutpie already uses
        every core for its chains).
    progress : bool
        Show a progress bar with ETA across miRNAs.
    reduced : bool, optional
        Also fit the model without random slopes, for model comparison in
        :meth:`FitResult.slope_table`. Default: ``True`` for ``"laplace"``, ``False``
        otherwise.
    mirnas : sequence of str, optional
        Fit only these miRNAs (default all, ``data.mirnas``).
    pooling : bool
        Cross-miRNA pooling (``"laplace"`` only): a first pass fits every miRNA, then the
        priors of ``log theta``, the log isomiR-intercept SD and the log sample SD become normals fitted
        to the first pass's posterior medians across miRNAs (empirical Bayes;
        :func:`pooled_priors`), and every miRNA is fitted again with them.
    **method_options
        Passed to the method, e.g. ``draws=500, tune=500`` for NUTS.

    Returns
    -------
    FitResult

    Raises
    ------
    InputError
        Bad formula/design, unknown method or normalisation.
    """
    if not isinstance(data, IsomirData):  # a file path, pandas DataFrame or AnnData
        data = read_counts(data)
    design = build_design(data.samples, formula, coef, reference, random_slope)
    problems = mirna_problems(data, design, normalisation, mirnas)
    if pooling:
        if method != "laplace":
            raise InputError(f"pooling=True needs method='laplace', not {method!r}")
        first = fit_problems(problems, method=method, family=family, priors=priors, seed=seed, n_jobs=n_jobs,
                             progress=progress, reduced=False, **method_options)
        priors = pooled_priors(first, priors or Priors(), family)
    result = fit_problems(
        problems, method=method, family=family, priors=priors, seed=seed, n_jobs=n_jobs,
        progress=progress, reduced=reduced, design=design,
        filter_report=getattr(data, "filter_report", None), **method_options,
    )
    result.options.update(normalisation=normalisation, reference=reference, pooling=bool(pooling),
                          library_size=data.library_size.astype(float).to_dict(),
                          library_size_source=getattr(data, "library_size_source", None))
    return result


MIN_POOLED = 5  # converged miRNAs needed to estimate a pooled prior


def pooled_priors(first: FitResult, priors: Priors, family: str = "nb") -> Priors:
    """Empirical-Bayes priors from a first pass: normals on ``log theta``, ``log sd_isomir[0]``, ``log sd_sample``.

    Centre: the median over converged miRNAs of each one's posterior median; scale:
    1.4826 x the median absolute deviation (the SD for normal data), at least 0.1. The
    spread of estimates includes their estimation error, so the pooled prior is a little
    wider than the population it estimates (conservative).

    Raises
    ------
    InputError
        Fewer than :data:`MIN_POOLED` converged miRNAs.
    """
    converged = set(first.diagnostics.loc[first.diagnostics["converged"], "miRNA"])
    posteriors = [idata.posterior for name, idata in first.posteriors.items() if name in converged]
    if len(posteriors) < MIN_POOLED:
        raise InputError(f"pooling needs at least {MIN_POOLED} converged miRNAs, the first pass has "
                         f"{len(posteriors)}; fit with pooling=False")

    def centre_and_scale(values):
        values = np.log(np.asarray(values, dtype=float))
        centre = float(np.median(values))
        return centre, max(0.1, 1.4826 * float(np.median(np.abs(values - centre))))

    sd_isomir = centre_and_scale([float(p["sd_isomir"].isel(re_term=0).median()) for p in posteriors])
    sd_sample = centre_and_scale([float(p["sd_sample"].median()) for p in posteriors])
    updates = {"pooled_log_sd_isomir_mean": sd_isomir[0], "pooled_log_sd_isomir_sd": sd_isomir[1],
               "pooled_log_sd_sample_mean": sd_sample[0], "pooled_log_sd_sample_sd": sd_sample[1]}
    if family == "nb":
        dispersion = centre_and_scale([float(p["theta"].median()) for p in posteriors])
        updates.update(pooled_log_dispersion_mean=dispersion[0], pooled_log_dispersion_sd=dispersion[1])
    return dataclasses.replace(priors, **updates)


def fit_problems(
    problems: Sequence[MirnaProblem],
    method: str = "laplace",
    family: str = "nb",
    priors: Priors | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = True,
    reduced: bool | None = None,
    design: Design | None = None,
    filter_report=None,
    **method_options,
) -> FitResult:
    """Fit prepared :class:`MirnaProblem` objects (the loop behind :func:`fit`).

    Parameters are those of :func:`fit`; ``design`` and ``filter_report`` are only
    stored in the result.

    Returns
    -------
    FitResult
    """
    priors = priors or Priors()
    if reduced is None:
        reduced = method in REDUCED_BY_DEFAULT
    has_slope = any(problem.Z.shape[1] > 1 for problem in problems)
    tasks = [("full", problem) for problem in problems]
    if reduced and has_slope:
        tasks += [("reduced", reduced_problem(problem)) for problem in problems]
    workers = None
    if n_jobs != 1 and method in METHODS:
        workers = _start_workers(method, _n_workers(n_jobs, len(tasks)))  # they import while this process does
    inference = get_method(method, family, priors, **method_options)
    if workers is not None and not inference.process_parallel:
        workers.shutdown(wait=False, kill_workers=True)  # a method that fits in this process only
    if inference.experimental:
        warnings.warn(
            f"method {method!r} is experimental: it is known to be poorly calibrated on this model "
            "(see docs); use it for exploration and check against 'nuts'", UserWarning, stacklevel=2,
        )
    _prepare(inference, [problem for _, problem in tasks])
    fitted = {"full": {}, "reduced": {}}
    rows = {"full": [], "reduced": []}
    for kind, problem, (idata, row) in _run(inference, tasks, seed, n_jobs, progress):
        rows[kind].append(row)
        if idata is not None:
            fitted[kind][problem.mirna] = idata
    return FitResult(
        posteriors=fitted["full"],
        diagnostics=rows["full"],
        posteriors_reduced=fitted["reduced"],
        diagnostics_reduced=rows["reduced"] if reduced and has_slope else None,
        design=design,
        mirna_info={p.mirna: {"n_isomirs": p.n_isomirs, "n_samples": p.n_samples} for p in problems},
        options=_run_options(inference, method, family, priors, seed, reduced, design),
        filter_report=filter_report,
    )


def _prepare(inference: Inference, problems: list[MirnaProblem]) -> None:
    """Compile once up front; a failure here is reported per miRNA by the fits themselves."""
    try:
        inference.prepare(problems)
    except Exception as error:  # noqa: BLE001 - any compile failure is retried per miRNA
        warnings.warn(f"{inference.name}: preparing the models failed ({error}); fitting anyway",
                      RuntimeWarning, stacklevel=3)


def fit_safely(inference: Inference, problem: MirnaProblem, seed: int):
    """``inference.fit_timed`` that returns ``(None, failure row)`` instead of raising."""
    try:
        return inference.fit_timed(problem, seed)
    except Exception as error:  # noqa: BLE001 - one miRNA must never stop the run
        message = f"failed: {type(error).__name__}: {error}"
        return None, diagnostics_row(problem.mirna, inference.name, converged=False, message=message)


def _one_blas_thread():
    """Context in which BLAS runs on one thread: the matrices of one miRNA are small and idle
    OpenBLAS threads spin (measured: a process otherwise keeps a second core busy). XLA runs on
    one thread in every process anyway (:func:`bayesmir.marginal._single_threaded_xla`)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, "blas")


def _run(
    inference: Inference, tasks: list[tuple[str, MirnaProblem]], seed: int, n_jobs: int, progress: bool
) -> Iterator[tuple[str, MirnaProblem, tuple]]:
    """Yield ``(kind, problem, (idata, row))`` in task order, with an optional progress bar."""
    seeds = [mirna_seed(seed, problem.mirna) for _, problem in tasks]
    with _progress_bar(len(tasks), inference.name, progress) as advance, _one_blas_thread():
        if n_jobs != 1 and inference.process_parallel:
            outputs = _fit_in_workers(inference, [problem for _, problem in tasks], seeds, n_jobs, advance)
            for (kind, problem), output in zip(tasks, outputs):
                yield kind, problem, output
            return
        for (kind, problem), s in zip(tasks, seeds):
            output = fit_safely(inference, problem, s)
            advance(problem.mirna)
            yield kind, problem, output


def _fit_in_workers(
    inference: Inference, problems: list[MirnaProblem], seeds: list[int], n_jobs: int, advance
) -> list[tuple]:
    """Fit ``problems`` in ``n_jobs`` processes; outputs in input order.

    Each process traces (or loads) the compiled programs of every array shape it meets, ~1 s
    per shape, so the problems are sorted by shape and cut into chunks of one shape
    (:func:`chunks_by_shape`). This process takes chunks from the front of that order while
    ``n_jobs - 1`` worker processes start and take chunks from the back,
    until they meet: the work balances itself although the workers start seconds later
    (imports). Workers report each finished miRNA on a queue, which drives the progress bar.
    """
    import queue as queue_module

    n_workers = _n_workers(n_jobs, len(problems))
    chunks = chunks_by_shape(inference, problems)
    items = [[(i, problems[i], seeds[i]) for i in chunk] for chunk in chunks]
    outputs = [None] * len(problems)
    with _manager() as manager:
        done, bounds, lock = manager.Queue(), manager.list([0, len(chunks)]), manager.Lock()

        def drain(block: bool) -> None:
            try:
                while True:
                    advance(done.get(timeout=0.2) if block else done.get_nowait())
            except queue_module.Empty:
                pass

        pool = _worker_pool(n_workers) if n_workers else None
        futures = [pool.submit(_fit_chunks, inference, items, bounds, lock, done) for _ in range(n_workers)]
        while (index := _claim_chunk(bounds, lock, front=True)) is not None:
            for i, problem, seed in items[index]:
                outputs[i] = fit_safely(inference, problem, seed)
                advance(problem.mirna)
            drain(block=False)
        while not all(future.done() for future in futures):
            drain(block=True)
        drain(block=False)
        for future in futures:
            for i, output in future.result():
                outputs[i] = output
    return outputs


def _manager():
    """A started ``multiprocessing.Manager`` (the shared chunk bounds, lock and progress queue).

    Its server process is forked; JAX warns about any fork once it runs threads, but that
    process only serves the shared objects and never calls JAX, so the warning is silenced.
    """
    import multiprocessing

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        manager = multiprocessing.Manager()
    return manager


def _n_workers(n_jobs: int, n_tasks: int) -> int:
    """Worker processes besides this one for ``n_jobs`` (joblib's convention, e.g. -1: all cores)."""
    from joblib import effective_n_jobs

    return min(effective_n_jobs(n_jobs), n_tasks) - 1


def _worker_pool(n_workers: int):
    """The (reused) loky pool of ``n_workers`` worker processes."""
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=n_workers)


def _start_workers(method: str, n_workers: int):
    """Start the worker processes now and have them import ``method``'s module (~3.5 s for
    ``laplace``: JAX, ArviZ), while this process imports it too; the fits reuse them.

    Returns the pool, or None when ``n_workers`` is 0.
    """
    if n_workers <= 0:
        return None
    pool = _worker_pool(n_workers)
    for _ in range(n_workers):
        pool.submit(method_class, method)
    return pool


def relative_cost(shape_key: tuple) -> float:
    """Relative cost of one fit from its :meth:`~bayesmir.inference.Inference.shape_key`.

    A fixed part plus the padded isomiR count: measured for ``laplace`` on the 39-sample
    simulation (warm, median per fit), miRNAs padded to 4 and 16 isomiRs cost about the
    same and those padded to 64 about twice as much.
    """
    return 64.0 + shape_key[1]


def chunks_by_shape(inference: Inference, problems: Sequence[MirnaProblem], chunk_cost: float = 640.0
                    ) -> list[list[int]]:
    """Indices of ``problems`` sorted by shape, cut into chunks of one shape and at most ``chunk_cost``.

    Costs are :func:`relative_cost` (the default ``chunk_cost`` is about ten fits).
    """
    keys = [inference.shape_key(problem) for problem in problems]
    chunks: list[list[int]] = []
    cost = 0.0
    for i in sorted(range(len(problems)), key=lambda i: keys[i]):
        if not chunks or keys[i] != keys[chunks[-1][0]] or cost + relative_cost(keys[i]) > chunk_cost:
            chunks.append([])
            cost = 0.0
        chunks[-1].append(i)
        cost += relative_cost(keys[i])
    return chunks


def _claim_chunk(bounds, lock, front: bool) -> int | None:
    """Index of the next unclaimed chunk from the front or the back, or None when none is left."""
    with lock:
        first, end = bounds[0], bounds[1]
        if first >= end:
            return None
        if front:
            bounds[0] = first + 1
            return first
        bounds[1] = end - 1
        return end - 1


def _fit_chunks(inference: Inference, items: list[list[tuple]], bounds, lock, done) -> list[tuple]:
    """In a worker: fit chunks claimed from the back until none is left; ``(index, output)`` pairs."""
    outputs = []
    with _one_blas_thread():
        while (index := _claim_chunk(bounds, lock, front=False)) is not None:
            for i, problem, seed in items[index]:
                outputs.append((i, fit_safely(inference, problem, seed)))
                done.put(problem.mirna)
    return outputs


class _progress_bar:
    """Context manager giving ``advance(label)``: a rich bar with ETA, or nothing."""

    def __init__(self, total: int, method: str, show: bool) -> None:
        self.total, self.method, self.show = total, method, show

    def __enter__(self):
        if not self.show:
            return lambda label: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
            console=Console(stderr=True),
        )
        self.bar.__enter__()
        task = self.bar.add_task(f"bayesmir {self.method}", total=self.total, last="")
        return lambda label: self.bar.update(task, advance=1, last=label)

    def __exit__(self, *exc) -> None:
        if self.show:
            self.bar.__exit__(*exc)


def _run_options(
    inference: Inference, method: str, family: str, priors: Priors, seed: int, reduced: bool,
    design: Design | None,
) -> dict:
    """What is needed to reproduce the run: options, priors and package versions."""
    return {
        "method": method,
        "family": family,
        "seed": int(seed),
        "reduced": bool(reduced),
        "formula": design.formula if design else None,
        "coef": design.coef if design else None,
        "random_slope": bool(design.slope_names) if design else None,
        "priors": priors.to_dict(),
        "method_options": {k: v for k, v in inference.options.items() if _is_plain(v)},
        "experimental": inference.experimental,
        "versions": _versions(),
    }


def _is_plain(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("bayesmir", "pymc", "pytensor", "nutpie", "arviz", "numpy", "jax"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
