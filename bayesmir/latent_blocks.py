"""Block algebra of the latent field's Hessian for :mod:`bayesmir.marginal`, in two elimination orders.

The latent field of one miRNA is ``z = (b, v, w)``: ``b`` (p) the spherical fixed effects
(``latent_beta`` mode only, else p = 0), ``v`` (n) the sample effects, ``w`` (J, q) the
isomiR effects, with ``eta_ij = fixed_i + (X s_b b)_i + s v_i + A_i' w_j`` (``A = Z L``).
The Hessian of the negative log joint, with weights ``W`` (n, J) and ``r_i = sum_j W_ij``::

    H_bb = I + X_s' diag(r) X_s      H_bv = X_s' diag(s r)     H_vv = I + s^2 diag(r)  (diagonal)
    H_bw[:, j] = sum_i X_s,i W_ij A_i'   H_vw[i, j] = s W_ij A_i'   D_j = I + sum_i W_ij A_i A_i'

is never formed as a dense ``(p + n + Jq)`` matrix. Two exact ways to solve with it:

- ``"isomirs"``: eliminate the ``q x q`` isomiR blocks ``D_j``, keep ``g = (b, v)`` dense
  (size ``p + n``): Schur complement ``S = H_gg - B D^-1 B'``, ``O(n^2 J q^2 + n^3)``;
- ``"samples"``: eliminate the diagonal sample block ``H_vv``, keep ``h = (b, w)`` dense
  (size ``p + J q``): ``S = H_hh - C H_vv^-1 C'``, ``O(n (p + J q)^2 + (p + J q)^3)``.

The order is chosen from the static shapes (:func:`eliminate_samples`: the samples when
``n > J q``); both give the same numbers up to rounding. The ``q x q`` blocks are
factorised by :mod:`bayesmir.block_algebra` (no batched LAPACK call, which can deadlock
XLA's CPU pool); the dense block by one unbatched Cholesky.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesmir import block_algebra

#: Forces the elimination order ("isomirs" or "samples"; None: by shape). For tests only: it is
#: read when a program is traced, so clear JAX's caches (``jax.clear_caches()``) after setting it.
FORCE_ORDER: str | None = None


def eliminate_samples(n_samples: int, n_columns: int) -> bool:
    """Whether the sample block is eliminated (dense block ``(b, w)``), from static sizes:
    ``n_samples`` against ``n_columns = J_pad q`` (or :data:`FORCE_ORDER`)."""
    if FORCE_ORDER is not None:
        return FORCE_ORDER == "samples"
    return n_samples > n_columns


class Pieces(NamedTuple):
    """The Hessian blocks listed in the module docstring (``H_vv`` by its diagonal)."""

    H_bb: jax.Array  #: (p, p)
    H_bv: jax.Array  #: (p, n)
    H_vv: jax.Array  #: (n,) diagonal
    H_bw: jax.Array  #: (p, J, q)
    H_vw: jax.Array  #: (n, J, q)
    D: jax.Array  #: (J, q, q)


class Factor(NamedTuple):
    """Factorised Hessian in one elimination order (the order is told by ``block_chol.ndim``).

    ``"isomirs"``: ``schur_chol`` (p+n, p+n), ``block_chol`` (J, q, q) the factors of ``D_j``,
    ``cross`` (p+n, J, q) ``B = [H_bw; H_vw]``. ``"samples"``: ``schur_chol`` (p+Jq, p+Jq),
    ``block_chol`` (n,) ``sqrt(H_vv)``, ``cross`` (p+Jq, n) ``C = [H_bv; H_vw']``.
    """

    schur_chol: jax.Array
    block_chol: jax.Array
    cross: jax.Array


def eta(fixed, Xs, s, A, g, w):
    """Linear predictor (n, J) from ``g = (b, v)`` and ``w``; ``Xs`` (n, p) is empty without latent ``b``."""
    p = Xs.shape[1]
    return (fixed + Xs @ g[:p] + s * g[p:])[:, None] + A @ w.T


def gradient(Xs, s, A, g, w, score):
    """Gradient ``(grad_g (p+n,), grad_w (J, q))`` of the negative log joint, given d loglik / d eta."""
    row = score.sum(1)
    return g - jnp.concatenate([Xs.T @ row, s * row]), w - jnp.einsum("ij,ik->jk", score, A)


def pieces(Xs, s, A, weight) -> Pieces:
    """The Hessian's blocks at weights ``weight`` (n, J), nothing of size n x n."""
    row = weight.sum(1)
    q = A.shape[1]
    weighted_A = weight[:, :, None] * A[:, None, :]  # (n, J, q)
    return Pieces(
        H_bb=jnp.eye(Xs.shape[1]) + (Xs.T * row) @ Xs,
        H_bv=Xs.T * (s * row),
        H_vv=1.0 + s**2 * row,
        H_bw=jnp.einsum("ip,ijk->pjk", Xs, weighted_A),
        H_vw=s * weighted_A,
        D=jnp.eye(q) + jnp.einsum("ijk,il->jkl", weighted_A, A),
    )


def _dense_cholesky(S):
    return jnp.linalg.cholesky(0.5 * (S + S.T))


def factor(blocks: Pieces, samples: bool) -> Factor:
    """Factorise the Hessian, eliminating the sample block (``samples``) or the isomiR blocks."""
    p, (J, q) = blocks.H_bb.shape[0], blocks.D.shape[:2]
    if samples:
        Jq = J * q
        eye_J = jnp.eye(J, dtype=blocks.D.dtype)
        block_diagonal = jnp.einsum("jkl,ja->jkal", blocks.D, eye_J).reshape(Jq, Jq)
        H_bw = blocks.H_bw.reshape(p, Jq)
        H_hh = jnp.block([[blocks.H_bb, H_bw], [H_bw.T, block_diagonal]])
        C = jnp.concatenate([blocks.H_bv, blocks.H_vw.reshape(-1, Jq).T], 0)  # (p + Jq, n)
        S = H_hh - (C / blocks.H_vv) @ C.T
        return Factor(_dense_cholesky(S), jnp.sqrt(blocks.H_vv), C)
    H_gg = jnp.block([[blocks.H_bb, blocks.H_bv], [blocks.H_bv.T, jnp.diag(blocks.H_vv)]])
    B = jnp.concatenate([blocks.H_bw, blocks.H_vw], 0)  # (p + n, J, q)
    block_chol = block_algebra.cholesky(blocks.D)
    D_inv_Bt = _block_solve(block_chol, B)
    S = H_gg - jnp.einsum("mjk,ljk->ml", B, D_inv_Bt)
    return Factor(_dense_cholesky(S), block_chol, B)


def _block_solve(block_chol, B):
    """``D^-1 B'`` as (m, J, q): each row of ``B`` solved with every isomiR block."""
    return jnp.swapaxes(block_algebra.cho_solve(block_chol[:, None], jnp.swapaxes(B, 0, 1)), 0, 1)


def is_samples(fac) -> bool:
    """Whether a :class:`Factor` (or a Gaussian with its fields) eliminated the samples."""
    return fac.block_chol.ndim == 1


def solve(fac: Factor, grad_g, grad_w):
    """``H^-1 (grad_g, grad_w)`` from the factorisation: ``(step_g (p+n,), step_w (J, q))``."""
    J, q = grad_w.shape
    if is_samples(fac):
        n = fac.block_chol.shape[0]
        p = grad_g.shape[0] - n
        d = fac.block_chol**2
        grad_v = grad_g[p:]
        rhs = jnp.concatenate([grad_g[:p], grad_w.ravel()]) - fac.cross @ (grad_v / d)
        step_h = jax.scipy.linalg.cho_solve((fac.schur_chol, True), rhs)
        step_v = (grad_v - fac.cross.T @ step_h) / d
        return jnp.concatenate([step_h[:p], step_v]), step_h[p:].reshape(J, q)
    D_inv_gw = block_algebra.cho_solve(fac.block_chol, grad_w)
    rhs = grad_g - jnp.einsum("mjk,jk->m", fac.cross, D_inv_gw)
    step_g = jax.scipy.linalg.cho_solve((fac.schur_chol, True), rhs)
    D_inv_B = _block_solve(fac.block_chol, fac.cross)
    return step_g, D_inv_gw - jnp.einsum("mjk,m->jk", D_inv_B, step_g)


def log_det(fac: Factor):
    """``log det H`` from the factorisation."""
    blocks = fac.block_chol if is_samples(fac) else jnp.diagonal(fac.block_chol, axis1=1, axis2=2)
    return 2 * jnp.sum(jnp.log(blocks)) + 2 * jnp.sum(jnp.log(jnp.diagonal(fac.schur_chol)))


def split_normals(n: int, p: int, samples: bool, normals_g, normals_w):
    """Standard normals ``(..., p+n)`` and ``(..., J, q)`` regrouped as ``(dense, eliminated)``:
    the dense block's (``(b, v)`` or ``(b, w)``) and the eliminated block's (``w`` or ``v``)."""
    if not samples:
        return normals_g, normals_w
    lead = normals_w.shape[:-2]
    flat_w = normals_w.reshape(*lead, -1)
    return jnp.concatenate([normals_g[..., :p], flat_w], -1), normals_g[..., p:]


def from_noise(fac, g, w, schur_noise, normals_rest):
    """Draws ``(g (S, p+n), w (S, J, q))`` given ``schur_noise = chol(S)'^-1 normals_dense`` (S, k) and
    the eliminated block's normals (:func:`split_normals`); ``g``, ``w`` the mode. Explicit algebra
    only (no LAPACK), so it may be vectorised over Gaussians."""
    J, q = w.shape
    if is_samples(fac):
        n = fac.block_chol.shape[0]
        p = g.shape[0] - n
        d = fac.block_chol**2
        h = jnp.concatenate([g[:p], w.ravel()]) + schur_noise
        v = g[p:] + normals_rest / fac.block_chol - (schur_noise @ fac.cross) / d
        return jnp.concatenate([h[:, :p], v], -1), h[:, p:].reshape(-1, J, q)
    noise_w = block_algebra.solve_lower(fac.block_chol, normals_rest, transpose=True)
    shift = block_algebra.cho_solve(fac.block_chol, jnp.einsum("mjk,sm->sjk", fac.cross, schur_noise))
    return g + schur_noise, w + noise_w - shift
