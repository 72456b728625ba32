"""Orbax checkpoints of the whole train state: periodic saves, keep-last-N, resume.

A checkpoint stores each array as a global array (tensorstore chunks plus its shape and
dtype), not as the per-device pieces of the mesh that wrote it: a replicated array is
written once, a sharded one as its shards, each by the process that holds it. Restoring
reads each array into whatever sharding the template asks for, so a run saved on 8
devices resumes on 4, on 1, or on several hosts, with bitwise the same values. Every
process of a multi-process run must call `save` and `restore_latest` alike, on one
directory they all see.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from jejax.train.state import TrainState
from jejax.types import path_name


class CheckpointMismatchError(ValueError):
  """The checkpoint holds other arrays than the state the config builds (another
  backbone, width, head or method)."""


def _shapes(tree) -> dict[str, tuple[tuple[int, ...], str]]:
  return {path_name(path): (tuple(leaf.shape), str(leaf.dtype))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def checkpoint_mismatches(saved, template) -> list[str]:
  """What differs between a checkpoint's array metadata and a state template: arrays in
  only one of them, and arrays whose shape or dtype differ; the params first (the
  optimizer state and batch stats repeat what they say). Empty if they match."""
  saved, wanted = _shapes(saved), _shapes(template)
  problems = {name: "in the checkpoint, not in the config's model"
              for name in saved.keys() - wanted.keys()}
  problems |= {name: "in the config's model, not in the checkpoint"
               for name in wanted.keys() - saved.keys()}
  problems |= {name: f"checkpoint {saved[name][0]} {saved[name][1]}, config "
                     f"{wanted[name][0]} {wanted[name][1]}"
               for name in saved.keys() & wanted.keys() if saved[name] != wanted[name]}
  order = sorted(problems, key=lambda name: (not name.startswith("params/"), name))
  return [f"{name}: {problems[name]}" for name in order]


def _abstract(leaf) -> jax.ShapeDtypeStruct:
  """Shape, dtype and sharding of an array; a ShapeDtypeStruct as it is."""
  if isinstance(leaf, jax.ShapeDtypeStruct):
    return leaf
  return ocp.utils.to_shape_dtype_struct(leaf)


class Checkpointer:
  """Saves every `every_steps` steps (and whenever forced), keeps the last `keep`.

  The interval is applied here rather than by orbax's `save_interval_steps`, which also
  saves the first step it sees.
  """

  def __init__(self, directory: str | os.PathLike, *, every_steps: int, keep: int):
    self.every_steps = every_steps
    self.directory = os.path.abspath(directory)
    # The handler named here (the one `StandardSave` uses anyway) lets the manager read a
    # checkpoint's array metadata before restoring it.
    self.manager = ocp.CheckpointManager(
        self.directory, item_handlers=ocp.StandardCheckpointHandler(),
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

    The template (arrays, or `jax.ShapeDtypeStruct`s with a sharding) fixes the tree
    structure, dtypes and shardings of the result, whatever mesh and shardings the
    checkpoint was written from: a state saved replicated on 8 devices comes back
    replicated over the template's 4 or 1, and leaves sharded along the data axis
    (as FSDP will shard params) come back sharded as the template's leaves are, or
    replicated. Each process reads only the parts its devices hold.

    Raises:
      CheckpointMismatchError: the checkpoint was written for another model or method
        (its arrays' names, shapes or dtypes differ from the template's); the message
        names the differing arrays. Checked before anything is read.
    """
    step = self.manager.latest_step()
    if step is None:
      return None
    problems = checkpoint_mismatches(self.manager.item_metadata(step), template)
    if problems:
      shown = "\n  ".join(problems[:12])
      more = f"\n  ... and {len(problems) - 12} more" if len(problems) > 12 else ""
      raise CheckpointMismatchError(
          f"the checkpoint at {self.directory} (step {step}) does not match the config: "
          f"{len(problems)} arrays differ:\n  {shown}{more}\n"
          "Use the config the checkpoint was trained with (its run's config.json).")
    abstract = jax.tree.map(_abstract, template)
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def wait_until_finished(self) -> None:
    self.manager.wait_until_finished()
