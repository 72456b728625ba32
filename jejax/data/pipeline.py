"""Host -> device input pipeline: index arithmetic on the host, sharded arrays on device.

The host side yields dicts of uint8 numpy batches; the device side turns them into global
`jax.Array`s laid out over the mesh and keeps a few ready ahead of the train step.

Which examples make up global step `s` is a pure function of (dataset size, batch size,
seed, s): epoch `s // steps_per_epoch` is a fixed permutation seeded by (seed, epoch),
and step `s` takes its slice. A run resumed from a checkpoint at step `k` therefore
calls `train_batches(..., start_step=k)` and sees exactly the batches an unbroken run
would have seen, with no iterator state to save.

Example:
  >>> mesh = make_mesh()
  >>> batches = train_batches(source, 256, seed=0, start_step=state.step)
  >>> for batch in prefetch_to_device(batches, data_sharding(mesh)):
  ...   state, metrics = train_step(state, batch, rng)
"""

from __future__ import annotations

import functools
import itertools
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Sharding

from jejax.data.sources import Batch, Source


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
  """Whole batches in one pass over `num_examples`; the remainder is dropped, so every
  train step has the same shape and the step compiles once."""
  if global_batch_size <= 0:
    raise ValueError(f"global batch size must be positive, got {global_batch_size}")
  if global_batch_size > num_examples:
    raise ValueError(
        f"global batch size {global_batch_size} is larger than the {num_examples} "
        "examples of the split")
  return num_examples // global_batch_size


@functools.lru_cache(maxsize=4)
def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The order (num_examples,) of the examples in `epoch`; the same for the same
  arguments on every host and every run.

  Cached because every step of an epoch slices the same permutation; read-only so the
  cached copy cannot be changed by a caller.
  """
  order = np.random.default_rng([seed, epoch]).permutation(num_examples)
  order.flags.writeable = False
  return order


def batch_indices(num_examples: int, global_batch_size: int, seed: int, step: int,
                  shuffle: bool = True) -> np.ndarray:
  """The example indices (global_batch_size,) of global step `step`.

  Each epoch visits every index at most once (exactly once but for the dropped
  remainder); with `shuffle=False` the order is 0, 1, 2, ... every epoch.
  """
  epoch, step_in_epoch = divmod(step, steps_per_epoch(num_examples, global_batch_size))
  order = (epoch_permutation(num_examples, seed, epoch) if shuffle
           else np.arange(num_examples))
  start = step_in_epoch * global_batch_size
  return order[start:start + global_batch_size]


def train_batches(source: Source, global_batch_size: int, *, seed: int,
                  start_step: int = 0, num_steps: int | None = None,
                  shuffle: bool = True) -> Iterator[Batch]:
  """Global training batches for steps start_step, start_step + 1, ...

  Yields `source.get_batch(batch_indices(...))`: image (b, h, w, c) uint8, label (b,)
  int32, b = global_batch_size. Infinite when `num_steps` is None.
  """
  steps = itertools.count(start_step) if num_steps is None else range(
      start_step, start_step + num_steps)
  for step in steps:
    yield source.get_batch(
        batch_indices(len(source), global_batch_size, seed, step, shuffle))


def _pad_to(x: np.ndarray, size: int) -> np.ndarray:
  """Zero rows appended to (k, ...) `x` -> (size, ...)."""
  return np.concatenate([x, np.zeros((size - len(x),) + x.shape[1:], x.dtype)])


def eval_batches(source: Source, batch_size: int, *, limit: int | None = None
                 ) -> Iterator[Batch]:
  """Every example of `source` (its first `limit`) once, in order, in batches of exactly
  `batch_size`.

  The last batch is zero-padded to full size so a jitted eval step compiles once; its
  `mask` (b,) bool is False on the padding, and metrics must be weighted by it.
  Yields image (b, h, w, c) uint8, label (b,) int32, mask (b,) bool.
  """
  num_examples = len(source) if limit is None else min(limit, len(source))
  for start in range(0, num_examples, batch_size):
    indices = np.arange(start, min(start + batch_size, num_examples))
    batch = {k: _pad_to(v, batch_size) for k, v in source.get_batch(indices).items()}
    batch["mask"] = np.arange(batch_size) < len(indices)
    yield batch


def to_global_array(batch: dict[str, np.ndarray], sharding: Sharding) -> dict[str, jax.Array]:
  """Places each leaf (b, ...) of a host batch as one global array laid out by `sharding`
  (usually the batch axis split over the data axis of the mesh).

  Single process: this host holds the whole global batch and `jax.device_put` scatters
  it. With several processes each host would load only its slice of the indices and use
  `jax.make_array_from_process_local_data` instead.
  """
  return jax.device_put(batch, sharding)


# Marks the end of a finite source in the prefetch queue.
_END = object()


class _Failure:
  """Carries an exception from the producer thread to the consumer."""

  def __init__(self, error: BaseException):
    self.error = error


def prefetch_to_device(iterator: Iterable[dict[str, np.ndarray]], sharding: Sharding,
                       size: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Yields the batches of `iterator` as global device arrays, prepared ahead of use.

  A background thread pulls host batches (indexing, decoding, resizing: the slow part),
  places them with `to_global_array`, and keeps up to `size` of them in a queue, so the
  host work for step s + 1 overlaps the device's step s and the device does not wait.
  The thread starts at the first `next`. Besides the batch in use, at most `size` + 1
  are on the device: `size` queued and one waiting for a free slot.

  An exception raised by `iterator` (or by the placement) is re-raised by this generator
  at the point the consumer would have received that batch. The generator ends after the
  last batch of a finite `iterator`. When the consumer stops early (break, exception,
  `close()`), the producer thread notices within 0.1 s and exits; it is a daemon thread,
  so it never keeps the interpreter alive.
  """
  if size < 1:
    raise ValueError(f"prefetch size must be at least 1, got {size}")
  ready: queue.Queue[Any] = queue.Queue(maxsize=size)
  stop = threading.Event()

  def put(item: Any) -> bool:
    # A timeout loop rather than a blocking put, so an abandoned producer can exit.
    while not stop.is_set():
      try:
        ready.put(item, timeout=0.1)
        return True
      except queue.Full:
        pass
    return False

  def produce() -> None:
    try:
      for batch in iterator:
        if not put(to_global_array(batch, sharding)):
          return
    except BaseException as e:  # pylint: disable=broad-except
      put(_Failure(e))
      return
    put(_END)

  thread = threading.Thread(target=produce, name="prefetch_to_device", daemon=True)
  thread.start()
  try:
    while True:
      item = ready.get()
      if item is _END:
        return
      if isinstance(item, _Failure):
        raise item.error
      yield item
  finally:
    stop.set()


def host_pipeline_throughput(source: Source, global_batch_size: int, num_steps: int,
                             seed: int = 0) -> float:
  """Images per second that `train_batches` alone produces on this host (no device),
  to tell whether the input pipeline or the train step limits a run."""
  start = time.perf_counter()
  for _ in train_batches(source, global_batch_size, seed=seed, num_steps=num_steps):
    pass
  return num_steps * global_batch_size / (time.perf_counter() - start)
