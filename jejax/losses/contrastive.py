"""Contrastive losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jejax.models.ssl import l2_normalize


def nt_xent(z1: ArrayLike, z2: ArrayLike, *, temperature: float = 0.1) -> jax.Array:
  """NT-Xent / InfoNCE loss of SimCLR (Chen et al. 2020, eq. 1).

  Each of the 2N embeddings has its other view as the positive and the remaining 2N - 2
  embeddings of the *global* batch as negatives. Under `jax.jit` over a mesh, `z1` and
  `z2` are global arrays, so the (2N, 2N) similarity matrix spans every device.

  Args:
    z1: (N, D) embeddings of the first views (normalised here).
    z2: (N, D) embeddings of the second views, row i the positive of `z1[i]`.
    temperature: tau; 0.1 is the paper's ImageNet default, 0.5 its CIFAR-10 choice.

  Returns:
    Scalar: the mean over all 2N anchors of -log softmax of the positive.

  Example:
    >>> z = jnp.eye(4)
    >>> nt_xent(z, z, temperature=1.0)  # positives at cos 1, negatives at cos 0
  """
  z = l2_normalize(jnp.concatenate([jnp.asarray(z1), jnp.asarray(z2)], axis=0))
  n2 = z.shape[0]
  n = n2 // 2
  logits = (z @ z.T) / temperature  # (2N, D) @ (D, 2N) -> (2N, 2N)
  # An anchor is never its own negative.
  logits = jnp.where(jnp.eye(n2, dtype=bool), -jnp.inf, logits)
  positive = jnp.concatenate([jnp.arange(n, n2), jnp.arange(0, n)])
  positive_logits = jnp.take_along_axis(logits, positive[:, None], axis=1)[:, 0]
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - positive_logits)
