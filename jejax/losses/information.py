"""Information-maximisation losses: VICReg and Barlow Twins."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def _off_diagonal(m: jax.Array) -> jax.Array:
  return m - jnp.diag(jnp.diag(m))


def vicreg_loss(z1: ArrayLike, z2: ArrayLike, *, sim_weight: float = 25.0,
                var_weight: float = 25.0, cov_weight: float = 1.0,
                eps: float = 1e-4) -> tuple[jax.Array, dict[str, jax.Array]]:
  """VICReg (Bardes, Ponce, LeCun 2022, eq. 1-6), with the paper's weights 25, 25, 1.

  invariance: mean squared error between the two views' embeddings;
  variance:   mean over dimensions of relu(1 - sqrt(Var(z_j) + eps)), per view, averaged;
  covariance: sum of squared off-diagonal entries of Cov(z) divided by D, per view, summed.
  Variances and covariances are unbiased (divided by N - 1), as in the paper's code, and
  taken over the global batch under `jax.jit`.

  Args:
    z1, z2: (N, D) embeddings of the two views (not normalised).

  Returns:
    (loss, {'invariance', 'variance', 'covariance'}).
  """
  z1, z2 = jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32)
  n, d = z1.shape
  invariance = jnp.mean((z1 - z2) ** 2)

  def variance(z):
    std = jnp.sqrt(jnp.var(z, axis=0, ddof=1) + eps)
    return jnp.mean(jax.nn.relu(1.0 - std))

  def covariance(z):
    z = z - z.mean(axis=0)
    cov = z.T @ z / (n - 1)  # (D, N) @ (N, D) -> (D, D)
    return jnp.sum(_off_diagonal(cov) ** 2) / d

  var = (variance(z1) + variance(z2)) / 2
  cov = covariance(z1) + covariance(z2)
  loss = sim_weight * invariance + var_weight * var + cov_weight * cov
  return loss, {"invariance": invariance, "variance": var, "covariance": cov}


def barlow_twins_loss(z1: ArrayLike, z2: ArrayLike, *, off_diagonal_weight: float = 0.0051,
                      eps: float = 1e-5) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Barlow Twins (Zbontar et al. 2021, eq. 1-2).

  Each embedding dimension is standardised over the batch (BatchNorm without affine:
  biased variance, eps 1e-5), C = z1n^T z2n / N is the (D, D) cross-correlation, and
  loss = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2. lambda is 0.0051 as in the
  authors' code (the paper rounds it to 5e-3). Statistics span the global batch.

  Args:
    z1, z2: (N, D) embeddings of the two views.

  Returns:
    (loss, {'on_diagonal', 'off_diagonal'}).
  """
  z1, z2 = jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32)
  n = z1.shape[0]

  def standardize(z):
    return (z - z.mean(axis=0)) / jnp.sqrt(z.var(axis=0) + eps)

  c = standardize(z1).T @ standardize(z2) / n  # (D, N) @ (N, D) -> (D, D)
  on_diagonal = jnp.sum((1.0 - jnp.diag(c)) ** 2)
  off_diagonal = jnp.sum(_off_diagonal(c) ** 2)
  loss = on_diagonal + off_diagonal_weight * off_diagonal
  return loss, {"on_diagonal": on_diagonal, "off_diagonal": off_diagonal}
