"""Frozen-encoder features of a whole split."""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jejax import parallel
from jejax.data import eval_batches, process_rows, to_global_array
from jejax.data.sources import Source
from jejax.types import PyTree


FeatureFn = Callable[[PyTree, jax.Array], jax.Array]


@functools.partial(jax.jit, static_argnames=("features",))
def _encode(features: FeatureFn, variables: PyTree, images: jax.Array) -> jax.Array:
  return features(variables, images.astype(jnp.float32) / 255.0)


def extract_features(features: FeatureFn, variables: PyTree, source: Source, mesh: Mesh, *,
                     batch_size: int = 1000, limit: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Backbone features (N, F) and labels (N,) of `source` (its first `limit` examples).

  `features(variables, images)` maps (b, H, W, C) float images in [0, 1] to (b, F)
  features in inference mode (a method's `features`, with `variables` its
  {'params': ..., 'batch_stats': ...}); it must be hashable, as it is a static argument
  of the jitted encoder.
  Batches are sharded over the mesh like training batches. With several processes each
  loads and encodes its own rows of every batch, and the features, labels and masks
  are all-gathered, so every process returns the same full arrays (and must call this
  alike); kNN and probes then run redundantly on each, to the same result.
  """
  parallel.check_batch_divisible(batch_size, mesh)
  sharding = parallel.data_sharding(mesh)
  rows = process_rows(sharding, batch_size)
  all_features, labels = [], []
  for batch in eval_batches(source, batch_size, limit=limit, rows=rows):
    # Only what is read goes to the devices (a multimodal batch also holds audio).
    batch = to_global_array({k: batch[k] for k in ("image", "label", "mask")}, sharding,
                            batch_size)
    encoded = parallel.to_host({"feature": _encode(features, variables, batch["image"]),
                                "label": batch["label"], "mask": batch["mask"]})
    all_features.append(encoded["feature"][encoded["mask"]])  # (b, F) -> (valid, F)
    labels.append(encoded["label"][encoded["mask"]])
  return np.concatenate(all_features), np.concatenate(labels)
