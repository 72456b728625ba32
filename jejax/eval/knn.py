"""Weighted k-nearest-neighbour classification on L2-normalised features."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jejax.eval.distances import similarity
from jejax.numerics import l2_normalize


@functools.partial(jax.jit, static_argnames=("k", "num_classes", "metric"))
def _knn_votes(queries, bank, bank_labels, *, k, temperature, num_classes, metric):
  if metric == "cosine":
    sims = l2_normalize(queries) @ bank.T  # (Q, F) @ (F, N) -> (Q, N) cosines
  else:
    sims = similarity(queries, bank, metric)  # (Q, N) minus distances
  top_sims, top_idx = jax.lax.top_k(sims, k)  # (Q, k)
  if metric != "cosine":
    # Distances are unbounded: exp(-d / 0.07) underflows to 0 for every neighbour once
    # d > 7, and argmax of all-zero votes is class 0. Shifting by the nearest one's score
    # scales a query's votes by one factor, so the winner is unchanged.
    top_sims = top_sims - top_sims[:, :1]
  weights = jnp.exp(top_sims / temperature)
  onehot = jax.nn.one_hot(bank_labels[top_idx], num_classes)  # (Q, k, C)
  return jnp.einsum("qk,qkc->qc", weights, onehot)


def knn_predict(train_features: ArrayLike, train_labels: ArrayLike, test_features: ArrayLike,
                *, num_classes: int, k: int = 20, temperature: float = 0.07,
                batch_size: int = 1000, metric: str = "cosine") -> np.ndarray:
  """Weighted kNN of Wu et al. 2018 (as used by DINO): votes exp(cos / T) of the k nearest.

  Args:
    train_features: (N, F) bank; train_labels: (N,) ints in [0, num_classes).
    test_features: (Q, F) queries.
    k: neighbours (capped at N); temperature: vote sharpness, 0.07 in DINO.
    metric: "cosine" (Wu et al.) or a name in `distances.METRICS`. Other metrics see the
      raw features (not L2-normalised; pass `sign_binarize` codes for "hamming"), and a
      neighbour at distance d votes exp(-(d - d_nearest) / temperature).

  Returns:
    (Q,) predicted labels.
  """
  bank = jnp.asarray(train_features, jnp.float32)
  if metric == "cosine":
    bank = l2_normalize(bank)
  bank_labels = jnp.asarray(train_labels, jnp.int32)
  test = np.asarray(test_features, np.float32)
  k = min(k, bank.shape[0])
  predictions = []
  for start in range(0, len(test), batch_size):
    chunk = test[start:start + batch_size]
    n = len(chunk)
    if n < batch_size:  # pad so every chunk has one shape and compiles once
      chunk = np.concatenate([chunk, np.zeros((batch_size - n, chunk.shape[1]), np.float32)])
    votes = _knn_votes(chunk, bank, bank_labels, k=k, temperature=temperature,
                       num_classes=num_classes, metric=metric)
    predictions.append(np.asarray(jnp.argmax(votes, axis=-1))[:n])
  return np.concatenate(predictions)


def knn_accuracy(train_features: ArrayLike, train_labels: ArrayLike, test_features: ArrayLike,
                 test_labels: ArrayLike, *, metric: str = "cosine", **kwargs) -> float:
  """Top-1 accuracy of `knn_predict` on (test_features, test_labels); `metric` and the
  other keyword arguments are those of `knn_predict`."""
  predictions = knn_predict(train_features, train_labels, test_features, metric=metric,
                            **kwargs)
  return float(np.mean(predictions == np.asarray(test_labels)))
