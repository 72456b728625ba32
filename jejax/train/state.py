"""The train state: one pytree holding everything training needs."""

from __future__ import annotations

import flax.struct
import jax

from jejax.types import PyTree


@flax.struct.dataclass
class TrainState:
  """step, params, batch stats, target params and batch stats, optimizer state, method
  state.

  `target_params` and `target_batch_stats` are empty dicts for methods without a target
  network (the target keeps BatchNorm statistics of its own, from its own forward
  passes), and `method_state` an empty dict for methods without extra state, so every method
  checkpoints and shards the same structure. The RNG is not stored: the step folds the
  run's base key with `step`, so a restored state continues with the same randomness.
  """
  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  target_params: PyTree
  target_batch_stats: PyTree
  opt_state: PyTree
  method_state: PyTree
