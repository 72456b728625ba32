"""Orbax checkpoints of the whole train state: periodic saves, keep-last-N, resume.

A checkpoint stores each array as a global array (tensorstore chunks plus its shape and
dtype), not as the per-device pieces of the mesh that wrote it: a replicated array is
written once, a sharded one as its shards, each by the process that holds it. Restoring
reads each array into whatever sharding the template asks for, so a run saved on 8
devices resumes on 4, on 1, or on several hosts, with bitwise the same values. Every
process of a multi-process run must call `save` and `restore_latest` alike, on one
directory they all see.

A checkpoint that cannot be read (a file truncated or lost by a crash, a full disk or a
bad copy) is skipped on restore: the newest readable one is restored, and the unreadable
ones newer than it are moved aside to `<directory>_unreadable/<step>` (never deleted), so
that the run goes on saving those steps afresh. With no readable checkpoint at all
nothing is moved and restoring fails, naming the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator

import jax
import orbax.checkpoint as ocp

from jejax import parallel
from jejax.errors import JejaxError
from jejax.train.state import TrainState
from jejax.types import path_name


class CheckpointMismatchError(JejaxError, ValueError):
  """The checkpoint holds other arrays than the state the config builds (another
  backbone, width, head or method)."""
  hint = ("use the config the checkpoint was trained with (its run's config.json), or a "
          "new --workdir")


class CheckpointNotFoundError(JejaxError, FileNotFoundError):
  """No checkpoint where one is needed (the embed command)."""
  hint = "point --workdir (or --checkpoint-dir) at a run that has saved a checkpoint"


class UnreadableCheckpointsError(JejaxError):
  """Every checkpoint in the directory failed to read."""
  hint = ("move the checkpoint directory aside (or give a new --workdir) to start afresh; "
          "nothing was deleted")


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
    if (force or self.due(step)) and step not in self.manager.all_steps():
      self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def due(self, step: int) -> bool:
    """Whether `save` writes `step` without being forced."""
    return step % self.every_steps == 0

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def restore_latest(self, template: TrainState, *, set_aside_unreadable: bool = True
                     ) -> TrainState | None:
    """The latest readable saved state, placed like `template`; None when nothing was
    saved.

    Checkpoints are tried newest first. One that fails to read is reported on stderr
    and skipped; with `set_aside_unreadable`, those newer than the one restored are moved
    to `<directory>_unreadable/` (a reader that does not write, such as the embed
    command, passes False).

    The template (arrays, or `jax.ShapeDtypeStruct`s with a sharding) fixes the tree
    structure, dtypes and shardings of the result, whatever mesh and shardings the
    checkpoint was written from: a state saved replicated on 8 devices comes back
    replicated over the template's 4 or 1, and leaves sharded along the data axis
    (as FSDP will shard params) come back sharded as the template's leaves are, or
    replicated. Each process reads only the parts its devices hold.

    Raises:
      CheckpointMismatchError: the newest readable checkpoint was written for another
        model or method (its arrays' names, shapes or dtypes differ from the template's);
        the message names the differing arrays. Checked before anything is read; this is
        a refusal, not a reason to try an older checkpoint.
      UnreadableCheckpointsError: no checkpoint could be read; nothing is moved.
    """
    with _quiet_closed_event_loops():
      step, state, unreadable = self._newest_readable(template)
    if state is None and unreadable:
      raise UnreadableCheckpointsError(
          f"none of the {len(unreadable)} checkpoints in {self.directory} can be read "
          f"(steps {', '.join(str(s) for s, _ in unreadable)}; newest: {unreadable[0][1]})")
    if unreadable:
      self._report_unreadable(unreadable, step, set_aside_unreadable)
    return state

  def _newest_readable(self, template: TrainState
                       ) -> tuple[int | None, TrainState | None, list[tuple[int, str]]]:
    """The step and state of the newest checkpoint that reads (None, None if none does),
    and (step, why) of each newer one that failed."""
    unreadable = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        state, failure = self._restore(step, template), None
      except CheckpointMismatchError:
        raise
      except Exception as e:  # noqa: BLE001 - orbax and tensorstore raise many kinds
        state, failure = None, f"{type(e).__name__}: {_first_line(e)}"
      # Every process must take the same branch: restoring is collective.
      if not parallel.any_process(failure is not None):
        return step, state, unreadable
      unreadable.append((step, failure or "unreadable on another process"))
    return None, None, unreadable

  def _restore(self, step: int, template: TrainState) -> TrainState:
    """The state saved at `step`, after checking its arrays against the template's."""
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

  def _report_unreadable(self, unreadable: list[tuple[int, str]], restored: int,
                         set_aside: bool) -> None:
    """Warns about the unreadable checkpoints (newer than `restored`) on stderr and, with
    `set_aside`, moves them out of the manager's directory (process 0 moves, all wait)."""
    moved = {}
    if set_aside and parallel.is_main_process():
      aside = self.directory + "_unreadable"
      os.makedirs(aside, exist_ok=True)
      for step, _ in unreadable:
        target, n = os.path.join(aside, str(step)), 1
        while os.path.exists(target):  # the same step may fail again in a later run
          target, n = os.path.join(aside, f"{step}.{n}"), n + 1
        shutil.move(os.path.join(self.directory, str(step)), target)
        moved[step] = target
    parallel.sync("jejax.checkpoint: unreadable checkpoints set aside")
    if set_aside:
      self.manager.reload()
    if parallel.is_main_process():
      for step, why in unreadable:
        where = f"; moved to {moved[step]}" if step in moved else ""
        print(f"WARNING: checkpoint step {step} in {self.directory} cannot be read "
              f"({why}){where}", file=sys.stderr)
      print(f"WARNING: restored step {restored} instead, the newest readable checkpoint; "
            f"the steps after it are run again", file=sys.stderr, flush=True)

  def wait_until_finished(self) -> None:
    self.manager.wait_until_finished()


@contextlib.contextmanager
def _quiet_closed_event_loops() -> Iterator[None]:
  """Drops the 'Event loop is closed' errors of a failed restore.

  Orbax reads a checkpoint's arrays concurrently on an event loop; when one read fails,
  the loop is closed, and every read still under way reports 'Event loop is closed' as
  an unraisable error: hundreds of tracebacks that bury the failure itself (which the
  caller reports). Any other unraisable error is reported as usual."""
  previous = sys.unraisablehook

  def hook(unraisable) -> None:
    if not (isinstance(unraisable.exc_value, RuntimeError)
            and "Event loop is closed" in str(unraisable.exc_value)):
      previous(unraisable)

  sys.unraisablehook = hook
  try:
    yield
  finally:
    sys.unraisablehook = previous


def _first_line(error: Exception, limit: int = 300) -> str:
  """The start of an error's message: orbax's can hold a whole TensorStore spec."""
  lines = str(error).strip().splitlines()
  text = lines[0] if lines else ""
  return text if len(text) <= limit else text[:limit] + "..."
