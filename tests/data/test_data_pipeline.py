"""Host batching (deterministic, resumable), eval padding, and the device prefetcher."""

import threading
import time

import jax
import numpy as np
import pytest

from jejax.data import (
    ArraySource,
    batch_indices,
    epoch_permutation,
    eval_batches,
    host_pipeline_throughput,
    prefetch_to_device,
    steps_per_epoch,
    to_global_array,
    train_batches,
)
from jejax.parallel import data_sharding, make_mesh


def indexed_source(n: int) -> ArraySource:
  """Example i has label i and every pixel i % 256, so a batch shows which examples it holds."""
  images = np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None, None],
                           (n, 2, 2, 1))
  return ArraySource(images=images, labels=np.arange(n, dtype=np.int32), num_classes=n,
                     name="indexed")


def test_steps_per_epoch():
  assert steps_per_epoch(10, 3) == 3
  assert steps_per_epoch(12, 12) == 1
  with pytest.raises(ValueError, match="larger"):
    steps_per_epoch(10, 11)


@pytest.mark.parametrize("n, b", [(12, 4), (10, 3)])
def test_each_epoch_visits_every_index_at_most_once(n, b):
  spe = steps_per_epoch(n, b)
  for epoch in range(3):
    seen = np.concatenate([batch_indices(n, b, 0, epoch * spe + i) for i in range(spe)])
    assert len(seen) == spe * b and len(np.unique(seen)) == len(seen)
    assert seen.min() >= 0 and seen.max() < n
    if n % b == 0:
      np.testing.assert_array_equal(np.sort(seen), np.arange(n))


def test_batch_indices_are_deterministic_and_depend_on_seed_and_epoch():
  np.testing.assert_array_equal(batch_indices(100, 10, 3, 7), batch_indices(100, 10, 3, 7))
  assert not np.array_equal(batch_indices(100, 10, 3, 7), batch_indices(100, 10, 4, 7))
  assert not np.array_equal(epoch_permutation(100, 3, 0), epoch_permutation(100, 3, 1))
  np.testing.assert_array_equal(batch_indices(10, 5, 0, 3, shuffle=False), np.arange(5, 10))


def test_resumed_run_sees_the_same_batches():
  source = indexed_source(30)
  unbroken = [b["label"] for b in train_batches(source, 4, seed=1, num_steps=20)]
  resumed = [b["label"] for b in train_batches(source, 4, seed=1, start_step=13, num_steps=7)]
  np.testing.assert_array_equal(np.stack(resumed), np.stack(unbroken[13:]))


def test_train_batches_are_infinite_without_num_steps():
  batches = train_batches(indexed_source(8), 4, seed=0)
  assert len([next(batches) for _ in range(10)]) == 10


def test_eval_batches_cover_every_example_once_with_mask():
  source = indexed_source(10)
  batches = list(eval_batches(source, 4))
  assert len(batches) == 3
  for batch in batches:
    assert set(batch) == {"image", "label", "mask"}
    assert batch["image"].shape == (4, 2, 2, 1) and batch["mask"].dtype == bool
  np.testing.assert_array_equal(batches[-1]["mask"], [True, True, False, False])
  assert (batches[-1]["image"][2:] == 0).all()
  labels = np.concatenate([b["label"][b["mask"]] for b in batches])
  np.testing.assert_array_equal(labels, np.arange(10))


@pytest.fixture(scope="module")
def sharding():
  assert jax.device_count() == 8, "tests/conftest.py forces 8 fake CPU devices"
  return data_sharding(make_mesh())


def test_to_global_array(sharding):
  batch = indexed_source(16).get_batch(np.arange(16))
  placed = to_global_array(batch, sharding)
  assert placed["image"].sharding == sharding
  assert len(placed["label"].addressable_shards) == 8
  np.testing.assert_array_equal(placed["label"], batch["label"])


def test_prefetch_matches_host_batches(sharding):
  source = indexed_source(64)
  host = list(train_batches(source, 16, seed=0, num_steps=6))
  device = list(prefetch_to_device(iter(host), sharding, size=2))
  assert len(device) == len(host)
  for h, d in zip(host, device):
    for key in ("image", "label"):
      assert isinstance(d[key], jax.Array) and d[key].sharding == sharding
      np.testing.assert_array_equal(np.asarray(d[key]), h[key])


def test_prefetch_reraises_producer_errors(sharding):
  def failing():
    yield from train_batches(indexed_source(16), 8, seed=0, num_steps=2)
    raise RuntimeError("disk on fire")

  batches = prefetch_to_device(failing(), sharding)
  assert next(batches)["label"].shape == (8,)
  assert next(batches)["label"].shape == (8,)
  with pytest.raises(RuntimeError, match="disk on fire"):
    next(batches)


def _prefetch_threads():
  return [t for t in threading.enumerate() if t.name == "prefetch_to_device"]


def test_prefetch_thread_stops_when_the_consumer_does(sharding):
  before = len(_prefetch_threads())
  batches = prefetch_to_device(train_batches(indexed_source(16), 8, seed=0), sharding)
  next(batches)  # the producer now runs ahead on an infinite source
  batches.close()
  deadline = time.monotonic() + 5
  while len(_prefetch_threads()) > before and time.monotonic() < deadline:
    time.sleep(0.05)
  assert len(_prefetch_threads()) == before


def test_train_batches_checks_its_arguments_before_any_worker_starts():
  # Raised at the call (a worker process would start only at the first `next`).
  with pytest.raises(ValueError, match="larger than the 4 examples"):
    train_batches(indexed_source(4), 8, seed=0, workers=2)
  with pytest.raises(ValueError, match="workers must be >= 0"):
    train_batches(indexed_source(16), 8, seed=0, workers=-1)


def test_prefetch_closes_its_iterator_when_the_consumer_stops(sharding):
  # What stops the decoding workers of train_batches(workers=N) when training stops.
  closed = []

  def batches():
    try:
      yield from train_batches(indexed_source(16), 8, seed=0)
    finally:
      closed.append(True)

  device = prefetch_to_device(batches(), sharding)
  next(device)
  assert not closed  # a negative control: the producer is still running ahead
  device.close()  # returns once the producer thread has exited
  assert closed == [True]


def test_host_pipeline_throughput():
  assert host_pipeline_throughput(indexed_source(100), 10, num_steps=5) > 0
