"""I-JEPA's multi-block masks and MAE's random masks: block sizes against a float64 NumPy
reimplementation of the reference's formula, the slot count against a brute-force search,
token sets against a NumPy rasterisation of the boxes, sampling rates against their
expected frequencies."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax.augment.masks import (
    choose_tokens,
    ijepa_mask,
    mae_mask,
    max_block_tokens,
    per_image,
    sample_box,
)

GRID = (8, 8)
TARGET_SCALE = (0.15, 0.2)  # the paper's defaults
TARGET_ASPECT = (0.75, 1.5)
# (grid, scale, aspect): target blocks on 14 x 14 (ViT/16 at 224 px), on 16 x 16 (the
# paper's ViT-H/14 at 224 px) and on a small grid; a context-like block that can span the
# grid; a non-square grid where the sides clip.
BOX_CASES = [
    ((14, 14), TARGET_SCALE, TARGET_ASPECT),
    ((16, 16), TARGET_SCALE, TARGET_ASPECT),
    (GRID, TARGET_SCALE, TARGET_ASPECT),
    ((7, 7), (0.85, 1.0), (1.0, 1.0)),
    ((4, 8), (0.3, 0.6), (0.2, 5.0)),
]


def box_reference(u, grid, scale, aspect):
  """float64 (top, left, h, w) of the blocks for (n, 4) uniforms: the formula of I-JEPA's
  `_sample_block_size` / `_sample_block_mask` with independent uniforms and positions
  over every place the block fits; also how close each floor's argument is to a step."""
  u = np.asarray(u, np.float64)
  big_h, big_w = grid
  s = scale[0] + u[:, 0] * (scale[1] - scale[0])
  a = aspect[0] + u[:, 1] * (aspect[1] - aspect[0])
  k = np.floor(big_h * big_w * s)
  h = np.clip(np.floor(np.sqrt(k * a) + 0.5), 1, big_h)
  w = np.clip(np.floor(np.sqrt(k / a) + 0.5), 1, big_w)
  top = np.minimum(np.floor(u[:, 2] * (big_h - h + 1)), big_h - h)
  left = np.minimum(np.floor(u[:, 3] * (big_w - w + 1)), big_w - w)
  # Distance of each floor's argument to the nearest integer: where it is tiny, float32
  # and float64 may fall on different sides of a step.
  args = [big_h * big_w * s, np.sqrt(k * a) + 0.5, np.sqrt(k / a) + 0.5,
          u[:, 2] * (big_h - h + 1), u[:, 3] * (big_w - w + 1)]
  margin = np.min([np.abs(x - np.round(x)) for x in args], axis=0)
  return np.stack([top, left, h, w], axis=1).astype(int), margin


def brute_block_areas(grid, scale, aspect, num_scales=2001, num_aspects=200001):
  """All areas h * w of the blocks on a fine grid of (s, a) (both ends included): the
  token count k = floor(N s) takes few values, so the (s, a) grid is searched as the
  distinct k times the a grid."""
  n = grid[0] * grid[1]
  ks = np.unique(np.floor(n * np.linspace(scale[0], scale[1], num_scales)))
  a = np.linspace(aspect[0], aspect[1], num_aspects)
  h = np.clip(np.floor(np.sqrt(ks[:, None] * a) + 0.5), 1, grid[0])
  w = np.clip(np.floor(np.sqrt(ks[:, None] / a) + 0.5), 1, grid[1])
  return (h * w).astype(int)


def rasterise(box, grid):
  """(N,) bool: the tokens of a (top, left, h, w) box in row-major order, by loops."""
  top, left, h, w = (int(v) for v in box)
  inside = np.zeros(grid, bool)
  for r in range(top, top + h):
    for c in range(left, left + w):
      inside[r, c] = True
  return inside.reshape(-1)


@functools.lru_cache(maxsize=None)
def _boxes_fn(grid, scale, aspect):
  return jax.jit(jax.vmap(lambda u: sample_box(u, grid, scale, aspect)))


@pytest.mark.parametrize("grid,scale,aspect", BOX_CASES)
def test_sample_box_matches_float64_formula_and_stays_in_range(grid, scale, aspect):
  rng = np.random.default_rng(0)
  u = rng.uniform(size=(4000, 4)).astype(np.float32)
  # The ends of the unit interval: the smallest and largest blocks, the first and the last
  # position (a block may touch the last row and column, unlike the reference's randint).
  u[:4] = 0.0
  u[4:8] = np.nextafter(np.float32(1), np.float32(0))
  boxes = np.stack(_boxes_fn(grid, scale, aspect)(u), axis=1)
  expected, margin = box_reference(u, grid, scale, aspect)
  sure = margin > 1e-4
  assert sure.mean() > 0.99
  np.testing.assert_array_equal(boxes[sure], expected[sure])
  top, left, h, w = boxes.T
  assert np.all((top >= 0) & (left >= 0) & (h >= 1) & (w >= 1))
  assert np.all((top + h <= grid[0]) & (left + w <= grid[1]))
  areas = brute_block_areas(grid, scale, aspect)
  assert np.all((h * w >= areas.min()) & (h * w <= areas.max()))
  assert np.all(h * w <= max_block_tokens(grid, scale, aspect))
  # u2, u3 -> 1: the block sits on the last row and column.
  np.testing.assert_array_equal(top[4:8], grid[0] - h[4:8])
  np.testing.assert_array_equal(left[4:8], grid[1] - w[4:8])
  assert np.all(top[:4] == 0) and np.all(left[:4] == 0)


def test_sample_box_hand_values():
  # 16 x 16 = 256 tokens. u = 0: s = 0.15, k = floor(38.4) = 38, a = 0.75,
  # h = floor(sqrt(28.5) + .5) = floor(5.84) = 5, w = floor(sqrt(50.67) + .5) = floor(7.62) = 7.
  # u0 = u1 = 0.5: s = 0.175, k = floor(44.8) = 44, a = 1.125, h = floor(sqrt(49.5) + .5) =
  # floor(7.54) = 7, w = floor(sqrt(39.1) + .5) = floor(6.75) = 6; u2 = 0.5: top =
  # floor(0.5 * (16 - 7 + 1)) = 5; u3 = 0.25: left = floor(0.25 * 11) = 2.
  fn = _boxes_fn((16, 16), TARGET_SCALE, TARGET_ASPECT)
  boxes = np.stack(fn(np.array([[0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.25]], np.float32)), 1)
  np.testing.assert_array_equal(boxes, [[0, 0, 5, 7], [5, 2, 7, 6]])


@pytest.mark.parametrize("grid,scale,aspect", BOX_CASES)
def test_max_block_tokens_equals_brute_force_maximum(grid, scale, aspect):
  assert max_block_tokens(grid, scale, aspect) == brute_block_areas(grid, scale, aspect).max()


def test_max_block_tokens_hand_value():
  # 14 x 14, target ranges: k = floor(196 s) in [29, 39]. k = 39, a = 1.2 gives
  # h = floor(sqrt(46.8) + .5) = floor(7.34) = 7 and w = floor(sqrt(32.5) + .5) =
  # floor(6.20) = 6: 42. Nothing larger: k a <= 58.5 < 8.5^2 and k / a <= 52 < 7.5^2 cap
  # h at 8 and w at 7; 7 x 7 needs k a and k / a >= 6.5^2, so k >= 42.25; h = 8 needs
  # k a >= 7.5^2, so k / a <= 39^2 / 56.25 = 27.04 and w <= 5: 40.
  assert max_block_tokens((14, 14), TARGET_SCALE, TARGET_ASPECT) == 42


# The context block is the whole grid (context_scale (1, 1)), so the tokens the context
# may use are known: all those outside the targets, between 64 - 4 * 12 = 16 and
# 64 - 9 = 55. A budget of 32 falls on both sides of that, image by image.
CONTEXT_TOKENS = 32
IJEPA_KWARGS = dict(num_targets=4, target_scale=TARGET_SCALE, target_aspect=TARGET_ASPECT,
                    context_scale=(1.0, 1.0), context_tokens=CONTEXT_TOKENS)
BATCH = 16


@functools.lru_cache(maxsize=None)
def _ijepa_fn(batch):
  """jitted masks of one image (batch None) or of a batch of images (`per_image`)."""
  if batch is None:
    return jax.jit(lambda key: ijepa_mask(key, GRID, **IJEPA_KWARGS))
  return jax.jit(lambda key: per_image(ijepa_mask, key, batch, GRID, **IJEPA_KWARGS))


def _numpy(masks):
  return {k: np.asarray(v) for k, v in masks.items()}


def _check_one_image(m, num_tokens=GRID[0] * GRID[1]):
  """The properties every image's masks must have; returns the tokens outside the
  targets (those the context may use, its block being the whole grid)."""
  slots = max_block_tokens(GRID, TARGET_SCALE, TARGET_ASPECT)
  assert m["context"].shape == (CONTEXT_TOKENS,) and m["targets"].shape == (4, slots)
  in_targets = np.zeros(num_tokens, bool)
  for box, ids, valid in zip(m["target_boxes"], m["targets"], m["targets_valid"]):
    inside = rasterise(box, GRID)
    # The valid slots are exactly the box's tokens, in row-major order, and come first.
    np.testing.assert_array_equal(ids[valid], np.flatnonzero(inside))
    assert valid.sum() == box[2] * box[3] and not valid[valid.sum():].any()
    in_targets |= inside
  ctx = m["context"][m["context_valid"]]
  assert np.all((ctx >= 0) & (ctx < num_tokens))
  assert len(set(ctx.tolist())) == len(ctx)  # distinct
  assert not in_targets[ctx].any()  # no context token in a target block
  assert not m["context_valid"][len(ctx):].any()  # invalid slots last
  return ~in_targets


def test_ijepa_mask_per_image_properties_and_keys():
  key = jax.random.key(0)
  batch = _numpy(_ijepa_fn(BATCH)(key))
  for i in range(BATCH):
    _check_one_image({k: v[i] for k, v in batch.items()})
  # Image i gets key i of the split, whatever the batch.
  keys = jax.random.split(key, BATCH)
  for i in (0, 5):
    alone = _numpy(_ijepa_fn(None)(keys[i]))
    for name in alone:
      np.testing.assert_array_equal(batch[name][i], alone[name], err_msg=name)
  # Different images, different masks.
  for i in range(BATCH):
    for j in range(i):
      assert not np.array_equal(batch["target_boxes"][i], batch["target_boxes"][j])
      assert not np.array_equal(batch["context"][i], batch["context"][j])
  # Same key, same masks; another key, other masks; shapes do not depend on the key.
  again = _numpy(_ijepa_fn(BATCH)(key))
  other = _numpy(_ijepa_fn(BATCH)(jax.random.key(1)))
  for name in batch:
    np.testing.assert_array_equal(batch[name], again[name])
    assert batch[name].shape == other[name].shape
  assert not np.array_equal(batch["target_boxes"], other["target_boxes"])


def test_ijepa_context_count_is_min_of_budget_and_allowed_tokens():
  batches = [_numpy(_ijepa_fn(BATCH)(jax.random.key(seed))) for seed in (2, 3)]
  batch = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
  regimes = set()
  for i in range(2 * BATCH):
    m = {k: v[i] for k, v in batch.items()}
    allowed = _check_one_image(m)
    assert m["context_valid"].sum() == min(CONTEXT_TOKENS, allowed.sum())
    if allowed.sum() <= CONTEXT_TOKENS:  # every allowed token is in the context
      np.testing.assert_array_equal(m["context"][m["context_valid"]], np.flatnonzero(allowed))
    regimes.add(bool(allowed.sum() > CONTEXT_TOKENS))
  assert regimes == {True, False}
  # Sizes are drawn per image: several block shapes, every area one the ranges reach.
  boxes = batch["target_boxes"]
  reachable = set(brute_block_areas(GRID, TARGET_SCALE, TARGET_ASPECT).ravel().tolist())
  assert set((boxes[..., 2] * boxes[..., 3]).ravel().tolist()) <= reachable
  assert len({(h, w) for h, w in boxes[..., 2:].reshape(-1, 2).tolist()}) >= 3


def test_choose_tokens_draws_allowed_tokens_without_replacement():
  allowed = np.zeros(12, bool)
  allowed[[1, 2, 4, 7, 8, 9, 10, 11]] = True  # 8 allowed
  for count in (3, 8, 11):
    ids, valid = (np.asarray(x) for x in jax.jit(choose_tokens, static_argnums=2)(
        jax.random.key(count), jnp.asarray(allowed), count))
    assert ids.shape == (count,) and valid.sum() == min(count, 8)
    chosen = ids[valid]
    assert np.all(allowed[chosen]) and np.all(np.diff(chosen) > 0)  # allowed, sorted, distinct
    assert valid[:len(chosen)].all() and not valid[len(chosen):].any()
    assert np.all((ids >= 0) & (ids < 12))


def test_choose_tokens_is_uniform_over_allowed_tokens():
  allowed = np.zeros(12, bool)
  allowed[[0, 3, 4, 5, 6, 9, 10, 11]] = True
  keys = jax.random.split(jax.random.key(7), 4000)
  ids, valid = jax.jit(jax.vmap(lambda k: choose_tokens(k, jnp.asarray(allowed), 3)))(keys)
  ids, valid = np.asarray(ids), np.asarray(valid)
  assert valid.all()
  counts = np.bincount(ids.ravel(), minlength=12) / 4000
  # Each allowed token with probability 3/8 = 0.375 (binomial std 0.0077), others never.
  np.testing.assert_allclose(counts[allowed], 3 / 8, atol=0.04)
  assert np.all(counts[~allowed] == 0)
  # Pairs too: each of the C(8, 2) = 28 pairs is in a draw with probability
  # C(6, 1) / C(8, 3) = 6 / 56 = 0.107 (std 0.0049).
  together = np.zeros((12, 12))
  for row in ids:
    together[np.ix_(row, row)] += 1
  pairs = together[np.ix_(allowed, allowed)][~np.eye(8, dtype=bool)] / 4000
  np.testing.assert_allclose(pairs, 6 / 56, atol=0.025)


@pytest.mark.parametrize("num_tokens,ratio,kept", [(196, 0.75, 49), (10, 0.75, 2),
                                                   (49, 0.6, 19)])
def test_mae_mask_keeps_int_n_times_one_minus_ratio(num_tokens, ratio, kept):
  # kept = int(N (1 - ratio)), written by hand: 196 / 4 = 49, int(2.5) = 2, int(19.6) = 19.
  m = jax.jit(mae_mask, static_argnums=(1, 2))(jax.random.key(num_tokens), num_tokens, ratio)
  keep, restore, mask = (np.asarray(x) for x in m)
  assert keep.shape == (kept,) and restore.shape == (num_tokens,)
  assert len(set(keep.tolist())) == kept and np.all((keep >= 0) & (keep < num_tokens))
  expected_mask = np.ones(num_tokens)
  expected_mask[keep] = 0
  np.testing.assert_array_equal(mask, expected_mask)
  # restore is a permutation whose inverse (the shuffle) starts with `keep`: kept tokens
  # followed by removed ones in shuffle order, gathered by restore, are in grid order.
  assert sorted(restore.tolist()) == list(range(num_tokens))
  shuffle = np.argsort(restore)
  np.testing.assert_array_equal(shuffle[:kept], keep)
  x = np.arange(num_tokens) * 10 + 3
  np.testing.assert_array_equal(np.concatenate([x[keep], x[shuffle[kept:]]])[restore], x)


def test_mae_mask_is_random_and_uniform():
  masks_of = jax.jit(mae_mask, static_argnums=1)
  a, b = masks_of(jax.random.key(0), 196), masks_of(jax.random.key(1), 196)
  assert not np.array_equal(np.asarray(a.mask), np.asarray(b.mask))
  np.testing.assert_array_equal(a.keep, masks_of(jax.random.key(0), 196).keep)
  masks = jax.jit(lambda key: per_image(mae_mask, key, 2000, 16, 0.75))(jax.random.key(2))
  kept = 1 - np.asarray(masks.mask)
  assert np.all(kept.sum(axis=1) == 4)
  # Each token kept with probability 4/16 = 0.25 (std 0.0097).
  np.testing.assert_allclose(kept.mean(axis=0), 0.25, atol=0.045)


@pytest.mark.parametrize("num_tokens,ratio", [(16, 0.99), (196, 1.0), (3, 0.7)])
def test_mae_mask_that_keeps_nothing_raises(num_tokens, ratio):
  # int(0.16) = 0, int(0) = 0, int(0.9) = 0 tokens kept.
  assert math.floor(num_tokens * (1 - ratio)) == 0
  with pytest.raises(ValueError):
    mae_mask(jax.random.key(0), num_tokens, ratio)
