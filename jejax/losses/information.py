"""Information-maximisation losses: VICReg, Barlow Twins, and DeCUR's multimodal Barlow Twins."""

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


def cross_correlation(z1: ArrayLike, z2: ArrayLike, *, eps: float = 1e-5) -> jax.Array:
  """Barlow Twins' cross-correlation (Zbontar et al. 2021, eq. 2): (N, D1), (N, D2) ->
  (D1, D2).

  Each dimension is standardised over the batch as BatchNorm without affine does (biased
  variance, `eps` inside the square root), then C = z1n^T z2n / N. Under `jax.jit` the
  arrays are global, so the statistics and the sum span the global batch however it is
  sharded.
  """
  z1, z2 = jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32)

  def standardize(z):
    return (z - z.mean(axis=0)) / jnp.sqrt(z.var(axis=0) + eps)

  return standardize(z1).T @ standardize(z2) / z1.shape[0]  # (D1, N) @ (N, D2) -> (D1, D2)


def _redundancy_terms(c: jax.Array, diagonal_target: float) -> tuple[jax.Array, jax.Array]:
  """(sum_i (target - C_ii)^2, sum_{i != j} C_ij^2) of a square block C."""
  return jnp.sum((diagonal_target - jnp.diag(c)) ** 2), jnp.sum(_off_diagonal(c) ** 2)


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
  c = cross_correlation(z1, z2, eps=eps)  # (D, D)
  on_diagonal, off_diagonal = _redundancy_terms(c, 1.0)
  loss = on_diagonal + off_diagonal_weight * off_diagonal
  return loss, {"on_diagonal": on_diagonal, "off_diagonal": off_diagonal}


def decur_loss(z1: ArrayLike, z1_view: ArrayLike, z2: ArrayLike, z2_view: ArrayLike, *,
               common_dim: int, off_diagonal_weight: float = 0.0051,
               eps: float = 1e-5) -> tuple[jax.Array, dict[str, jax.Array]]:
  """DeCUR (Wang et al. 2024, "Decoupling Common and Unique Representations for
  Multimodal Self-supervised Learning", ECCV; sec. 3): Barlow Twins across two
  modalities with the embedding split into K common and D - K unique dimensions, plus
  Barlow Twins within each modality.

  With C = `cross_correlation`(z1, z2), the (D, D) cross-modal matrix of the first views,
  C_c = C[:K, :K] and C_u = C[K:, K:]:

    common  = sum_{i<K} (1 - C_ii)^2 + lambda sum_{i != j < K} C_ij^2     (C_c -> I)
    unique  = sum_{i>=K} C_ii^2      + lambda sum_{i != j >= K} C_ij^2    (diag C_u -> 0)
    intra_m = barlow_twins_loss(z_m, z_m_view)                      (m = 1, 2; all D dims)
    loss    = ((common + unique) / 2 + intra_1 + intra_2) / 3

  The weights are those of the authors' code (github.com/zhu-xlab/DeCUR,
  `models/decur.py` and `pretrain_mm.py`: the cross-modal loss is the mean of the
  common and unique terms, the objective the mean of it and the two intra-modal ones).
  The blocks C[:K, K:] and C[K:, :K] that couple common and unique dimensions are not
  penalised, as in the paper and code. The paper's runs use K / D = 0.75 (SUN RGB-D,
  GeoNRW) to 0.875 (SSL4EO-S12), D = 8192, lambda = 0.0051.

  Deviations from the authors' code: it divides C by a hard-coded (per-GPU batch x 4
  GPUs) before summing it over GPUs, the global batch size only on 4 GPUs; here C is
  always divided by the global batch size N. Its two projectors are one module by
  accident of construction (both `nn.Sequential`s wrap the same layer objects); this loss
  does not see projectors, and jejax's DeCUR has one per modality
  (`jejax.methods.decur`).

  Args:
    z1, z1_view: (N, D) embeddings of two augmented views of modality 1.
    z2, z2_view: (N, D) embeddings of two augmented views of modality 2, paired with
      modality 1's by row.
    common_dim: K, the number of leading common dimensions, 0 <= K <= D (static).
    off_diagonal_weight: lambda, on every off-diagonal sum.
    eps: BatchNorm's epsilon of the standardisation.

  Returns:
    (loss, {'common', 'unique', 'cross_modal', 'intra_1', 'intra_2',
    'common_on_diagonal', 'unique_on_diagonal'}); 'cross_modal' is (common + unique) / 2.

  Example:
    >>> z = scipy.linalg.hadamard(8)[:, 1:] * 1.0  # orthogonal, zero-mean +-1 columns
    >>> decur_loss(z, z, z, z, common_dim=4, eps=0.0)[0]  # C = I: 3 unique dims of C_ii = 1
    Array(0.5, dtype=float32)  # ((0 + 3) / 2 + 0 + 0) / 3
  """
  z1, z2 = jnp.asarray(z1), jnp.asarray(z2)
  if z1.shape[1] != z2.shape[1]:
    raise ValueError(f"the two modalities' embeddings have {z1.shape[1]} and {z2.shape[1]} "
                     "dimensions; DeCUR pairs them dimension by dimension")
  if not 0 <= common_dim <= z1.shape[1]:
    raise ValueError(f"common_dim={common_dim} must lie in [0, {z1.shape[1]}]")
  c = cross_correlation(z1, z2, eps=eps)  # (D, D)
  common_on, common_off = _redundancy_terms(c[:common_dim, :common_dim], 1.0)
  unique_on, unique_off = _redundancy_terms(c[common_dim:, common_dim:], 0.0)
  common = common_on + off_diagonal_weight * common_off
  unique = unique_on + off_diagonal_weight * unique_off
  cross_modal = (common + unique) / 2
  intra_1, _ = barlow_twins_loss(z1, z1_view, off_diagonal_weight=off_diagonal_weight, eps=eps)
  intra_2, _ = barlow_twins_loss(z2, z2_view, off_diagonal_weight=off_diagonal_weight, eps=eps)
  loss = (cross_modal + intra_1 + intra_2) / 3
  return loss, {"common": common, "unique": unique, "cross_modal": cross_modal,
                "intra_1": intra_1, "intra_2": intra_2, "common_on_diagonal": common_on,
                "unique_on_diagonal": unique_on}
