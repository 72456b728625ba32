"""Token masks of masked-image methods, drawn on the device with one key per image.

Tokens are the patches of a (H/p) x (W/p) grid in row-major order. Every mask has a
static number of token slots, so the train step compiles once; where a block holds
fewer tokens than its slots, the extra slots are marked invalid (and masked out of
attention and of the loss).

I-JEPA (Assran et al. 2023, sec. 3; facebookresearch/ijepa `src/masks/multiblock.py`):
`num_targets` target blocks of area `target_scale` and aspect ratio `target_aspect`, and
one context block of area `context_scale` (aspect 1) with every target token removed.
What differs from the reference collator, and why:

- Sizes and positions are drawn per image (one key per image; the reference draws one
  block size per batch, positions per image), with independent uniforms for scale and
  aspect ratio (the reference uses one uniform for both, which ties wide blocks to
  large ones).
- A block may touch the last row and column and span the whole grid (the reference
  draws `randint(0, H - h)`, exclusive, which never places a block on the last row or
  column, and caps blocks at H - 1).
- Target blocks keep all their tokens: the slots are the largest block the ranges allow,
  the smaller blocks padded with invalid slots. The reference gives every block of a
  batch the same size, so it needs no padding there.
- The context keeps `context_tokens` of its tokens, chosen uniformly at random (padded
  with invalid slots when it has fewer). The reference truncates every context of a
  batch to the batch's smallest, in raster order (dropping the bottom-right tokens), a
  size that changes every batch and would recompile a jitted step; a fixed count at the
  reference's typical batch minimum (about 27% of the tokens on its 16 x 16 grid at 128
  images per device) keeps the same context budget with a static shape.

MAE (He et al. 2022, sec. 3; facebookresearch/mae `random_masking`): a uniformly random
`1 - mask_ratio` of the tokens is kept, by argsort of uniform noise; `restore` puts the
encoder's output back in grid order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

Grid = tuple[int, int]  # tokens per column, per row


def _round_half_up(x):
  """floor(x + 1/2): one rounding rule for the traced and the static block sizes, so
  that `max_block_tokens` bounds exactly what `block_shape` can return."""
  return math.floor(x + 0.5) if isinstance(x, float) else jnp.floor(x + 0.5)


def block_shape(tokens: ArrayLike, aspect: ArrayLike, grid: Grid):
  """(h, w) of a block of about `tokens` tokens and aspect ratio `aspect` = h / w, as the
  I-JEPA reference computes it: h = round(sqrt(tokens * aspect)), w = round(sqrt(tokens /
  aspect)), each clipped to [1, grid side]. Works on Python floats and on arrays."""
  h = _round_half_up((tokens * aspect) ** 0.5)
  w = _round_half_up((tokens / aspect) ** 0.5)
  if isinstance(h, (int, float)):
    return min(max(int(h), 1), grid[0]), min(max(int(w), 1), grid[1])
  return (jnp.clip(h, 1, grid[0]).astype(jnp.int32), jnp.clip(w, 1, grid[1]).astype(jnp.int32))


def max_block_tokens(grid: Grid, scale: tuple[float, float],
                     aspect: tuple[float, float]) -> int:
  """The largest h * w that `block_shape(floor(N s), a)` reaches for s in `scale`, a in
  `aspect` (N = grid tokens): the slots of a block. Exact: h and w are step functions of
  a for each integer token count, so their product is checked on every step."""
  n = grid[0] * grid[1]
  best = 0
  for tokens in range(int(n * scale[0]), int(n * scale[1]) + 1):
    breaks = {float(aspect[0]), float(aspect[1])}
    for m in range(max(grid) + 1):
      for a in ((m + 0.5) ** 2 / max(tokens, 1), max(tokens, 1) / (m + 0.5) ** 2):
        if aspect[0] < a < aspect[1]:
          breaks.add(a)
    points = sorted(breaks)
    for a in points + [(x + y) / 2 for x, y in zip(points, points[1:])]:
      h, w = block_shape(float(tokens), a, grid)
      best = max(best, h * w)
  return best


class Box(NamedTuple):
  top: jax.Array
  left: jax.Array
  height: jax.Array
  width: jax.Array


def sample_box(uniforms: ArrayLike, grid: Grid, scale: tuple[float, float],
               aspect: tuple[float, float]) -> Box:
  """A block from 4 uniforms in [0, 1): area fraction s = scale[0] + u0 (scale[1] -
  scale[0]), aspect a likewise from u1, (h, w) = `block_shape(floor(N s), a)`, top-left
  corner uniform over the positions where it fits (u2, u3)."""
  u = jnp.asarray(uniforms)
  n = grid[0] * grid[1]
  s = scale[0] + u[0] * (scale[1] - scale[0])
  a = aspect[0] + u[1] * (aspect[1] - aspect[0])
  h, w = block_shape(jnp.floor(n * s), a, grid)
  top = jnp.minimum(jnp.floor(u[2] * (grid[0] - h + 1)), grid[0] - h).astype(jnp.int32)
  left = jnp.minimum(jnp.floor(u[3] * (grid[1] - w + 1)), grid[1] - w).astype(jnp.int32)
  return Box(top, left, h, w)


def box_mask(box: Box, grid: Grid) -> jax.Array:
  """(N,) bool: the tokens inside `box`."""
  rows = jnp.arange(grid[0])[:, None]
  cols = jnp.arange(grid[1])[None, :]
  inside = ((rows >= box.top) & (rows < box.top + box.height) &
            (cols >= box.left) & (cols < box.left + box.width))
  return inside.reshape(-1)


def box_tokens(box: Box, grid: Grid, slots: int) -> tuple[jax.Array, jax.Array]:
  """The box's token indices in row-major order in `slots` slots, and which are valid
  ((slots,) int32, (slots,) bool); invalid slots repeat the box's first token."""
  j = jnp.arange(slots)
  valid = j < box.height * box.width
  j = jnp.where(valid, j, 0)
  rows = box.top + j // box.width
  cols = box.left + j % box.width
  return (rows * grid[1] + cols).astype(jnp.int32), valid


def choose_tokens(key: jax.Array, allowed: jax.Array, count: int) -> tuple[jax.Array, jax.Array]:
  """`count` token indices drawn uniformly without replacement from the True entries of
  `allowed` (N,), sorted, with invalid slots last where fewer are allowed."""
  n = allowed.shape[0]
  noise = jax.random.uniform(key, (n,))
  order = jnp.argsort(jnp.where(allowed, noise, 2.0))[:count]  # allowed tokens first
  valid = allowed[order]
  # Sorted by index, the invalid slots after every valid one.
  order = jnp.sort(jnp.where(valid, order, n + order))
  valid = order < n
  return jnp.where(valid, order, order - n).astype(jnp.int32), valid


def ijepa_mask(key: jax.Array, grid: Grid, *, num_targets: int = 4,
               target_scale: tuple[float, float] = (0.15, 0.2),
               target_aspect: tuple[float, float] = (0.75, 1.5),
               context_scale: tuple[float, float] = (0.85, 1.0),
               context_tokens: int) -> dict[str, jax.Array]:
  """I-JEPA's masks for one image (see the module docstring).

  Returns:
    'context' (Kc,) int32 and 'context_valid' (Kc,) bool, Kc = `context_tokens`: the
      context tokens, none of them in a target block;
    'targets' (M, Kt) int32 and 'targets_valid' (M, Kt) bool, M = `num_targets`, Kt =
      `max_block_tokens(grid, target_scale, target_aspect)`: each target block's tokens;
    'target_boxes' (M, 4) int32: (top, left, height, width) of each target block.
  """
  slots = max_block_tokens(grid, target_scale, target_aspect)
  box_key, context_key, choice_key = jax.random.split(key, 3)
  uniforms = jax.random.uniform(box_key, (num_targets, 4))
  boxes = jax.vmap(lambda u: sample_box(u, grid, target_scale, target_aspect))(uniforms)
  targets, targets_valid = jax.vmap(lambda b: box_tokens(b, grid, slots))(boxes)
  in_targets = jax.vmap(lambda b: box_mask(b, grid))(boxes).any(axis=0)  # (N,)
  context_box = sample_box(jax.random.uniform(context_key, (4,)), grid, context_scale,
                           (1.0, 1.0))
  allowed = box_mask(context_box, grid) & ~in_targets
  context, context_valid = choose_tokens(choice_key, allowed, context_tokens)
  return {"context": context, "context_valid": context_valid, "targets": targets,
          "targets_valid": targets_valid, "target_boxes": jnp.stack(boxes, axis=-1)}


class RandomMask(NamedTuple):
  keep: jax.Array  # (K,) int32: the kept tokens, in a random order
  restore: jax.Array  # (N,) int32: argsort of the shuffle, puts the order back
  mask: jax.Array  # (N,) float32: 1 for a removed token, 0 for a kept one (grid order)


def mae_mask(key: jax.Array, num_tokens: int, mask_ratio: float = 0.75) -> RandomMask:
  """MAE's random masking of one image: keep int(N (1 - mask_ratio)) tokens, the first of
  a uniformly random permutation (argsort of uniform noise, as the reference)."""
  keep_count = int(num_tokens * (1 - mask_ratio))
  if not 1 <= keep_count <= num_tokens:
    raise ValueError(f"mask_ratio={mask_ratio} keeps {keep_count} of {num_tokens} tokens; "
                     "at least one must be kept")
  shuffle = jnp.argsort(jax.random.uniform(key, (num_tokens,)))
  restore = jnp.argsort(shuffle)
  mask = (jnp.arange(num_tokens) >= keep_count).astype(jnp.float32)[restore]
  return RandomMask(shuffle[:keep_count].astype(jnp.int32), restore.astype(jnp.int32), mask)


def per_image(mask_fn, key: jax.Array, batch_size: int, *args, **kwargs):
  """`mask_fn(key_i, ...)` for i < batch_size with keys `jax.random.split(key, B)`: image
  i gets key i whatever the batch's sharding, as the views do."""
  keys = jax.random.split(key, batch_size)
  return jax.vmap(lambda k: mask_fn(k, *args, **kwargs))(keys)
