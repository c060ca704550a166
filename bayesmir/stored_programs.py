"""Compiled programs whose traced form is kept on disk, so a warm process does not trace them again.

JAX's persistent compilation cache (:func:`bayesmir.marginal.use_compilation_cache`) skips XLA's
compile in a later process, but not the tracing and lowering of the Python function that precede
it: ~0.3-0.5 s per program and array shape for the nested Laplace programs (a Newton loop, its
gradient, a sequential map), ~1 s per shape in all, paid in every new process and worker. On the
real data set of ``benchmarks/bench_real.py`` (8 shapes) that was a quarter of a warm run.

:func:`stored_program` wraps such a function: at its first call with new argument shapes it is
exported with :mod:`jax.export` (the traced StableHLO, serialised) into
``<compile cache>/programs/``; a later process deserialises it (~3 ms) instead of tracing, and
XLA's persistent cache then supplies the compiled executable. The file name hashes everything
the program depends on: the source of the whole ``bayesmir`` package, the JAX version, the
function, its static arguments and the shapes and dtypes of its arguments, so a changed program
is never read. Files are written under a temporary name and renamed
(:func:`bayesmir.fit_files.write_atomically`; concurrent workers may write the same file).
Called under a JAX trace (e.g. inside another ``jit``), or with the compile cache disabled,
the function is simply jitted.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from jax import export

from bayesmir import marginal
from bayesmir.fit_files import write_atomically

_TRACER = jax.core.Tracer

export.register_namedtuple_serialization(marginal.Arrays, serialized_name="bayesmir.marginal.Arrays")
export.register_namedtuple_serialization(marginal.LatentGaussian,
                                         serialized_name="bayesmir.marginal.LatentGaussian")


def stored_program(function: Callable | None = None, *, static_argnames: tuple[str, ...] = ()):
    """``function`` jitted with ``static_argnames``, its traced form kept on disk (module docstring).

    Usable as a decorator, ``@stored_program(static_argnames=("q", "family"))``. The returned
    callable takes the same arguments as ``function`` (static ones by position or name) and has
    ``jitted``, the plain ``jax.jit`` of ``function`` (for ``.lower`` in tests).
    """
    if function is None:
        return functools.partial(stored_program, static_argnames=static_argnames)
    return _StoredProgram(function, tuple(static_argnames))


class _StoredProgram:
    def __init__(self, function: Callable, static_argnames: tuple[str, ...]) -> None:
        self.function = function
        self.static_argnames = static_argnames
        self.signature = inspect.signature(function)
        if list(self.signature.parameters)[len(self.signature.parameters) - len(static_argnames):] != list(
                static_argnames):
            raise ValueError(f"{function.__name__}: the static arguments must be the last parameters")
        self.jitted = jax.jit(function, static_argnames=static_argnames)
        self._calls: dict = {}
        functools.update_wrapper(self, function)

    def __call__(self, *args, **kwargs):
        n_static = len(self.static_argnames)
        if kwargs or len(args) != len(self.signature.parameters):
            bound = self.signature.bind(*args, **kwargs)
            args = tuple(bound.arguments[name] for name in self.signature.parameters)
        dynamic, static = args[:len(args) - n_static], args[len(args) - n_static:]
        leaves, tree = jax.tree_util.tree_flatten(dynamic)
        if any(isinstance(x, _TRACER) for x in leaves):
            return self.jitted(*args)
        key = (static, tree, tuple((np.shape(x), getattr(x, "dtype", type(x))) for x in leaves))
        call = self._calls.get(key)
        if call is None:
            if not marginal.compilation_cache_dir():
                call = self._calls[key] = functools.partial(self.jitted, **dict(zip(self.static_argnames, static)))
            else:
                exported = self._exported(key, dict(zip(self.static_argnames, static)), dynamic)
                # every argument placed on the device by the jit itself: a mix of committed arguments
                # (the program's own outputs fed back, e.g. a latent mode) and uncommitted ones
                # would compile again
                device = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])  # not on import: no backend yet
                call = self._calls[key] = jax.jit(exported.call, in_shardings=device)
        return call(*dynamic)

    def _exported(self, key, static: dict, dynamic: tuple) -> export.Exported:
        digest = hashlib.sha256(repr((_source_digest(), jax.__version__, self.function.__module__,
                                      self.function.__qualname__, key)).encode()).hexdigest()[:32]
        path = Path(marginal.compilation_cache_dir()) / "programs" / f"{self.function.__name__}-{digest}.jaxexport"
        stored = _read_exported(path)
        if stored is not None:
            return stored
        exported = export.export(jax.jit(functools.partial(self.function, **static)))(*dynamic)
        # an unwritable cache (or no flatbuffers to serialise with) only costs the next process a trace
        with contextlib.suppress(OSError, ImportError):
            path.parent.mkdir(parents=True, exist_ok=True)
            payload = exported.serialize()
            write_atomically(path, lambda temporary: temporary.write_bytes(payload))
        return exported


def _read_exported(path: Path) -> export.Exported | None:
    """The program stored at ``path``; None if it is not there yet, unreadable or damaged (then it
    is traced again and rewritten)."""
    try:
        return export.deserialize(bytearray(path.read_bytes()))
    except Exception:  # noqa: BLE001 - any failure to read back only costs a trace
        return None


@functools.cache
def _source_digest() -> str:
    """SHA-256 of every ``.py`` file of the installed ``bayesmir`` package (names and contents)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for file in sorted(root.rglob("*.py")):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()

