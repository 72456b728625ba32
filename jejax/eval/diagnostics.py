"""Collapse diagnostics of an embedding matrix."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jejax.models.ssl import l2_normalize


def embedding_std(z: ArrayLike) -> jax.Array:
  """Mean per-dimension std of L2-normalised embeddings (SimSiam, Chen & He 2021, sec. 4).

  (N, D) -> scalar. Complete collapse gives 0; embeddings spread over the sphere give
  about 1/sqrt(D).
  """
  return jnp.mean(jnp.std(l2_normalize(jnp.asarray(z, jnp.float32)), axis=0))


def effective_rank(z: ArrayLike, eps: float = 1e-7) -> jax.Array:
  """RankMe (Garrido et al. 2023): exp of the entropy of the normalised singular values.

  (N, D) -> scalar in [1, min(N, D)]. The identity matrix has full effective rank;
  embeddings collapsed onto a line have rank about 1.
  """
  s = singular_values(z)
  p = s / jnp.sum(s) + eps
  return jnp.exp(-jnp.sum(p * jnp.log(p)))


def singular_values(z: ArrayLike) -> jax.Array:
  """Singular values of (N, D) `z`, largest first, as sqrt(eig(Z^T Z)) (or of Z Z^T when
  N < D).

  Inside a jitted train step on CPU, `jnp.linalg.svd` of a (256, 128) matrix took 1.2 s,
  twice the forward and backward pass; the symmetric eigensolver on the small Gram
  matrix takes milliseconds. Eigenvalues below the float32 noise floor of the Gram
  matrix (largest * size * eps, the tolerance of numpy's matrix_rank) are set to zero,
  so singular values under ~sqrt(size * eps) = 0.4% (size 128) of the largest read as 0.
  """
  z = jnp.asarray(z, jnp.float32)
  gram = z.T @ z if z.shape[0] >= z.shape[1] else z @ z.T  # (D, D) or (N, N)
  eigenvalues = jnp.linalg.eigvalsh(gram, symmetrize_input=False)[::-1]
  tolerance = eigenvalues[0] * gram.shape[0] * jnp.finfo(jnp.float32).eps
  return jnp.sqrt(jnp.where(eigenvalues > tolerance, eigenvalues, 0.0))
