"""The audio tower: a ViT on log-mel patches (AST, Gong et al. 2021; ImageBind's audio
encoder, Girdhar et al. 2023, sec. 4).

A log-mel spectrogram (`jejax.audio.log_mel_spectrogram`, (B, frames, mels)) is an image
with time down and frequency across. Each clip is standardised over its frames of sound
(zero mean, unit variance; AST and ImageBind use data-set statistics instead, which this
makes unnecessary, and loudness drops out), cropped to a multiple of the patch size in
time, cut into p x p patches (time x mel, non-overlapping; ImageBind's overlap with
stride 10) and fed to the ViT (`jejax.models.vit`: fixed 2-D sin-cos positions, pre-norm
blocks). Patches that start after the sound ends (the zero padding of a short clip) are
masked out of attention and of the mean pool, so a clip's features do not depend on the
padding that follows it.

At 16 kHz with 10 ms hops a 3 s clip has 298 frames; with 64 mels and 16 x 16 patches
that is 18 x 4 = 72 tokens.

Example:
  >>> log_mel = log_mel_spectrogram(waveforms)  # (B, 298, 64)
  >>> valid = valid_frames(lengths, log_mel.shape[1])  # (B, 298)
  >>> AudioViT().init_with_output(key, log_mel, valid)[0].shape
  (B, 96)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jejax.models.base import TOWERS
from jejax.models.vit import VIT_SIZES, masked_mean, vit_from_name


def standardize_clips(log_mel: jax.Array, valid: jax.Array, eps: float = 1e-5) -> jax.Array:
  """(B, T, M) log-mel -> the same, each clip at zero mean and unit variance over its
  valid frames (`valid` (B, T) bool)."""
  weights = valid.astype(jnp.float32)[:, :, None]  # (B, T, 1)
  count = jnp.maximum(jnp.sum(weights, axis=(1, 2)) * log_mel.shape[2], 1.0)  # (B,)
  mean = jnp.sum(log_mel * weights, axis=(1, 2)) / count
  centred = log_mel - mean[:, None, None]
  variance = jnp.sum(jnp.square(centred) * weights, axis=(1, 2)) / count
  return centred * jax.lax.rsqrt(variance + eps)[:, None, None]


class AudioViT(nn.Module):
  """Attributes:
    size: a `VIT_SIZES` name ('micro': 96 wide, 4 blocks, 3 heads).
    patch_size: side of the square (time x mel) patches; it must divide the mel count.
    dtype: compute dtype; params stay float32.

  Input: log_mel (B, T, M) float, valid (B, T) bool (True on frames inside the sound,
  `jejax.audio.valid_frames`). Output (B, width) float32.
  """
  size: str = "micro"
  patch_size: int = 16
  dtype: Any = jnp.float32

  def setup(self):
    if self.size not in VIT_SIZES:
      raise ValueError(f"size={self.size!r}: unknown; known: {', '.join(VIT_SIZES)}")
    self.vit = vit_from_name(f"{self.size}/{self.patch_size}", dtype=self.dtype)

  def token_valid(self, valid: jax.Array, num_mels: int) -> jax.Array:
    """(B, T) frame mask -> (B, T/p * M/p) token mask, row-major (time rows, mel columns):
    a token is valid if its first frame is."""
    p = self.patch_size
    rows = valid[:, :(valid.shape[1] // p) * p:p]  # (B, T/p), the first frame of each row
    return jnp.repeat(rows, num_mels // p, axis=1)

  def __call__(self, log_mel: jax.Array, valid: jax.Array) -> jax.Array:
    p = self.patch_size
    frames = (log_mel.shape[1] // p) * p
    x = standardize_clips(log_mel, valid)[:, :frames, :, None]  # (B, T', M, 1)
    tokens = self.vit.embed(x)  # (B, T'/p * M/p, width)
    token_valid = self.token_valid(valid, log_mel.shape[2])
    outputs = self.vit.transform(tokens, token_valid)
    return masked_mean(outputs, token_valid).astype(jnp.float32)


@TOWERS.register("audio", {"size": "micro", "patch_size": 16})
def _build(block, dtype) -> AudioViT:
  return AudioViT(size=block["size"], patch_size=block["patch_size"], dtype=dtype)
