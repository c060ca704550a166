"""The runner: chunk invariants, streaming, worker processes that die with their parent, and no
JAX settings changed by importing bayesmir."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mirna_sim import simulate_problem

from bayesmir import runner
from bayesmir.runner import Task, chunks_by_shape, dispatch_order, relative_cost

ROOT = Path(__file__).resolve().parents[1]


def shape(problem):
    return (problem.n_samples, problem.n_isomirs)


def test_chunks_cover_every_task_once_one_shape_each_in_shape_order():
    """A partition; one shape per chunk; chunks in sorted shape order; each within the cost limit
    unless a single fit exceeds it."""
    sizes = [2, 30, 3, 5, 9, 17, 4, 4, 40, 6, 3, 12, 2, 8, 70, 5]
    tasks = [Task(k, simulate_problem(12, J, seed=k, name=f"mir-{k}"), k) for k, J in enumerate(sizes)]
    for limit in (1.0, 150.0, 1000.0):
        chunks = chunks_by_shape(tasks, shape, chunk_cost=limit)
        assert sorted(t.key for chunk in chunks for t in chunk) == list(range(len(tasks)))
        keys = [[shape(t.problem) for t in chunk] for chunk in chunks]
        assert all(len(set(k)) == 1 for k in keys)
        assert all(a[0] <= b[0] for a, b in itertools.pairwise(keys))
        assert all(len(k) == 1 or sum(relative_cost(s) for s in k) <= limit for k in keys)
    assert len(chunks_by_shape(tasks, shape, chunk_cost=1.0)) == len(tasks)


def test_dispatch_order_sends_every_shape_before_any_shape_twice():
    """Same chunks; every shape's first chunk before any second one, costliest first; the rest in order."""
    sizes = [2, 2, 2, 2, 30, 30, 3, 70, 2, 2, 30]
    tasks = [Task(k, simulate_problem(12, J, seed=k, name=f"mir-{k}"), k) for k, J in enumerate(sizes)]
    chunks = chunks_by_shape(tasks, shape, chunk_cost=150.0)
    ordered = dispatch_order(chunks, shape)
    assert sorted(map(id, ordered)) == sorted(map(id, chunks))
    keys = [shape(chunk[0].problem) for chunk in ordered]
    n_shapes = len(set(keys))
    assert len(set(keys[:n_shapes])) == n_shapes
    assert [k[1] for k in keys[:n_shapes]] == [70, 30, 3, 2]
    assert [chunk for chunk in chunks if chunk not in ordered[:n_shapes]] == ordered[n_shapes:]


def seed_plus_isomirs(problem, seed):
    return seed + problem.n_isomirs


@pytest.mark.parametrize("scheduler", ["serial", "processes"])
def test_every_task_once_with_its_output(scheduler):
    tasks = [Task(k, simulate_problem(6, J, seed=k, name=f"m{k}"), 10 * k) for k, J in enumerate([2, 3, 2, 4])]
    outputs = {task.key: output for task, output in runner.run(seed_plus_isomirs, tasks, scheduler, 2)}
    assert outputs == {t.key: 10 * t.key + t.problem.n_isomirs for t in tasks}


class Payload:
    """A fit's output that can be weakly referenced."""

    def __init__(self, value) -> None:
        self.value = value


def payload(problem, seed):
    return Payload(seed)


@pytest.mark.parametrize("scheduler", ["processes", "dask"])
def test_consumed_outputs_are_released(scheduler):
    """Memory flat in the number of miRNAs: the runner keeps no reference to the outputs of a chunk
    the caller has consumed (only the current chunk's, at most 3 here, may be alive)."""
    import gc
    import weakref

    sizes = [2, 3, 2, 4, 3, 2, 5]
    tasks = [Task(k, simulate_problem(6, J, seed=k, name=f"m{k}"), k) for k, J in enumerate(sizes)]
    refs, alive = [], []
    for _, output in runner.run(payload, tasks, scheduler, 2):
        refs.append(weakref.ref(output))
        del output
        gc.collect()
        alive.append(sum(ref() is not None for ref in refs))
    assert len(refs) == len(tasks) and max(alive) <= 3


def leak_limit(problem, seed):
    from joblib.externals.loky import process_executor

    return process_executor._MAX_MEMORY_LEAK_SIZE, os.getpid()


def test_workers_are_not_restarted_for_their_compiled_programs():
    """loky restarts a worker that gained 300 MB after its first task; bayesmir's workers may gain
    WORKER_MEMORY_GROWTH (compiled programs of new shapes), and run in processes other than this one."""
    tasks = [Task(k, simulate_problem(6, J, seed=k, name=f"m{k}"), k) for k, J in enumerate([2, 3])]
    outputs = [output for _, output in runner.run(leak_limit, tasks, "processes", 2)]
    assert all(limit == runner.WORKER_MEMORY_GROWTH > 3e8 for limit, _ in outputs)
    assert all(pid != os.getpid() for _, pid in outputs)


def test_unknown_scheduler_is_input_error():
    from bayesmir import InputError

    with pytest.raises(InputError, match="scheduler"):
        runner.check_scheduler("threads")


def test_workers_die_with_their_parent():
    """SIGKILL of the process that started a loky pool: its workers exit within seconds."""
    script = textwrap.dedent("""
        import os, sys, time
        from bayesmir.runner import worker_pool
        pool = worker_pool(2)
        pids = {pool.submit(os.getpid).result() for _ in range(20)}
        print(" ".join(map(str, pids)), flush=True)
        time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    pids = [int(pid) for pid in process.stdout.readline().split()]
    assert pids
    process.kill()
    process.wait()
    deadline = time.time() + 15  # the watchdog polls every second; slack for a loaded machine
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.2)
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()
             and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]]
    assert not alive


def test_import_changes_no_jax_setting():
    """Importing bayesmir's JAX modules leaves x64, XLA_FLAGS and the compile cache alone, and does
    not start XLA's backend (the CLI sets XLA_FLAGS after these imports may have happened)."""
    script = textwrap.dedent("""
        import os, jax
        from jax._src import xla_bridge
        before = (jax.config.x64_enabled, os.environ.get("XLA_FLAGS"), jax.config.jax_compilation_cache_dir)
        import bayesmir.frequentist, bayesmir.marginal, bayesmir.inference.laplace
        after = (jax.config.x64_enabled, os.environ.get("XLA_FLAGS"), jax.config.jax_compilation_cache_dir)
        assert before == after, (before, after)
        assert not xla_bridge._backends, "importing bayesmir started XLA's backend"
        import numpy as np
        from bayesmir.marginal import pack_problem
        from bayesmir.problem import MirnaProblem
        p = MirnaProblem("m", np.ones((4, 2), dtype=np.int64), ["A", "C"], list("abcd"), np.zeros(4),
                         np.ones((4, 1)), np.ones((4, 1)), ["Intercept"], ["Intercept"])
        assert pack_problem(p).X.dtype == np.float64  # bayesmir computes in 64-bit
        assert jax.numpy.asarray(1.0).dtype == np.float32 and not jax.config.x64_enabled
    """)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr


def test_frequentist_fit_runs_on_the_runner():
    """fit_frequentist serial vs two loky workers: same rows in input order; estimates equal to 1e-8
    (this process runs XLA multi-threaded, the workers one thread: summation order only)."""
    import numpy as np

    from bayesmir.frequentist import fit_frequentist

    problems = [simulate_problem(10, J, seed=k, name=f"mir-{k}") for k, J in enumerate([3, 4, 3])]
    serial = fit_frequentist(problems, scheduler="serial")
    pooled = fit_frequentist(problems, n_jobs=2)
    assert serial["miRNA"].tolist() == pooled["miRNA"].tolist() == ["mir-0", "mir-1", "mir-2"]
    np.testing.assert_allclose(serial["estimate"], pooled["estimate"], rtol=1e-8)
    np.testing.assert_allclose(serial["loglik"], pooled["loglik"], rtol=1e-8)
