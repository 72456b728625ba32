"""Watching a run for divergence without waiting for the device at every step.

The step reports whether its loss, gradients and updated state are finite
(`metrics['finite']`, a bool on the device). `NonFiniteSteps` counts the steps that were
not, also on the device, so adding to it does not wait for the step; the loop reads it
(which waits) only where it waits anyway (logging steps) and before anything depends on
the state being whole: every checkpoint, every evaluation, the end of the run. A run that
diverged therefore stops before any checkpoint of the non-finite state is written, and
names the first non-finite step, even when that step fell between two reads.

The count is computed from replicated values by the same program on every process, so in
a multi-process run every process reads the same count and stops after the same step,
without a collective of its own.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jejax import parallel
from jejax.errors import JejaxError


class NonFiniteError(JejaxError, FloatingPointError):
  """Training produced a NaN or inf; the message names the first such step and the latest
  checkpoint, which is finite."""
  hint = ("lower optim.learning_rate (or lengthen optim.warmup_epochs), or set "
          "--config.skip_nonfinite=True to skip such steps; the same command then resumes "
          "from the latest checkpoint")


# counts = [number of non-finite steps, the first of them (-1: none), the latest step]:
# one array, computed from `finite` alone, so that it lives where `finite` lives (replicated
# over the mesh) and no host value enters the program after the first step.
@functools.partial(jax.jit, static_argnums=1)
def _first(finite: jax.Array, step: int) -> jax.Array:
  bad = ~finite
  return jnp.stack([bad.astype(jnp.int32), jnp.where(bad, step, -1), jnp.int32(step)])


@functools.partial(jax.jit, donate_argnums=0)
def _next(counts: jax.Array, finite: jax.Array) -> jax.Array:
  count, first, step = counts[0], counts[1], counts[2] + 1
  bad = ~finite
  return jnp.stack([count + bad.astype(jnp.int32),
                    jnp.where((count == 0) & bad, step, first), step])


class NonFiniteSteps:
  """The number of non-finite steps so far, and the first of them, kept on the device.

  `add` is called with consecutive steps (a run's steps from its start or resume)."""

  def __init__(self):
    self._counts: jax.Array | None = None

  def add(self, finite: jax.Array, step: int) -> None:
    """Counts `step` if `finite` (the step's `metrics['finite']`) is False; no waiting."""
    self._counts = _first(finite, step) if self._counts is None else _next(self._counts, finite)

  def read(self) -> tuple[int, int | None]:
    """(number of non-finite steps, the first of them or None); waits for the device."""
    if self._counts is None:
      return 0, None
    count, first, _ = (int(x) for x in parallel.to_host(self._counts))
    return count, (first if count else None)


def error(counts: tuple[int, int | None], step: int, latest_checkpoint: int | None,
          checkpoint_dir: str) -> NonFiniteError:
  """The error a diverged run stops with at `step`: what it lost and what it kept."""
  count, first = counts
  later = f"; so are {count - 1} of the {step - first} steps after it" if step > first else ""
  kept = (f"the latest checkpoint, step {latest_checkpoint} in {checkpoint_dir}, is finite"
          if latest_checkpoint is not None else f"no checkpoint was saved in {checkpoint_dir}")
  return NonFiniteError(
      f"training diverged: the loss, a gradient or the updated state of step {first} is "
      f"not finite (NaN or inf){later}. Training stopped at step {step} and saved nothing "
      f"of it; {kept}")
