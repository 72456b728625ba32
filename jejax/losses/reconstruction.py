"""MAE's reconstruction loss (He et al. 2022): pixels of the masked patches, regressed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def patchify(images: ArrayLike, patch_size: int) -> jax.Array:
  """(B, H, W, C) -> (B, N, p * p * C) patches in row-major order, each flattened as
  (row in patch, column in patch, channel), the order of MAE's `patchify`."""
  images = jnp.asarray(images)
  b, h, w, c = images.shape
  p = patch_size
  if h % p or w % p:
    raise ValueError(f"{h} x {w} images do not split into {p} px patches")
  x = images.reshape(b, h // p, p, w // p, p, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // p) * (w // p), p * p * c)


def normalize_patches(patches: ArrayLike, eps: float = 1e-6) -> jax.Array:
  """Each patch minus its mean, over sqrt(its variance + eps): MAE's normalised-pixel
  target. The variance is unbiased (N - 1), as `torch.var`'s default in MAE's code."""
  patches = jnp.asarray(patches)
  mean = patches.mean(axis=-1, keepdims=True)
  var = patches.var(axis=-1, keepdims=True, ddof=1)
  return (patches - mean) / jnp.sqrt(var + eps)


def mae_loss(predictions: ArrayLike, patches: ArrayLike, mask: ArrayLike, *,
             norm_pix: bool = True) -> jax.Array:
  """Mean squared error on the removed patches only (MAE, sec. 3 "Reconstruction target";
  `forward_loss` of the reference).

  Args:
    predictions: (B, N, P) the decoder's pixel predictions for every patch.
    patches: (B, N, P) the image's patches (`patchify`), in [0, 1] or any scale.
    mask: (B, N) 1 for a removed patch, 0 for a visible one.
    norm_pix: regress each patch normalised by its own mean and std (the paper's default,
      Table 1d), else the raw pixels.

  Returns:
    Scalar: sum over removed patches of the per-patch mean squared error / their number.

  >>> mae_loss(jnp.zeros((1, 2, 4)), jnp.ones((1, 2, 4)), jnp.array([[1., 0.]]),
  ...          norm_pix=False)  # 1.0
  """
  target = jnp.asarray(patches, jnp.float32)
  if norm_pix:
    target = normalize_patches(target)
  per_patch = ((jnp.asarray(predictions) - target) ** 2).mean(axis=-1)  # (B, N)
  mask = jnp.asarray(mask, per_patch.dtype)
  return (per_patch * mask).sum() / jnp.maximum(mask.sum(), 1.0)
