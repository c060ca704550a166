"""Programs kept on disk in traced form (bayesmir/stored_programs.py): same numbers as jax.jit, read back
by a later process instead of traced, one file per shape and static arguments, plain jit under a trace."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from bayesmir import stored_programs
from bayesmir.marginal import Arrays, in_x64


def newton_sqrt(x, data: Arrays, steps):
    """A small program with a loop, a pytree argument and a static one."""
    def body(_, y):
        return 0.5 * (y + x / y)

    return jax.lax.fori_loop(0, steps, body, jnp.ones_like(x)) + data.offset.sum(), {"twice": 2 * x}


def arrays(n: int) -> Arrays:
    return Arrays(np.zeros((n, 3)), np.ones(3), np.arange(n, dtype=float), np.ones((n, 1)), np.ones((n, 2)), np.ones(1))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESMIR_JAX_CACHE", str(tmp_path))
    return tmp_path / "programs"


@in_x64
def test_same_numbers_as_jit_and_read_back_without_tracing(cache, monkeypatch):
    x = np.array([2.0, 9.0, 10.0])
    expected = jax.jit(newton_sqrt, static_argnames="steps")(x, arrays(4), 30)
    first = stored_programs.stored_program(newton_sqrt, static_argnames=("steps",))
    value, extra = first(x, arrays(4), 30)
    np.testing.assert_array_equal(value, expected[0])
    np.testing.assert_array_equal(extra["twice"], 2 * x)
    np.testing.assert_allclose(value, np.sqrt(x) + 6.0, rtol=1e-12)
    assert len(list(cache.glob("newton_sqrt-*.jaxexport"))) == 1

    def no_export(*args, **kwargs):
        raise AssertionError("traced again")

    monkeypatch.setattr(export, "export", no_export)
    later = stored_programs.stored_program(newton_sqrt, static_argnames=("steps",))  # a new process's copy
    np.testing.assert_array_equal(later(x, arrays(4), steps=30)[0], expected[0])


@in_x64
def test_a_damaged_file_is_traced_again_and_rewritten(cache):
    program = stored_programs.stored_program(newton_sqrt, static_argnames=("steps",))
    expected = program(np.array([4.0]), arrays(2), 20)[0]
    (path,) = cache.glob("newton_sqrt-*.jaxexport")
    path.write_bytes(path.read_bytes()[:100])
    again = stored_programs.stored_program(newton_sqrt, static_argnames=("steps",))
    np.testing.assert_array_equal(again(np.array([4.0]), arrays(2), 20)[0], expected)
    assert stored_programs._read_exported(path) is not None


@in_x64
def test_one_file_per_shape_and_static_argument(cache):
    program = stored_programs.stored_program(newton_sqrt, static_argnames=("steps",))
    program(np.ones(3), arrays(4), 5)
    program(np.ones(3), arrays(4), 5)
    program(np.ones(3), arrays(5), 5)
    program(np.ones(3), arrays(4), 6)
    assert len(list(cache.glob("newton_sqrt-*.jaxexport"))) == 3


@in_x64
def test_under_a_trace_and_without_cache_it_is_plain_jit(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESMIR_JAX_CACHE", "")
    program = stored_programs.stored_program(newton_sqrt, static_argnames=("steps",))
    grad = jax.grad(lambda x: program(x, arrays(4), 40)[0].sum())(np.array([4.0, 16.0]))
    np.testing.assert_allclose(grad, 0.5 / np.sqrt([4.0, 16.0]), rtol=1e-10)
    program(np.ones(3), arrays(4), 5)
    assert not list(tmp_path.rglob("*.jaxexport"))


def test_static_arguments_must_come_last():
    with pytest.raises(ValueError, match="last parameters"):
        stored_programs.stored_program(newton_sqrt, static_argnames=("x",))
