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
  s = jnp.linalg.svd(jnp.asarray(z, jnp.float32), compute_uv=False)
  p = s / jnp.sum(s) + eps
  return jnp.exp(-jnp.sum(p * jnp.log(p)))
