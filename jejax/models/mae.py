"""MAE's networks (He et al. 2022): a ViT encoder on the visible patches, a lighter
transformer decoder with mask tokens that predicts every patch's pixels."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jejax.models.jepa import gather_tokens
from jejax.models.vit import Transformer, ViT, sincos_2d


class Decoder(nn.Module):
  """MAE's decoder: the encoder's outputs (class token first) projected to `width`, a
  shared mask token in every removed position, the tokens put back in grid order, fixed
  sin-cos position embeddings (zero for the class token), `depth` blocks, and a linear
  map of each patch token to its p * p * C pixels.

  Attributes:
    width, depth, num_heads: the paper's default decoder is 512 wide, 8 deep, 16 heads.
    patch_pixels: p * p * C.
  """
  width: int
  depth: int
  num_heads: int
  patch_pixels: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, latent: jax.Array, restore: jax.Array,
               grid: tuple[int, int]) -> jax.Array:
    """latent (B, 1 + K, D) with the class token first, restore (B, N) -> (B, N, P)."""
    x = nn.Dense(self.width, dtype=self.dtype, name="embed")(latent)
    b, n = restore.shape
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (self.width,))
    removed = jnp.broadcast_to(mask_token.astype(self.dtype), (b, n - (x.shape[1] - 1),
                                                               self.width))
    tokens = jnp.concatenate([x[:, 1:], removed], axis=1)  # (B, N, width), shuffled order
    tokens = gather_tokens(tokens, restore)  # grid order
    tokens = tokens + jnp.asarray(sincos_2d(self.width, *grid), self.dtype)
    x = jnp.concatenate([x[:, :1], tokens], axis=1)
    x = Transformer(self.depth, self.num_heads, 4 * self.width, dtype=self.dtype,
                    name="transformer")(x)
    return nn.Dense(self.patch_pixels, dtype=self.dtype, name="predict")(x[:, 1:])


class MAEModel(nn.Module):
  """params {'encoder': ..., 'decoder': ...}. The encoder must have a class token (MAE's
  linear probes read it)."""
  encoder: ViT
  decoder: Decoder

  def __call__(self, image: jax.Array, keep: jax.Array,
               restore: jax.Array) -> dict[str, jax.Array]:
    """image (B, H, W, C) in [0, 1], keep (B, K), restore (B, N) ->
    'prediction' (B, N, P) float32 pixels of every patch, and 'embedding' (B, D), the
    mean of the encoder's outputs (for the step's collapse diagnostics)."""
    visible = gather_tokens(self.encoder.embed(image), keep)  # (B, K, D)
    latent = self.encoder.transform(visible)  # (B, 1 + K, D)
    prediction = self.decoder(latent, restore, self.encoder.grid(image.shape))
    return {"prediction": prediction.astype(jnp.float32),
            "embedding": latent.mean(axis=1).astype(jnp.float32)}

  def features(self, image: jax.Array) -> jax.Array:
    return self.encoder(image).astype(jnp.float32)
