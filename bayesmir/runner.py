"""One parallel runner for every per-miRNA fit (Bayesian methods and the ML fit).

:func:`run` applies a picklable ``fit_one(problem, seed)`` to a list of :class:`Task` and
yields ``(task, output)`` pairs **as they finish** (not in task order), so a caller can
write each result to disk at once. Schedulers (:data:`SCHEDULERS`):

- ``"serial"``: this process, in task order.
- ``"processes"``: ``n_jobs`` worker processes on this machine (joblib/loky; ``-1``: one per
  core). The workers are kept for the next call, so compiled programs stay warm.
- ``"dask"``: a ``dask.distributed.LocalCluster`` of ``n_jobs`` single-threaded worker
  processes, started for the call and closed after it.
- ``"tcp://host:port"`` (any address with ``://``): an existing ``dask.distributed``
  scheduler, e.g. a dask-jobqueue SLURM cluster (see docs/cluster.md).

Work is cut into chunks of one array shape (:func:`chunks_by_shape`), shape-sorted, so a
worker compiles each shape it meets once. Every worker runs XLA and BLAS on one thread
(:data:`WORKER_ENV`): numbers then do not depend on which worker fitted a miRNA, and equal
those of a serial run in a process with the same flags (the CLI sets them).

Worker processes exit when the process that started them dies, whatever killed it: a
watchdog thread in each worker polls its parent's pid (:func:`watch_parent`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bayesmir.errors import InputError
from bayesmir.problem import MirnaProblem

SCHEDULERS = ("serial", "processes", "dask")

#: Environment of every worker: XLA and BLAS on one thread (one miRNA's matrices are small; a
#: second thread made no fit faster, measured) and results independent of the thread count.
WORKER_ENV = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class Task:
    """One fit: ``key`` identifies it for the caller (e.g. ``("full", "hsa-miR-1")``)."""

    key: Any
    problem: MirnaProblem
    seed: int


def check_scheduler(scheduler: str) -> str:
    """``scheduler`` if valid (one of :data:`SCHEDULERS` or a dask address), else InputError."""
    if scheduler in SCHEDULERS or "://" in str(scheduler):
        return scheduler
    raise InputError(f"scheduler must be one of {list(SCHEDULERS)} or a dask scheduler address "
                     f"such as tcp://host:8786, not {scheduler!r}")


def run(
    fit_one: Callable[[MirnaProblem, int], Any],
    tasks: Sequence[Task],
    scheduler: str = "processes",
    n_jobs: int = 1,
    shape_key: Callable[[MirnaProblem], tuple] | None = None,
    progress: bool = False,
    label: str = "bayesmir",
) -> Iterator[tuple[Task, Any]]:
    """Apply ``fit_one(problem, seed)`` to every task; yield ``(task, output)`` as each finishes.

    Parameters
    ----------
    fit_one : callable
        Picklable (a module-level function or a ``functools.partial`` of one); must not raise
        for one bad miRNA (return a failure instead).
    tasks : sequence of Task
    scheduler : str
        See the module docstring. ``"processes"`` with ``n_jobs=1`` runs serially.
    n_jobs : int
        Worker processes (joblib's convention: ``-1`` one per core); the dask address ignores it.
    shape_key : callable, optional
        What compiled programs depend on (default: the counts' shape), for the chunks.
    progress : bool
        A progress bar with ETA on stderr.
    label : str
        Text of the progress bar.

    Yields
    ------
    (Task, output)
        In completion order. Closing the iterator early (or an interrupt) stops the workers.
    """
    check_scheduler(scheduler)
    tasks = list(tasks)
    shape_key = shape_key or (lambda problem: problem.counts.shape)
    chunks = dispatch_order(chunks_by_shape(tasks, shape_key), shape_key)
    n_workers = _n_workers(n_jobs, len(chunks))
    with _progress_bar(len(tasks), label, progress) as advance:
        if scheduler == "serial" or (scheduler == "processes" and n_workers <= 1) or not tasks:
            stream = _run_serial(fit_one, tasks)
        elif scheduler == "processes":
            stream = _run_processes(fit_one, chunks, n_workers)
        else:
            stream = _run_dask(fit_one, chunks, scheduler, max(n_workers, 1))
        for task, output in stream:
            advance(task.problem.mirna)
            yield task, output


def chunks_by_shape(tasks: Sequence[Task], shape_key: Callable, chunk_cost: float = 640.0
                    ) -> list[list[Task]]:
    """``tasks`` sorted by shape, cut into chunks of one shape and at most ``chunk_cost``.

    Costs are :func:`relative_cost` (the default ``chunk_cost`` is about ten fits).
    """
    keys = [tuple(shape_key(task.problem)) for task in tasks]
    chunks: list[list[Task]] = []
    chunk_keys: list[tuple] = []
    cost = 0.0
    for i in sorted(range(len(tasks)), key=lambda i: (_sortable(keys[i]), i)):
        if not chunks or keys[i] != chunk_keys[-1] or cost + relative_cost(keys[i]) > chunk_cost:
            chunks.append([])
            chunk_keys.append(keys[i])
            cost = 0.0
        chunks[-1].append(tasks[i])
        cost += relative_cost(keys[i])
    return chunks


def dispatch_order(chunks: list[list[Task]], shape_key: Callable) -> list[list[Task]]:
    """The first chunk of every shape (costliest shape first), then the other chunks in order.

    The workers take chunks first come, first served: they start on different shapes, so on a cold
    start each shape's programs are compiled once, and its later chunks find them in the on-disk
    compile cache instead of a second worker compiling them again at the same time.
    """
    firsts, rest, seen = [], [], set()
    for chunk in chunks:
        key = tuple(shape_key(chunk[0].problem))
        (rest if key in seen else firsts).append(chunk)
        seen.add(key)
    firsts.sort(key=lambda chunk: -relative_cost(tuple(shape_key(chunk[0].problem))))
    return firsts + rest


def relative_cost(shape_key: tuple) -> float:
    """Relative cost of one fit from its shape key ``(samples, isomiR bucket, ...)``.

    A fixed part plus the padded isomiR count: measured for ``laplace`` on the 39-sample
    simulation (warm, median per fit), miRNAs padded to 4 and 16 isomiRs cost about the
    same and those padded to 64 about twice as much.
    """
    return 64.0 + float(shape_key[1]) if len(shape_key) > 1 else 64.0


def _sortable(key: tuple) -> tuple:
    return tuple((0, value) if isinstance(value, (int, float)) else (1, str(value)) for value in key)


def run_chunk(fit_one: Callable, tasks: list[Task]) -> list:
    """In a worker: the outputs of ``fit_one`` for ``tasks``, BLAS on one thread."""
    watch_parent()
    with one_blas_thread():
        return [fit_one(task.problem, task.seed) for task in tasks]


def one_blas_thread():
    """Context in which BLAS runs on one thread: idle OpenBLAS threads spin (measured: a
    process otherwise keeps a second core busy)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, "blas")


# ---------------------------------------------------------------------- schedulers
def _run_serial(fit_one: Callable, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
    with one_blas_thread():
        for task in tasks:
            yield task, fit_one(task.problem, task.seed)


def _run_processes(fit_one: Callable, chunks: list[list[Task]], n_workers: int
                   ) -> Iterator[tuple[Task, Any]]:
    """Chunks on the (reused) loky pool; any exit other than completion kills the workers."""
    from concurrent.futures import as_completed

    pool = worker_pool(n_workers)
    futures = {pool.submit(run_chunk, fit_one, chunk): chunk for chunk in chunks}
    finished = False
    try:
        for future in as_completed(futures):
            # popped, so a consumed chunk's posteriors are freed: memory stays flat in the miRNAs
            yield from zip(futures.pop(future), future.result())
        finished = True
    finally:
        if not finished:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=False, kill_workers=True)


def worker_pool(n_workers: int):
    """The reusable loky pool of ``n_workers`` processes with :data:`WORKER_ENV` and a watchdog."""
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=n_workers, env=worker_env(), initializer=start_worker,
                                 timeout=300)


#: Memory a loky worker may gain after its first task before loky restarts it as leaking (loky's
#: default is 300 MB): a worker's compiled programs grow with every new shape it meets (~0.1-0.3 GB
#: each, measured at 500 samples), which is no leak, and a restart costs seconds of imports and
#: program loading (it happened mid-run at 2,000 miRNAs x 500 samples).
WORKER_MEMORY_GROWTH = int(4e9)


def start_worker() -> None:
    """Initializer of a loky worker: the parent watchdog (:func:`watch_parent`) and loky's leak limit
    raised to :data:`WORKER_MEMORY_GROWTH`."""
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = max(process_executor._MAX_MEMORY_LEAK_SIZE, WORKER_MEMORY_GROWTH)
    watch_parent()


def worker_env() -> dict[str, str]:
    """:data:`WORKER_ENV` plus bayesmir's compile cache (unless disabled), for worker processes."""
    from bayesmir.marginal import CACHE_MIN_COMPILE_SECONDS, compilation_cache_dir

    env = dict(WORKER_ENV)
    if compilation_cache_dir():
        env.update(JAX_COMPILATION_CACHE_DIR=compilation_cache_dir(),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=str(CACHE_MIN_COMPILE_SECONDS))
    return env


def _run_dask(fit_one: Callable, chunks: list[list[Task]], scheduler: str, n_workers: int
              ) -> Iterator[tuple[Task, Any]]:
    """Chunks on a dask.distributed cluster: a LocalCluster started here, or ``scheduler``'s."""
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler == "dask":
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, env=worker_env(), silence_logs=40)
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            pending = {}
            for chunk in chunks:
                future = client.submit(run_chunk, fit_one, chunk, pure=False)
                pending[future.key] = (future, chunk)
            try:
                for future in as_completed([future for future, _ in pending.values()]):
                    _, chunk = pending.pop(future.key)
                    result = future.result()
                    future.release()  # the cluster frees a consumed chunk's posteriors
                    yield from zip(chunk, result)
            finally:
                client.cancel([future for future, _ in pending.values()])
    finally:
        if cluster is not None:
            cluster.close()


def _n_workers(n_jobs: int, n_chunks: int) -> int:
    """Worker processes for ``n_jobs`` (joblib's convention, e.g. -1: all cores), at most one per chunk."""
    from joblib import effective_n_jobs

    return max(1, min(effective_n_jobs(n_jobs), n_chunks))


# ---------------------------------------------------------------------- worker lifetime
_WATCHDOG: list[threading.Thread] = []


def watch_parent(interval: float = 1.0) -> None:
    """In a worker: a daemon thread that ends this process when its parent process is gone.

    The parent (the process that started this worker) dying by any signal, SIGKILL included,
    re-parents this process; the thread sees ``os.getppid()`` change and exits at once. Started
    once per process; nothing in the main process (its parent is the shell).
    """
    if _WATCHDOG or os.environ.get("BAYESMIR_WORKER") == "no-watchdog":
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=watch, name="bayesmir-parent-watchdog", daemon=True)
    thread.start()
    _WATCHDOG.append(thread)


# ---------------------------------------------------------------------- progress
class _progress_bar:
    """Context manager giving ``advance(label)``: a rich bar with ETA on stderr, or nothing."""

    def __init__(self, total: int, label: str, show: bool) -> None:
        self.total, self.label, self.show = total, label, show

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
        task = self.bar.add_task(self.label, total=self.total, last="")
        return lambda label: self.bar.update(task, advance=1, last=label)

    def __exit__(self, *exc) -> None:
        if self.show:
            self.bar.__exit__(*exc)
