"""Token deletion and the spectrogram time mask, checked row by row against what they
promise: a deletion keeps an in-order subsequence with its first and last token, a mask
is one run of frames inside the sound set to the clip's mean; the rates at their ends."""

import functools

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jejax import parallel
from jejax.augment import delete_tokens, time_mask
from jejax.data import tokenizer


@functools.lru_cache(maxsize=None)
def _jitted(fn, **static):
  return jax.jit(functools.partial(fn, **static))


def test_the_default_pad_is_the_tokenizers():
  assert tokenizer.PAD_ID == 0  # delete_tokens' default pad_id, which DeCUR relies on


def token_batch():
  """(6, 12): rows of 2 to 12 real tokens (ids 10-99), then padding 0."""
  rng = np.random.default_rng(0)
  lengths = np.array([2, 3, 5, 8, 11, 12])
  tokens = np.where(np.arange(12) < lengths[:, None], rng.integers(10, 100, (6, 12)), 0)
  return np.int32(tokens), tokens != 0


def is_subsequence(short, long):
  it = iter(long)
  return all(any(x == y for y in it) for x in short)


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_deletion_keeps_an_ordered_subsequence_with_both_ends(rate):
  tokens, mask = token_batch()
  out, out_mask = _jitted(delete_tokens, rate=rate)(jax.random.key(1), tokens, mask)
  out, out_mask = np.asarray(out), np.asarray(out_mask)
  deleted = 0
  for row, row_mask, new, new_mask in zip(tokens, mask, out, out_mask):
    real, kept = row[row_mask], new[new_mask]
    n = len(kept)
    assert new_mask[:n].all() and not new_mask[n:].any() and (new[n:] == 0).all()
    assert kept[0] == real[0] and kept[-1] == real[-1]
    assert is_subsequence(list(kept), list(real))
    deleted += len(real) - n
  interior = int(mask.sum()) - 2 * len(tokens)
  if rate == 0.0:
    np.testing.assert_array_equal(out, tokens)
  elif rate == 1.0:
    assert deleted == interior  # only the first and last of each row are left
  else:
    assert 0 < deleted < interior


def test_views_do_not_depend_on_the_sharding():
  # One key per example: a batch split over devices gets the views it gets on one.
  mesh = parallel.make_mesh(2)
  shard = lambda x: jax.device_put(x, NamedSharding(mesh, P(parallel.DATA_AXIS)))  # noqa: E731
  tokens, mask = token_batch()
  log_mel, valid = spectrograms()
  log_mel, valid = log_mel[:4], valid[:4]
  delete = _jitted(delete_tokens, rate=0.5)
  mask_time = _jitted(time_mask, max_frames=8)
  for a, b in zip(delete(jax.random.key(2), tokens, mask),
                  delete(jax.random.key(2), shard(tokens), shard(mask))):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(mask_time(jax.random.key(2), log_mel, valid),
                                mask_time(jax.random.key(2), shard(log_mel), shard(valid)))


def spectrograms():
  rng = np.random.default_rng(3)
  log_mel = np.float32(rng.normal(size=(5, 40, 4)))
  lengths = np.array([40, 25, 10, 3, 0])
  return log_mel, np.arange(40)[None, :] < lengths[:, None]


@pytest.mark.parametrize("max_frames", [0, 8, 100])
def test_time_mask_is_one_run_inside_the_sound_at_the_clip_mean(max_frames):
  log_mel, valid = spectrograms()
  out = np.asarray(_jitted(time_mask, max_frames=max_frames)(jax.random.key(4), log_mel,
                                                            valid))
  widths = []
  for x, v, y in zip(log_mel, valid, out):
    changed = np.flatnonzero(np.any(y != x, axis=1))
    widths.append(len(changed))
    if not len(changed):
      continue
    assert changed[-1] - changed[0] + 1 == len(changed)  # one run
    assert len(changed) <= max_frames and v[changed].all()  # inside the sound
    np.testing.assert_allclose(y[changed], np.mean(x[v]), rtol=1e-5)
  if max_frames == 0:
    np.testing.assert_array_equal(out, log_mel)
  else:
    assert max(widths) > 0
  if max_frames == 100:  # wider than any clip: up to the whole sound, none without one
    assert widths[3] <= 3 and widths[4] == 0
