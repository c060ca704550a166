"""Programs cached across processes with jax.export: same numbers as jax.jit, read back from disk."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from bayesmir import compiled, marginal


def scaled_norm(x, data: marginal.Arrays, power):
    """A function of an array and an Arrays pytree with one static argument."""
    return jnp.sum(jnp.abs(x) ** power) * jnp.sum(data.counts * data.mask)


def arrays(J: int) -> marginal.Arrays:
    rng = np.random.default_rng(J)
    return marginal.Arrays(
        counts=jnp.asarray(rng.poisson(5.0, (6, J)).astype(float)), mask=jnp.ones(J), offset=jnp.zeros(6),
        X=jnp.ones((6, 1)), Z=jnp.ones((6, 1)), prior_sd=jnp.ones(1),
    )


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    pytest.importorskip("flatbuffers")
    monkeypatch.setenv("BAYESMIR_JAX_CACHE", str(tmp_path))
    compiled.exported_folder.cache_clear()
    yield tmp_path / "exported"
    compiled.exported_folder.cache_clear()


def test_exported_program_matches_jit_and_is_reused_from_disk(cache_folder):
    """Bit-identical to jax.jit; one file per (static value, shape); a new wrapper (as in a new process)
    reads the file instead of exporting again."""
    x = jnp.linspace(-1.0, 2.0, 7)
    first = compiled.persistent_jit(static_argnames=("power",))(scaled_norm)
    expected = float(scaled_norm(x, arrays(4), 3))
    assert float(first(x, arrays(4), 3)) == expected
    assert float(first(x, arrays(4), power=3)) == expected  # static by name or position: one program
    assert len(list(cache_folder.iterdir())) == 1
    first(x, arrays(8), 3)
    first(x, arrays(4), 2)
    files = sorted(cache_folder.iterdir())
    assert len(files) == 3
    stamps = [path.stat().st_mtime_ns for path in files]

    again = compiled.persistent_jit(static_argnames=("power",))(scaled_norm)
    assert float(again(x, arrays(8), 3)) == float(scaled_norm(x, arrays(8), 3))
    assert [path.stat().st_mtime_ns for path in sorted(cache_folder.iterdir())] == stamps


def test_disabled_cache_is_plain_jit(monkeypatch, tmp_path):
    monkeypatch.setenv("BAYESMIR_JAX_CACHE", "")
    compiled.exported_folder.cache_clear()
    try:
        wrapped = compiled.persistent_jit(static_argnames=("power",))(scaled_norm)
        x = jnp.arange(3.0)
        assert float(wrapped(x, arrays(4), 2)) == float(scaled_norm(x, arrays(4), 2))
        assert compiled.exported_folder() is None
    finally:
        compiled.exported_folder.cache_clear()
