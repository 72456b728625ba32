"""Orbax checkpoints of the whole train state: periodic saves, keep-last-N, resume."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from jejax.train.state import TrainState


class Checkpointer:
  """Saves every `every_steps` steps (and whenever forced), keeps the last `keep`.

  The interval is applied here rather than by orbax's `save_interval_steps`, which also
  saves the first step it sees.
  """

  def __init__(self, directory: str | os.PathLike, *, every_steps: int, keep: int):
    self.every_steps = every_steps
    self.manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def save(self, state: TrainState, step: int, *, force: bool = False) -> None:
    """Saves `state` at `step` (passed in, so the loop need not wait for the device) on
    multiples of the interval, or now when `force` (end of a run, interruption); a step
    already on disk is not written twice."""
    if (force or step % self.every_steps == 0) and step not in self.manager.all_steps():
      self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def restore_latest(self, template: TrainState) -> TrainState | None:
    """The latest saved state, placed like `template`; None when nothing was saved.

    The template fixes the tree structure, dtypes and shardings, so a checkpoint written
    by another config (a different model or method) fails here with orbax's error about
    the mismatching tree.
    """
    step = self.manager.latest_step()
    if step is None:
      return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def wait_until_finished(self) -> None:
    self.manager.wait_until_finished()
