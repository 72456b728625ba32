"""On-device augmentation of token sequences and spectrograms: the second views of text
and speech for methods that need two views of every modality (DeCUR).

One PRNG key per example (`jax.random.split(key, B)`), so a batch split over any number
of devices gets the views it would get on one, as the image views.

- `delete_tokens`: each token between the first and the last real one is deleted with
  probability `rate`; the kept ones close up, in order. On byte tokens that is character
  deletion, a typo-like noise that leaves a short caption readable ("a drk small sndal")
  and keeps its begin and end tokens, where the text tower reads its output.
- `time_mask`: SpecAugment's time mask (Park et al. 2019, "SpecAugment", sec. 2): a run of
  consecutive frames within each clip's sound is set to the clip's mean over its sound.

Example:
  >>> tokens, mask = delete_tokens(key, tokens, mask, rate=0.1)  # (B, L) each
  >>> log_mel = time_mask(key, log_mel, valid, max_frames=50)  # (B, T, M)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def delete_tokens(key: ArrayLike, tokens: ArrayLike, mask: ArrayLike, rate: float, *,
                  pad_id: int = 0) -> tuple[jax.Array, jax.Array]:
  """Random deletion of the interior tokens of each sequence.

  Args:
    key: PRNG key for the batch.
    tokens: (B, L) int token ids; mask: (B, L) bool, True on the real tokens, which come
      first in each row (`jejax.data.tokenizer`).
    rate: probability that an interior token (not the row's first or last real one) is
      deleted.
    pad_id: the id written after the kept tokens (`jejax.data.tokenizer.PAD_ID`).

  Returns:
    (tokens, mask), (B, L) each: every row's kept tokens first, in their order, then
    padding; the first and last real tokens are always kept.
  """
  tokens, mask = jnp.asarray(tokens), jnp.asarray(mask, bool)
  b, length = tokens.shape
  keys = jax.random.split(key, b)
  uniforms = jax.vmap(lambda k: jax.random.uniform(k, (length,)))(keys)  # (B, L)
  position = jnp.arange(length)[None, :]
  last = jnp.sum(mask, axis=1, keepdims=True) - 1  # (B, 1)
  interior = mask & (position > 0) & (position < last)
  keep = mask & ~(interior & (uniforms < rate))
  order = jnp.argsort(~keep, axis=1, stable=True)  # kept positions first, in order
  kept = jnp.take_along_axis(keep, order, axis=1)
  return jnp.where(kept, jnp.take_along_axis(tokens, order, axis=1), pad_id), kept


def time_mask(key: ArrayLike, log_mel: ArrayLike, valid: ArrayLike,
              max_frames: int) -> jax.Array:
  """One time mask per clip (SpecAugment's T = `max_frames`, one mask).

  Its width w is uniform in [0, max_frames] (at most the clip's frames of sound), its
  first frame uniform among those that keep it inside the sound; the masked frames take
  the clip's mean over its frames of sound and all mels (SpecAugment's mean value, on a
  clip that is standardised later).

  Args:
    key: PRNG key for the batch.
    log_mel: (B, T, M) spectrograms; valid: (B, T) bool, True on the frames of sound,
      which come first (`jejax.audio.valid_frames`).
    max_frames: the widest mask (static).

  Returns:
    (B, T, M), float32.
  """
  log_mel = jnp.asarray(log_mel, jnp.float32)
  valid = jnp.asarray(valid, bool)
  keys = jax.random.split(key, log_mel.shape[0])

  def one(k, x, v):  # (T, M), (T,)
    sound = jnp.sum(v)
    k_width, k_start = jax.random.split(k)
    width = jnp.minimum(jax.random.randint(k_width, (), 0, max_frames + 1), sound)
    start = jax.random.randint(k_start, (), 0, sound - width + 1)
    frame = jnp.arange(x.shape[0])
    masked = (frame >= start) & (frame < start + width)
    weights = v.astype(jnp.float32)[:, None]
    mean = jnp.sum(x * weights) / jnp.maximum(jnp.sum(weights) * x.shape[1], 1.0)
    return jnp.where(masked[:, None], mean, x)

  return jax.vmap(one)(keys, log_mel, valid)
