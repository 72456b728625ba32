"""Pairwise similarities and distances between two sets of embeddings.

Every function maps (N, D) and (M, D) arrays to an (N, M) matrix, is pure and jit-able,
and raises ValueError on shapes that do not pair up (shapes are static, so this also
holds under `jax.jit`). `pairwise(a, b, metric)` dispatches by name; `similarity(a, b,
metric)` turns any metric into a "higher is closer" score for kNN and retrieval.

>>> a = jnp.array([[1.0, 0.0], [0.0, 2.0]])
>>> pairwise(a, a, "euclidean")  # [[0, sqrt(5)], [sqrt(5), 0]]
>>> hamming_distance(sign_binarize(a - 0.5), jnp.array([[1, 1]]))  # [[1], [1]]
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jejax.numerics import l2_normalize

# Default matmul precision is TF32 on recent GPUs and one bf16 pass on TPUs: about 1e-3
# relative error, enough to reorder near neighbours and to swamp the cancellation in
# ||a||^2 + ||b||^2 - 2 a.b. These are analysis tools, so they pay for full float32.
_HIGHEST = jax.lax.Precision.HIGHEST

# Manhattan distance has no matmul form: it materialises (rows, M, D) differences. Rows
# of `a` are processed in blocks of at most this many elements (64 MiB of float32).
_MANHATTAN_BLOCK_ELEMENTS = 2**24


def _check_pair(a: ArrayLike, b: ArrayLike) -> tuple[jax.Array, jax.Array]:
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  if a.ndim != 2 or b.ndim != 2:
    raise ValueError(f"expected (N, D) and (M, D) arrays, got shapes {a.shape} and {b.shape}")
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"embedding dimensions differ: a is {a.shape}, b is {b.shape}")
  return a, b


def cosine_similarity(a: ArrayLike, b: ArrayLike) -> jax.Array:
  """(N, D), (M, D) -> (N, M) cosines a_i.b_j / (||a_i|| ||b_j||), in [-1, 1].

  A zero row has similarity 0 to everything (its norm is floored by `l2_normalize`)
  instead of NaN.
  """
  a, b = _check_pair(a, b)
  return jnp.matmul(l2_normalize(a), l2_normalize(b).T, precision=_HIGHEST)  # (N, M)


def squared_euclidean_distance(a: ArrayLike, b: ArrayLike) -> jax.Array:
  """(N, D), (M, D) -> (N, M) ||a_i - b_j||^2, by ||a||^2 + ||b||^2 - 2 a.b.

  The expansion costs one matmul instead of an (N, M, D) difference tensor, but it
  cancels: its absolute error is about float32 eps * (||a_i||^2 + ||b_j||^2), so
  distances below a few sqrt(eps) ~ 3e-4 times the norms are noise, and can come out
  negative, hence the clamp at 0. Both sets are first centred on their joint mean
  (distances are translation invariant), which shrinks those norms for embeddings far
  from the origin, e.g. post-ReLU features.
  """
  a, b = _check_pair(a, b)
  center = (jnp.sum(a, axis=0) + jnp.sum(b, axis=0)) / max(a.shape[0] + b.shape[0], 1)
  a, b = a - center, b - center
  cross = jnp.matmul(a, b.T, precision=_HIGHEST)  # (N, D) @ (D, M) -> (N, M)
  sq = jnp.sum(a * a, axis=1)[:, None] + jnp.sum(b * b, axis=1)[None, :] - 2.0 * cross
  return jnp.maximum(sq, 0.0)


def euclidean_distance(a: ArrayLike, b: ArrayLike) -> jax.Array:
  """(N, D), (M, D) -> (N, M) ||a_i - b_j||_2.

  The square root of `squared_euclidean_distance` (clamped expansion; see there for the
  precision near 0). Not differentiable at a_i = b_j, where sqrt has an infinite slope.
  """
  return jnp.sqrt(squared_euclidean_distance(a, b))


def manhattan_distance(a: ArrayLike, b: ArrayLike, *, block_rows: int | None = None
                       ) -> jax.Array:
  """(N, D), (M, D) -> (N, M) L1 distances sum_d |a_id - b_jd|.

  Computed exactly from differences, `block_rows` rows of `a` at a time with
  `lax.map(..., batch_size=block_rows)`, so peak memory is block_rows * M * D elements
  rather than N * M * D. The default picks the largest block under 2^24 elements
  (64 MiB of float32); under `jax.jit`, pass `block_rows` as a static argument.
  """
  a, b = _check_pair(a, b)
  if block_rows is None:
    block_rows = max(1, _MANHATTAN_BLOCK_ELEMENTS // max(1, b.shape[0] * b.shape[1]))
  row_distances = lambda row: jnp.sum(jnp.abs(row[None, :] - b), axis=1)  # (D,) -> (M,)
  return jax.lax.map(row_distances, a, batch_size=min(block_rows, max(a.shape[0], 1)))


def hamming_distance(a: ArrayLike, b: ArrayLike) -> jax.Array:
  """(N, D), (M, D) binary codes -> (N, M) int32 counts of differing bits.

  Codes are booleans or numbers in {0, 1} (e.g. from `sign_binarize`); other values
  give a + b - 2ab summed over bits, which is not a Hamming distance, and are not
  checked (values are not known under jit). XOR is a(1 - b) + (1 - a)b, two matmuls of
  0/1 entries: exact in float32 (also in bf16 inputs with float32 accumulation) for
  D < 2^24.
  """
  a, b = _check_pair(a, b)
  differing = a @ (1.0 - b).T + (1.0 - a) @ b.T  # (N, D) @ (D, M) -> (N, M)
  return jnp.round(differing).astype(jnp.int32)


def sign_binarize(z: ArrayLike) -> jax.Array:
  """(..., D) embeddings -> (..., D) uint8 codes: 1 where z >= 0, else 0.

  Zero (and -0.0) maps to 1, so a code never depends on the sign of a zero; NaN maps
  to 0. The codes feed `hamming_distance` (locality-sensitive hashing by sign, Charikar
  2002, applied to the embedding coordinates themselves).
  """
  return (jnp.asarray(z) >= 0).astype(jnp.uint8)


# name -> (N, D), (M, D) -> (N, M). Cosine is a similarity (higher is closer); the rest
# are distances (lower is closer). `similarity` gives all of them one direction.
METRICS: dict[str, Callable[[ArrayLike, ArrayLike], jax.Array]] = {
  "cosine": cosine_similarity,
  "euclidean": euclidean_distance,
  "manhattan": manhattan_distance,
  "hamming": hamming_distance,
}
_SIMILARITIES = frozenset({"cosine"})


def pairwise(a: ArrayLike, b: ArrayLike, metric: str) -> jax.Array:
  """(N, D), (M, D) -> (N, M) `METRICS[metric](a, b)`: cosine similarity or a distance.

  Under `jax.jit`, `metric` must be static (`static_argnames="metric"`).
  """
  if metric not in METRICS:
    raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRICS)}")
  return METRICS[metric](a, b)


def similarity(a: ArrayLike, b: ArrayLike, metric: str = "cosine") -> jax.Array:
  """(N, D), (M, D) -> (N, M) score where higher means closer: the cosine similarity,
  or minus the distance for every other metric (float32 for "hamming" too).

  Ranking by this score ranks by the metric, so kNN and retrieval take any metric.
  """
  scores = pairwise(a, b, metric)
  return scores if metric in _SIMILARITIES else -scores.astype(jnp.float32)
