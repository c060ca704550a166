"""JAX programs whose tracing persists across processes (``jax.export``).

``jax.jit`` traces and lowers a function again for every new argument shape in every
process. For the nested Laplace that is ~1 s per isomiR-bucket shape (four entry
points), ~10 s of a 30 s fit of the 39-sample simulation, and again in each worker of
``n_jobs``. XLA's persistent cache (:func:`bayesmir.marginal._use_compilation_cache`)
saves only the compile step. :func:`persistent_jit` also saves tracing and lowering:
the first process exports each traced program (:mod:`jax.export`) into the same cache
folder, and later processes deserialise it and lower only a thin call to it.

A cached program is keyed by the function, its static arguments, the shapes and dtypes
of the others, the JAX version and a digest of bayesmir's source files, so editing the
package never reuses a stale program. With the cache disabled (``BAYESMIR_JAX_CACHE``
empty) or without ``flatbuffers`` (needed by ``jax.export`` serialisation) this is plain
``jax.jit``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp

PACKAGE = Path(__file__).resolve().parent


def persistent_jit(static_argnames: tuple[str, ...] = ()):
    """Decorator: like ``jax.jit(fun, static_argnames=...)``, with the traced program kept on disk.

    Static arguments may be passed by position or name; every other argument must be a
    pytree of arrays (its leaves are converted with ``jnp.asarray``).
    """
    def decorate(fun):
        return PersistentJit(fun, tuple(static_argnames))

    return decorate


class PersistentJit:
    """A function jitted through exported programs cached on disk (module docstring)."""

    def __init__(self, fun, static_argnames: tuple[str, ...]) -> None:
        self.fun = fun
        self.static_argnames = static_argnames
        self.signature = inspect.signature(fun)
        self.jitted = jax.jit(fun, static_argnames=static_argnames)
        self.programs: dict[tuple, object] = {}
        functools.update_wrapper(self, fun)

    def __call__(self, *args, **kwargs):
        folder = exported_folder()
        if folder is None:
            return self.jitted(*args, **kwargs)
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        static = {k: v for k, v in bound.arguments.items() if k in self.static_argnames}
        names = [k for k in bound.arguments if k not in self.static_argnames]
        dynamic = jax.tree_util.tree_map(jnp.asarray, [bound.arguments[k] for k in names])
        leaves, tree = jax.tree_util.tree_flatten(dynamic)
        key = (tuple(sorted(static.items())), str(tree), tuple((x.shape, str(x.dtype)) for x in leaves))
        if key not in self.programs:
            self.programs[key] = self._program(folder, key, names, static, dynamic)
        return self.programs[key](*dynamic)

    def _program(self, folder: Path, key: tuple, names: list[str], static: dict, dynamic: list):
        """The jitted call of the exported program for ``key``: read from disk, or exported and written."""
        from jax import export

        digest = hashlib.sha256(repr((self.fun.__module__, self.fun.__qualname__, key, jax.__version__,
                                      source_digest())).encode()).hexdigest()[:32]
        path = folder / f"{self.fun.__qualname__}-{digest}.jaxexport"
        if path.is_file():
            return jax.jit(export.deserialize(bytearray(path.read_bytes())).call)

        def program(*values):
            return self.fun(**dict(zip(names, values)), **static)

        exported = export.export(jax.jit(program))(*dynamic)
        _write_atomically(path, exported.serialize())
        return jax.jit(exported.call)


@functools.cache
def exported_folder() -> Path | None:
    """Folder of the exported programs, or None when caching is off or serialisation is unavailable."""
    base = os.environ.get("BAYESMIR_JAX_CACHE", str(Path.home() / ".cache" / "bayesmir" / "jax"))
    try:
        import flatbuffers  # noqa: F401 - required by jax.export serialisation
    except ImportError:
        return None
    if not base:
        return None
    folder = Path(base) / "exported"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder


@functools.cache
def source_digest() -> str:
    """SHA-256 of every bayesmir source file (a cached program is valid for this source only)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _write_atomically(path: Path, payload: bytes) -> None:
    """Write ``payload`` so that a concurrent reader never sees a partial file."""
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(payload)
    os.replace(handle.name, path)
