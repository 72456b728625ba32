"""Orbax checkpoints of the whole train state: periodic saves, keep-last-N, resume."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from jejax.train.state import TrainState


def checkpoint_manager(directory: str | os.PathLike, *, every_steps: int,
                       keep: int) -> ocp.CheckpointManager:
  """Saves every `every_steps` steps (and whenever forced), keeps the last `keep`."""
  options = ocp.CheckpointManagerOptions(save_interval_steps=every_steps, max_to_keep=keep,
                                         create=True)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(manager: ocp.CheckpointManager, state: TrainState, *, force: bool = False) -> None:
  """Saves on multiples of the manager's interval, or now when `force` (end of a run,
  interruption); a step already on disk is not written twice."""
  step = int(jax.device_get(state.step))
  due = step % manager._options.save_interval_steps == 0  # orbax also saves a first step
  if (force or due) and step not in manager.all_steps():
    manager.save(step, args=ocp.args.StandardSave(state), force=True)


def restore_latest(manager: ocp.CheckpointManager, template: TrainState) -> TrainState | None:
  """The latest saved state, placed like `template`; None when nothing was saved.

  The template fixes the tree structure, dtypes and shardings, so a checkpoint written by
  another config (a different model or method) fails here with orbax's error about the
  mismatching tree.
  """
  step = manager.latest_step()
  if step is None:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
  return manager.restore(step, args=ocp.args.StandardRestore(abstract))
