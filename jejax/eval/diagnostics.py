"""Collapse diagnostics of an embedding matrix, and the alignment and uniformity of
Wang & Isola 2020."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jejax.eval.distances import squared_euclidean_distance
from jejax.numerics import l2_normalize


def embedding_std(z: ArrayLike) -> jax.Array:
  """Mean per-dimension std of L2-normalised embeddings (SimSiam, Chen & He 2021, sec. 4).

  (N, D) -> scalar. Complete collapse gives 0; embeddings spread over the sphere give
  about 1/sqrt(D).
  """
  return jnp.mean(per_dimension_std(z))


def per_dimension_std(z: ArrayLike) -> jax.Array:
  """(N, D) -> (D,): std (ddof 0) of each dimension of the L2-normalised embeddings.

  The per-dimension view of `embedding_std`: dimensions near 0 are collapsed (dimensional
  collapse, Jing et al. 2022) while the mean can still look healthy.
  """
  return jnp.std(l2_normalize(jnp.asarray(z, jnp.float32)), axis=0)


def effective_rank(z: ArrayLike, eps: float = 1e-7) -> jax.Array:
  """RankMe (Garrido et al. 2023): exp of the entropy of the normalised singular values.

  (N, D) -> scalar in [1, min(N, D)]. The identity matrix has full effective rank;
  embeddings collapsed onto a line have rank about 1.
  """
  s = singular_values(z)
  p = s / jnp.sum(s) + eps
  return jnp.exp(-jnp.sum(p * jnp.log(p)))


# effective_rank already is RankMe (p_k = s_k / ||s||_1 + eps, eq. 1 of Garrido et al.);
# the paper's name is exported too rather than a second copy.
rankme = effective_rank


def alignment(z1: ArrayLike, z2: ArrayLike, alpha: float = 2.0) -> jax.Array:
  """Alignment of positive pairs (Wang & Isola 2020, eq. 4): E ||f(x) - f(y)||_2^alpha.

  (N, D), (N, D) -> scalar, on L2-normalised rows, row i of `z1` paired with row i of
  `z2`. In [0, 2^alpha]: 0 when every pair coincides; lower is better.
  """
  z1, z2 = jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32)
  if z1.ndim != 2 or z1.shape != z2.shape:
    raise ValueError(f"expected two (N, D) arrays of one shape, got {z1.shape}, {z2.shape}")
  diff = l2_normalize(z1) - l2_normalize(z2)
  # Power of the squared norm, not of the norm: no sqrt, so the gradient at 0 is finite.
  return jnp.mean(jnp.sum(diff * diff, axis=1) ** (alpha / 2))


def uniformity(z: ArrayLike, t: float = 2.0) -> jax.Array:
  """Uniformity (Wang & Isola 2020, eq. 5): log E_{i != j} exp(-t ||z_i - z_j||^2).

  (N, D) -> scalar, on L2-normalised rows, over the N (N - 1) ordered pairs i != j
  (the same mean as over i < j). In [-4t, 0]: 0 when all points coincide; more
  negative is more uniform over the sphere. A log-sum-exp keeps it finite when every
  exp(-t d^2) underflows.
  """
  z = jnp.asarray(z, jnp.float32)
  if z.ndim != 2 or z.shape[0] < 2:
    raise ValueError(f"expected (N, D) embeddings with N >= 2, got shape {z.shape}")
  n = z.shape[0]
  z_hat = l2_normalize(z)
  sq_dist = squared_euclidean_distance(z_hat, z_hat)  # (N, N)
  off_diagonal = 1.0 - jnp.eye(n, dtype=jnp.float32)
  return jax.nn.logsumexp(-t * sq_dist, b=off_diagonal) - jnp.log(n * (n - 1.0))


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
