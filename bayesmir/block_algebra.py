"""Cholesky factors and triangular solves of many small ``q x q`` blocks, by explicit algebra.

The latent field's Hessian has one ``q x q`` block per isomiR (``q`` = 1 or 2 in miRglmm's
models). Factorising and solving them with batched LAPACK calls (``jnp.linalg.cholesky``
or ``jax.scipy.linalg.solve_triangular`` on stacked matrices) is not only slower than
unrolled arithmetic for such tiny blocks: in jaxlib 0.10 a batched LAPACK call fans its
batch out on XLA's CPU thread pool and blocks the calling pool thread until the pieces
are done, so two batched calls that XLA runs at the same time can deadlock a 2-thread pool
(measured: a fit of real data hung forever in ``lapack_dtrsm_ffi``). The functions here use
element-wise operations only, unrolled over the static block size, so they vectorise over
any leading axes and are differentiable to any order.

Every function takes blocks with leading batch axes ``(..., q, q)`` and right-hand side
vectors ``(..., q)``.
"""

from __future__ import annotations

import jax.numpy as jnp


def cholesky(blocks):
    """Lower Cholesky factor of each symmetric positive-definite block (NaN where not PD).

    Parameters
    ----------
    blocks : array (..., q, q)

    Returns
    -------
    array (..., q, q)
        ``L`` with ``L L' = blocks``, zeros above the diagonal.
    """
    q = blocks.shape[-1]
    entry = [[None] * q for _ in range(q)]
    for j in range(q):
        diagonal = blocks[..., j, j] - sum(entry[j][k] ** 2 for k in range(j))
        entry[j][j] = jnp.sqrt(diagonal)
        for i in range(j + 1, q):
            entry[i][j] = (blocks[..., i, j] - sum(entry[i][k] * entry[j][k] for k in range(j))) / entry[j][j]
    zero = jnp.zeros_like(blocks[..., 0, 0])
    rows = [jnp.stack([entry[i][j] if j <= i else zero for j in range(q)], axis=-1) for i in range(q)]
    return jnp.stack(rows, axis=-2)


def solve_lower(factor, rhs, transpose: bool = False):
    """Solve ``L x = rhs`` (or ``L' x = rhs`` with ``transpose``) for lower-triangular blocks ``L``.

    Parameters
    ----------
    factor : array (..., q, q)
        Lower-triangular blocks (entries above the diagonal are not read).
    rhs : array (..., q)
        Right-hand side vectors; the leading axes broadcast against ``factor``'s (add an
        axis to ``factor`` to solve several vectors with one block).
    transpose : bool

    Returns
    -------
    array (..., q)
    """
    q = factor.shape[-1]
    x = [None] * q
    for i in (range(q - 1, -1, -1) if transpose else range(q)):
        if transpose:  # row i of L' is column i of L
            residual = rhs[..., i] - sum(factor[..., k, i] * x[k] for k in range(i + 1, q))
        else:
            residual = rhs[..., i] - sum(factor[..., i, k] * x[k] for k in range(i))
        x[i] = residual / factor[..., i, i]
    return jnp.stack(x, axis=-1)


def cho_solve(factor, rhs):
    """Solve ``(L L') x = rhs`` given each block's Cholesky factor ``L`` (:func:`cholesky`)."""
    return solve_lower(factor, solve_lower(factor, rhs), transpose=True)
