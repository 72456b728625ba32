"""Vision Transformer (Dosovitskiy et al. 2021) with fixed 2-D sin-cos position embeddings.

The encoder of I-JEPA (Assran et al. 2023) and MAE (He et al. 2022): patch embedding,
fixed (not learned) 2-D sin-cos position embeddings as in both of their codes, pre-norm
blocks (LayerNorm -> attention -> residual, LayerNorm -> GELU MLP -> residual), a final
LayerNorm, and an optional class token. Besides the backbone interface
(`ViT(images) -> (B, width)` pooled features, usable by every view method), it exposes the
token level that masked methods need: `embed` (patch tokens with positions), `transform`
(the blocks over any subset of tokens, with padding masked out of attention) and `pool`.

Sizes (`VIT_SIZES`): the published tiny to huge (ViT-Ti/S/B/L/H; Touvron et al. 2021 for
Ti and S) and three smaller ones for 28-32 px images on a CPU (nano for tests), used with
patch 4 (7 x 7 = 49 tokens at 28 px) or 2 (196 tokens): `vit_from_name("small/16")` is
ViT-S/16.

Initialisation as MAE's code: Xavier-uniform linear layers with zero biases, the patch
embedding initialised like a linear layer on the flattened patch, class token N(0, 0.02).
(I-JEPA's code uses truncated normal std 0.02 and rescales each block's output layers by
its depth; not followed, one initialisation serves both.)
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jejax.models.base import BACKBONES

# name: (width, depth, heads); the MLP is 4 x width wide.
VIT_SIZES = {
    "nano": (48, 2, 3),  # tests
    "micro": (96, 4, 3),  # 28 px CPU runs
    "mini": (192, 6, 3),
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
}

_dense = functools.partial(nn.Dense, kernel_init=nn.initializers.xavier_uniform(),
                           bias_init=nn.initializers.zeros)
_layer_norm = functools.partial(nn.LayerNorm, epsilon=1e-6)


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
  """(P,) positions -> (P, dim): [sin(p w_0), ..., sin(p w_{d/2-1}), cos(p w_0), ...] with
  w_i = 10000^(-2i/dim) (Vaswani et al. 2017; MAE's `get_1d_sincos_pos_embed_from_grid`)."""
  if dim % 2:
    raise ValueError(f"a sin-cos embedding needs an even width, got {dim}")
  omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2))
  angles = np.outer(positions.astype(np.float64), omega)  # (P, dim/2)
  return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(dim: int, grid_height: int, grid_width: int) -> np.ndarray:
  """(grid_height * grid_width, dim) fixed position embeddings of a row-major token grid:
  the first half of the channels encodes the column, the second half the row (as in
  MAE's and I-JEPA's `get_2d_sincos_pos_embed`)."""
  if dim % 4:
    raise ValueError(f"a 2-D sin-cos embedding needs a width divisible by 4, got {dim}")
  rows, cols = np.meshgrid(np.arange(grid_height), np.arange(grid_width), indexing="ij")
  return np.concatenate([sincos_1d(dim // 2, cols.reshape(-1)),
                         sincos_1d(dim // 2, rows.reshape(-1))], axis=1).astype(np.float32)


class MLPBlock(nn.Module):
  """Dense -> GELU -> Dense, (..., D) -> (..., D)."""
  hidden: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    width = x.shape[-1]
    x = nn.gelu(_dense(self.hidden, dtype=self.dtype)(x), approximate=False)
    return _dense(width, dtype=self.dtype)(x)


class Block(nn.Module):
  """Pre-norm transformer block; `valid` (B, L) bool masks padding keys out of attention
  (a padding token's own output is computed and meant to be ignored)."""
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    mask = None if valid is None else valid[:, None, None, :]  # (B, heads, L_q, L_k)
    y = _layer_norm(dtype=self.dtype)(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dtype=self.dtype, kernel_init=nn.initializers.xavier_uniform(),
        bias_init=nn.initializers.zeros, deterministic=True)(y, mask=mask)
    x = x + y
    return x + MLPBlock(self.mlp_dim, dtype=self.dtype)(_layer_norm(dtype=self.dtype)(x))


class Transformer(nn.Module):
  """`depth` blocks and a final LayerNorm; (B, L, D) -> (B, L, D)."""
  depth: int
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    for i in range(self.depth):
      x = Block(self.num_heads, self.mlp_dim, dtype=self.dtype, name=f"block_{i}")(x, valid)
    return _layer_norm(dtype=self.dtype, name="norm")(x)


def masked_mean(tokens: jax.Array, valid: jax.Array | None = None) -> jax.Array:
  """(B, L, D) -> (B, D): the mean over the valid tokens (all when `valid` is None)."""
  if valid is None:
    return tokens.mean(axis=1)
  weights = valid.astype(tokens.dtype)[..., None]  # (B, L, 1)
  return (tokens * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1.0)


class ViT(nn.Module):
  """Attributes:
    width, depth, num_heads: the transformer's size; the MLP is `mlp_ratio` x width.
    patch_size: side of the square patches; the image side must be a multiple of it.
    class_token: prepend a learned class token (MAE, the original ViT); I-JEPA has none.
    pool: the backbone's features: 'cls' (the class token's output) or 'mean' (mean of
      the patch tokens' outputs).
    dtype: compute dtype (bfloat16 for mixed precision); params stay float32.
    pixel_mean, pixel_std: per-channel statistics (one value: every channel) the pixels
      are standardised with before the patch embedding, as the reference codes do
      (I-JEPA's and MAE's with ImageNet's). The defaults leave the pixels as they are.
      It matters more for small patches: a 4 x 4 x 1 patch of [0, 1] pixels, through the
      Xavier-initialised embedding, gives content of about 6% of a token's energy beside
      the sin-cos position embedding (the review of the I-JEPA run in the README).

  Input (B, H, W, C) in [0, 1]; `__call__` returns (B, width) float features.
  """
  width: int = 192
  depth: int = 12
  num_heads: int = 3
  patch_size: int = 16
  mlp_ratio: int = 4
  class_token: bool = False
  pool: str = "mean"
  dtype: Any = jnp.float32
  pixel_mean: tuple[float, ...] = (0.0,)
  pixel_std: tuple[float, ...] = (1.0,)

  def setup(self):
    if self.pool not in ("mean", "cls"):
      raise ValueError(f"pool={self.pool!r}: 'mean' or 'cls'")
    if self.pool == "cls" and not self.class_token:
      raise ValueError("pool='cls' needs class_token=True")
    p = self.patch_size
    # A conv of stride p is a linear map of each flattened patch; Xavier on that map.
    self.patch_embed = nn.Conv(self.width, (p, p), strides=(p, p), padding="VALID",
                               dtype=self.dtype, name="patch_embed",
                               kernel_init=nn.initializers.variance_scaling(
                                   1.0, "fan_avg", "uniform", in_axis=(0, 1, 2), out_axis=3))
    if self.class_token:
      self.cls = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, self.width))
    self.encoder = Transformer(self.depth, self.num_heads, self.mlp_ratio * self.width,
                               dtype=self.dtype)

  def grid(self, image_shape: tuple[int, ...]) -> tuple[int, int]:
    """Tokens per column and per row of an (H, W, C) image."""
    height, width = image_shape[-3], image_shape[-2]
    if height % self.patch_size or width % self.patch_size:
      raise ValueError(f"{height} x {width} images do not split into {self.patch_size} px "
                       "patches; choose a patch size that divides the image side")
    return height // self.patch_size, width // self.patch_size

  def embed(self, images: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, N, width) patch tokens plus their position embeddings, N =
    (H / p)(W / p) in row-major order."""
    self.grid(images.shape)  # a patch size that does not divide the image is an error
    mean, std = jnp.asarray(self.pixel_mean), jnp.asarray(self.pixel_std)  # (C,) or (1,)
    x = self.patch_embed(((images - mean) / std).astype(self.dtype))  # (B, H/p, W/p, width)
    b, h, w, d = x.shape
    return x.reshape(b, h * w, d) + jnp.asarray(sincos_2d(d, h, w), self.dtype)

  def transform(self, tokens: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """The blocks and final norm over (B, L, width) tokens, with the class token (whose
    position embedding is zero) prepended when `class_token`; `valid` (B, L) masks
    padding tokens out of attention. Returns (B, [1 +] L, width)."""
    if self.class_token:
      cls = jnp.broadcast_to(self.cls.astype(tokens.dtype), (tokens.shape[0], 1, self.width))
      tokens = jnp.concatenate([cls, tokens], axis=1)
      if valid is not None:
        valid = jnp.concatenate([jnp.ones_like(valid[:, :1]), valid], axis=1)
    return self.encoder(tokens, valid)

  def pool_tokens(self, outputs: jax.Array) -> jax.Array:
    """(B, [1 +] L, width) outputs of `transform` -> (B, width) features."""
    if self.pool == "cls":
      return outputs[:, 0]
    return outputs[:, int(self.class_token):].mean(axis=1)

  def __call__(self, images: jax.Array, train: bool = True) -> jax.Array:
    """(B, H, W, C) -> (B, width) pooled features of all patches (the backbone interface;
    `train` is unused: no dropout, no BatchNorm)."""
    return self.pool_tokens(self.transform(self.embed(images)))


def vit_from_name(name: str, **kwargs: Any) -> ViT:
  """'small/16' -> ViT-S/16; further ViT attributes by keyword."""
  size, _, patch = name.partition("/")
  if size not in VIT_SIZES or not patch.isdigit():
    raise ValueError(f"ViT name {name!r}: '<size>/<patch>' with size one of "
                     f"{', '.join(VIT_SIZES)}")
  width, depth, heads = VIT_SIZES[size]
  return ViT(width=width, depth=depth, num_heads=heads, patch_size=int(patch), **kwargs)


@BACKBONES.register("vit", {"size": "micro", "patch_size": 4, "class_token": False,
                            "pool": "mean", "pixel_mean": (0.0,), "pixel_std": (1.0,)})
def _build(block, dtype) -> ViT:
  if block["size"] not in VIT_SIZES:
    raise ValueError(f"config.model.vit.size={block['size']!r}: unknown; known: "
                     f"{', '.join(VIT_SIZES)}")
  return vit_from_name(f"{block['size']}/{block['patch_size']}",
                       class_token=block["class_token"], pool=block["pool"], dtype=dtype,
                       pixel_mean=tuple(block.get("pixel_mean", (0.0,))),
                       pixel_std=tuple(block.get("pixel_std", (1.0,))))
