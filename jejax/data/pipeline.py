"""Host -> device input pipeline: index arithmetic on the host, sharded arrays on device.

The host side yields dicts of uint8 numpy batches; the device side turns them into global
`jax.Array`s laid out over the mesh and keeps a few ready ahead of the train step.

Which examples make up global step `s` is a pure function of (dataset size, batch size,
seed, s): epoch `s // steps_per_epoch` is a fixed permutation seeded by (seed, epoch),
and step `s` takes its slice. A run resumed from a checkpoint at step `k` therefore
calls `train_batches(..., start_step=k)` and sees exactly the batches an unbroken run
would have seen, with no iterator state to save.

Several processes: every process computes the same global indices of step `s`, and
loads only the rows of them that land on its own devices (`process_rows`); with the
batch split over the data axis, the rows of all processes partition the global batch, so
every example of it is read by exactly one host, and `to_global_array` assembles the
global array from the pieces. The global batch of step `s` is therefore the same for any
number of processes and devices, and a run may resume on another layout. This replaces the per-host file splits of tf.data
pipelines (`tfds.even_splits(split, n=jax.process_count())`, `tfds.split_for_jax_process`):
there each host shuffles its own fixed part of the data, so the global batch depends on
the host count. A `TfdsSource` reads by index through `tfds.data_source`, so each host
decodes only its rows, from whichever files hold them.

Example:
  >>> mesh = make_mesh()
  >>> sharding = data_sharding(mesh)
  >>> rows = process_rows(sharding, 256)  # all 256 with one process
  >>> batches = train_batches(source, 256, seed=0, start_step=state.step, rows=rows)
  >>> for batch in prefetch_to_device(batches, sharding, global_batch_size=256):
  ...   state, metrics = train_step(state, batch, rng)
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import grain
import jax
import numpy as np
from absl import flags
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


def process_rows(sharding: Sharding, global_batch_size: int) -> np.ndarray:
  """Positions (k,) in a global batch of `global_batch_size` rows that this process's
  devices hold under `sharding` (which splits the batch axis only), in increasing order.

  All positions with one process; with P processes and the batch split over all their
  devices, the B / P positions of this process's devices. The order is the one in which
  `jax.make_array_from_process_local_data` expects a process's rows.
  """
  positions = np.arange(global_batch_size)
  index_map = sharding.addressable_devices_indices_map((global_batch_size,))
  return np.unique(np.concatenate([positions[index[0]] for index in index_map.values()]))


@dataclasses.dataclass(frozen=True, eq=False)
class _StepBatch:
  """Global step -> its host batch: `source`'s examples at this process's `rows` of
  `batch_indices(...)`. A picklable callable, so that worker processes can run it."""

  source: Source
  global_batch_size: int
  seed: int
  shuffle: bool
  rows: np.ndarray | None

  def __call__(self, step: int) -> Batch:
    indices = batch_indices(len(self.source), self.global_batch_size, self.seed, step,
                            self.shuffle)
    return self.source.get_batch(indices if self.rows is None else indices[self.rows])


# grain 0.2.18 reads this absl flag through `.value` whenever jax is imported, which
# raises in a program that never parsed absl flags (grain issue 1355, fixed after 0.2.18).
_GRAIN_PROFILING_FLAG = "grain_enable_multiprocess_worker_profiling"


def _batches_in_workers(batch_of_step: _StepBatch, steps: range, workers: int
                        ) -> Iterator[Batch]:
  """`map(batch_of_step, steps)`, computed in `workers` processes (grain's
  `mp_prefetch`): worker i makes the batches of steps i, i + workers, ..., one at a time
  with one more ready in its buffer, and they are yielded in step order. Closing this
  generator (or dropping it) stops the workers.

  With 2 or more workers grain hands the arrays over in shared memory (as
  `SharedMemoryArray`s, freed when the last reference goes); they are copied out into
  plain arrays, a memcpy per batch, so that a batch is the same type as with
  `workers=0` and no shared memory outlives the step (nor the interpreter)."""
  if not flags.FLAGS.is_parsed() and _GRAIN_PROFILING_FLAG in flags.FLAGS:
    # Lets the flag be read with its default (False), as grain does for its own flags.
    flags.FLAGS[_GRAIN_PROFILING_FLAG].present = True
  dataset = (grain.MapDataset.range(steps.start, steps.stop).map(batch_of_step)
             # No reader threads inside a worker: one batch at a time each, so N workers
             # decode on N cores and hold at most 2N batches.
             .to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
             .mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                       per_worker_buffer_size=1)))
  iterator = iter(dataset)
  try:
    for batch in iterator:
      yield {key: np.array(value) for key, value in batch.items()}
  finally:
    iterator.close()


def train_batches(source: Source, global_batch_size: int, *, seed: int,
                  start_step: int = 0, num_steps: int | None = None,
                  shuffle: bool = True, rows: np.ndarray | None = None,
                  workers: int = 0) -> Iterator[Batch]:
  """Training batches for steps start_step, start_step + 1, ...: the global batch, or
  this process's `rows` of it.

  Yields `source.get_batch(batch_indices(...)[rows])`: image (k, h, w, c) uint8, label
  (k,) int32, with k = len(rows), or global_batch_size when `rows` is None. Infinite when
  `num_steps` is None.

  `workers` = 0 runs `get_batch` (reading, decoding, resizing) in the calling thread;
  N > 0 runs it in N worker processes, whole batches each, prefetched ahead (see
  `_batches_in_workers`), for sources whose decoding is the bottleneck (`EncodedSource`,
  a `TfdsSource` of encoded images). The batches are the same, since each is a function
  of its step alone; the source must pickle, and the processes start at the first
  `next` (seconds: each imports jax and jejax). An error of `get_batch` in a worker
  (`CorruptDataError` naming the record, ...) is raised at the step whose batch it was.

  Raises:
    ValueError: at the call, for workers < 0 or a batch larger than the split.
  """
  if workers < 0:
    raise ValueError(f"workers must be >= 0, got {workers}")
  steps_per_epoch(len(source), global_batch_size)  # fails here, not inside a worker
  batch_of_step = _StepBatch(source, global_batch_size, seed, shuffle, rows)
  steps = range(start_step, sys.maxsize if num_steps is None else start_step + num_steps)
  if workers == 0:
    return map(batch_of_step, steps)
  return _batches_in_workers(batch_of_step, steps, workers)


def _pad_to(x: np.ndarray, size: int) -> np.ndarray:
  """Zero rows appended to (k, ...) `x` -> (size, ...)."""
  return np.concatenate([x, np.zeros((size - len(x),) + x.shape[1:], x.dtype)])


def eval_batches(source: Source, batch_size: int, *, limit: int | None = None,
                 rows: np.ndarray | None = None) -> Iterator[Batch]:
  """Every example of `source` (its first `limit`) once, in order, in batches of exactly
  `batch_size`; or this process's `rows` (sorted positions) of each such batch.

  The last batch is zero-padded to full size so a jitted eval step compiles once; its
  `mask` is False on the padding, and metrics must be weighted by it.
  Yields image (k, h, w, c) uint8, label (k,) int32, mask (k,) bool, with k = len(rows),
  or batch_size when `rows` is None.
  """
  num_examples = len(source) if limit is None else min(limit, len(source))
  rows = np.arange(batch_size) if rows is None else rows
  for start in range(0, num_examples, batch_size):
    indices = start + rows
    # `rows` is sorted, so the padding is a suffix, as in the global batch.
    mask = indices < num_examples
    batch = {k: _pad_to(v, len(rows)) for k, v in source.get_batch(indices[mask]).items()}
    batch["mask"] = mask
    yield batch


def to_global_array(batch: Any, sharding: Sharding, global_batch_size: int | None = None
                    ) -> Any:
  """Places each leaf (k, ...) of a host batch as one global array (B, ...) laid out by
  `sharding` (usually the batch axis split over the data axis of the mesh).

  The leaves hold this process's rows `process_rows(sharding, B)` of the global batch,
  in that order; `global_batch_size` None means they hold all of it (k = B, the only
  case with one process, where the rows are scattered to the devices). With several
  processes every process calls this with its own rows, and the result is one array
  whose shards live on all of their devices.
  """
  def place(x):
    x = np.asarray(x)
    shape = None if global_batch_size is None else (global_batch_size, *x.shape[1:])
    return jax.make_array_from_process_local_data(sharding, x, shape)
  return jax.tree.map(place, batch)


# Marks the end of a finite source in the prefetch queue.
_END = object()


class _Failure:
  """Carries an exception from the producer thread to the consumer."""

  def __init__(self, error: BaseException):
    self.error = error


def prefetch_to_device(iterator: Iterable[dict[str, np.ndarray]], sharding: Sharding,
                       size: int = 2, *, global_batch_size: int | None = None
                       ) -> Iterator[dict[str, jax.Array]]:
  """Yields the batches of `iterator` as global device arrays, prepared ahead of use.

  `iterator` yields whole global batches, or, with several processes, this process's
  rows of batches of `global_batch_size` (see `to_global_array`).

  A background thread pulls host batches (indexing, decoding, resizing: the slow part),
  places them with `to_global_array`, and keeps up to `size` of them in a queue, so the
  host work for step s + 1 overlaps the device's step s and the device does not wait.
  The thread starts at the first `next`. Besides the batch in use, at most `size` + 1
  are on the device: `size` queued and one waiting for a free slot.

  An exception raised by `iterator` (or by the placement) is re-raised by this generator
  at the point the consumer would have received that batch. The generator ends after the
  last batch of a finite `iterator`. When the consumer stops early (break, exception,
  `close()`), the producer thread notices within 0.1 s, closes `iterator` (when it has a
  `close`) and exits, and the generator waits for it: a thread still placing a batch
  while the interpreter shuts down aborted the process (seen on a GPU host, jaxlib
  0.11). It is a daemon thread, so a generator never closed does not keep the
  interpreter alive.
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
        if not put(to_global_array(batch, sharding, global_batch_size)):
          return
    except BaseException as e:  # pylint: disable=broad-except
      put(_Failure(e))
      return
    finally:
      # Stops what `iterator` runs (the worker processes of `train_batches(workers=N)`)
      # now rather than whenever it is garbage-collected.
      if hasattr(iterator, "close"):
        iterator.close()
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
    thread.join()


def host_pipeline_throughput(source: Source, global_batch_size: int, num_steps: int,
                             seed: int = 0) -> float:
  """Images per second that `train_batches` alone produces on this host (no device),
  to tell whether the input pipeline or the train step limits a run."""
  start = time.perf_counter()
  for _ in train_batches(source, global_batch_size, seed=seed, num_steps=num_steps):
    pass
  return num_steps * global_batch_size / (time.perf_counter() - start)
