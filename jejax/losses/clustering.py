"""Clustering losses: Sinkhorn-Knopp codes and SwAV's swapped prediction."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def sinkhorn_knopp(scores: ArrayLike, *, epsilon: float = 0.05,
                   num_iters: int = 3) -> jax.Array:
  """Soft equipartitioned codes from prototype scores (SwAV, Caron et al. 2020, eq. 3).

  Solves the entropy-regularised transport of B samples onto K prototypes with uniform
  marginals (each prototype gets B/K samples) by `num_iters` alternating row and column
  normalisations of exp(scores / epsilon). It runs in the log domain: the same iterates
  as the paper's code, without overflow for small epsilon. Under `jax.jit` the column
  sums run over the global batch, as SwAV's distributed version does with all-reduce.

  Args:
    scores: (B, K) scores z . c_k. Not differentiated through (stop-gradient applied).
    epsilon: entropy weight; 0.05 in the paper.
    num_iters: normalisation rounds; 3 in the paper.

  Returns:
    (B, K) codes; each row sums to 1.
  """
  s = jax.lax.stop_gradient(jnp.asarray(scores, jnp.float32))
  b, k = s.shape
  log_q = s / epsilon
  log_q = log_q - jax.nn.logsumexp(log_q)  # Q / sum(Q)

  def normalize(_, log_q):
    # Every prototype gets total mass 1/K ...
    log_q = log_q - jax.nn.logsumexp(log_q, axis=0, keepdims=True) - jnp.log(k)
    # ... and every sample 1/B.
    return log_q - jax.nn.logsumexp(log_q, axis=1, keepdims=True) - jnp.log(b)

  return jnp.exp(jax.lax.fori_loop(0, num_iters, normalize, log_q)) * b


def swav_loss(scores: Sequence[ArrayLike], *, temperature: float = 0.1,
              epsilon: float = 0.05, num_iters: int = 3,
              num_assigned: int = 2) -> jax.Array:
  """SwAV swapped prediction (Caron et al. 2020, eq. 1-2).

  Codes are computed for the first `num_assigned` views (the large crops); each code is
  predicted from the scores of every other view.

  Args:
    scores: per view, (B, K) prototype scores of L2-normalised embeddings.
    temperature: softmax temperature of the predictions; 0.1 in the paper.
    epsilon, num_iters: Sinkhorn-Knopp settings, see `sinkhorn_knopp`.
    num_assigned: how many leading views get codes; 2 in the paper.

  Returns:
    Scalar: the mean cross-entropy over all (code, other view) pairs.
  """
  scores = [jnp.asarray(s) for s in scores]
  if not 1 <= num_assigned <= len(scores) or len(scores) < 2:
    raise ValueError(f"need >= 2 views and 1 <= num_assigned <= views, got "
                     f"{len(scores)} views, num_assigned={num_assigned}")
  total, count = 0.0, 0
  for i in range(num_assigned):
    codes = sinkhorn_knopp(scores[i], epsilon=epsilon, num_iters=num_iters)
    for j, s in enumerate(scores):
      if j != i:
        log_p = jax.nn.log_softmax(s / temperature, axis=-1)
        total = total - jnp.mean(jnp.sum(codes * log_p, axis=-1))
        count += 1
  return total / count
