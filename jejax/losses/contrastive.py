"""Contrastive losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jejax.numerics import l2_normalize


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


def moco_v2_loss(query: ArrayLike, key: ArrayLike, queue: ArrayLike, *,
                 temperature: float = 0.2) -> jax.Array:
  """InfoNCE of MoCo v2 against a queue of negatives (He et al. 2020, eq. 1; Chen et al.
  2020, "Improved baselines with momentum contrastive learning").

  Each query's positive is its own key; its negatives are the K queued keys of earlier
  batches, not the other keys of this batch.

  Args:
    query: (N, D) query-encoder embeddings (normalised here).
    key: (N, D) momentum-encoder embeddings of the other view, row i the positive of
      `query[i]` (normalised here; not differentiated through).
    queue: (K, D) unit-norm keys of earlier batches (not differentiated through).
    temperature: tau; 0.2 in MoCo v2 (0.07 in MoCo v1).

  Returns:
    Scalar: the mean over queries of -log softmax of the positive among the K + 1 logits.

  Example:
    >>> q = jnp.eye(2, 4); queue = jnp.eye(4)[2:]  # positives at cos 1, negatives at 0
    >>> moco_v2_loss(q, q, queue, temperature=1.0)  # log(1 + 2 / e)
  """
  q = l2_normalize(jnp.asarray(query))
  k = jax.lax.stop_gradient(l2_normalize(jnp.asarray(key)))
  queue = jax.lax.stop_gradient(jnp.asarray(queue))
  positive_logits = jnp.sum(q * k, axis=1, keepdims=True) / temperature  # (N, 1)
  negative_logits = (q @ queue.T) / temperature  # (N, D) @ (D, K) -> (N, K)
  logits = jnp.concatenate([positive_logits, negative_logits], axis=1)
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[:, 0])


def moco_v3_loss(query: ArrayLike, key: ArrayLike, *, temperature: float = 1.0) -> jax.Array:
  """One direction of MoCo v3's InfoNCE (Chen, Xie, He 2021, Algorithm 1).

  Negatives are the other keys of the *global* batch (no queue); the loss is scaled by
  2 tau as in the authors' code, which keeps gradient magnitudes comparable across
  temperatures. The symmetric MoCo v3 loss is `moco_v3_loss(q1, k2) + moco_v3_loss(q2, k1)`.

  Args:
    query: (N, D) predictor outputs of one view (normalised here).
    key: (N, D) momentum-encoder embeddings of the other view, row i the positive of
      `query[i]` (normalised here; not differentiated through).
    temperature: tau; 1.0 for ResNets in the authors' code, 0.2 for ViTs.

  Returns:
    Scalar: 2 tau times the mean cross-entropy of each query against the N keys.
  """
  q = l2_normalize(jnp.asarray(query))
  k = jax.lax.stop_gradient(l2_normalize(jnp.asarray(key)))
  logits = (q @ k.T) / temperature  # (N, D) @ (D, N) -> (N, N), positives on the diagonal
  return 2.0 * temperature * jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(logits))


def clip_loss(a: ArrayLike, b: ArrayLike, *, temperature: float | ArrayLike = 0.07
              ) -> jax.Array:
  """CLIP's symmetric InfoNCE between paired embeddings of two modalities (Radford et al.
  2021, Figure 3).

  Row i of `a` and row i of `b` are a pair; each row's negatives are the other N - 1 rows
  of the other modality in the *global* batch. The loss averages the cross-entropy of the
  rows (a -> b) and of the columns (b -> a) of the (N, N) logits.

  Args:
    a: (N, D) embeddings of one modality, e.g. images (normalised here).
    b: (N, D) embeddings of the other, e.g. texts, row i paired with `a[i]`.
    temperature: tau = 1 / logit scale; CLIP learns it, starting at 0.07. A traced scalar
      gets its gradient.

  Returns:
    Scalar: (mean row cross-entropy + mean column cross-entropy) / 2.

  Example:
    >>> z = jnp.eye(2)
    >>> clip_loss(z, z, temperature=1.0)  # log(1 + 1 / e)
  """
  a, b = l2_normalize(jnp.asarray(a)), l2_normalize(jnp.asarray(b))
  logits = (a @ b.T) / temperature  # (N, D) @ (D, N) -> (N, N), pairs on the diagonal
  positive = jnp.diagonal(logits)
  rows = jax.nn.logsumexp(logits, axis=1) - positive
  columns = jax.nn.logsumexp(logits, axis=0) - positive
  return (jnp.mean(rows) + jnp.mean(columns)) / 2.0


def siglip_loss(a: ArrayLike, b: ArrayLike, *, scale: float | ArrayLike = 10.0,
                bias: float | ArrayLike = -10.0) -> jax.Array:
  """SigLIP's pairwise sigmoid loss (Zhai et al. 2023, "Sigmoid Loss for Language Image
  Pre-Training", Algorithm 1).

  Every (i, j) pair of the *global* batch is a binary classification: z_ij = 1 for the
  N pairs on the diagonal, -1 for the N^2 - N others, with logit t a_i . b_j + b. No
  softmax couples the rows, so the loss is a sum of independent terms (which is what lets
  `ring_siglip_loss` add it up one tile at a time).

  Args:
    a: (N, D) embeddings of one modality, e.g. images (normalised here).
    b: (N, D) embeddings of the other, e.g. texts, row i paired with `a[i]`.
    scale: t = exp(t'); SigLIP learns t' from log 10. A traced scalar gets its gradient.
    bias: b, learnt from -10 so that the N^2 - N negatives do not dominate the first
      steps. A traced scalar gets its gradient.

  Returns:
    Scalar: -sum_ij log sigmoid(z_ij (t a_i . b_j + b)) / N (the sum over columns, the
    mean over rows, as the paper's pseudo-code).

  Example:
    >>> z = jnp.eye(2)
    >>> siglip_loss(z, z, scale=1.0, bias=0.0)  # log(1 + 1 / e) + log 2
  """
  a, b = l2_normalize(jnp.asarray(a)), l2_normalize(jnp.asarray(b))
  n = a.shape[0]
  logits = scale * (a @ b.T) + bias  # (N, D) @ (D, N) -> (N, N), pairs on the diagonal
  signs = 2.0 * jnp.eye(n, dtype=logits.dtype) - 1.0
  return -jnp.sum(jax.nn.log_sigmoid(signs * logits)) / n
