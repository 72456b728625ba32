"""Projector and predictor MLPs and SwAV prototypes."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
  """Linear-BN-ReLU hidden layers and a linear output.

  SimCLR's projector is MLP(hidden_dims=(2048,), out_dim=128); BYOL's projector and
  predictor are MLP(hidden_dims=(4096,), out_dim=256). `output_bn` adds a final
  BatchNorm without affine, as in SimCLR v2 and MoCo v3 projectors. `dtype` is the
  compute dtype (input cast to it, output in it); params stay float32.

  Input (B, F); output (B, out_dim).
  """
  hidden_dims: tuple[int, ...]
  out_dim: int
  output_bn: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    for width in self.hidden_dims:
      x = nn.Dense(width, use_bias=False, dtype=self.dtype)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
      x = nn.relu(x)
    x = nn.Dense(self.out_dim, use_bias=not self.output_bn, dtype=self.dtype)(x)
    if self.output_bn:
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       use_scale=False, use_bias=False, dtype=self.dtype)(x)
    return x


class Prototypes(nn.Module):
  """SwAV prototypes: a bias-free linear layer whose rows are kept on the unit sphere.

  Input (B, D) L2-normalised embeddings; output (B, K) scores against the K prototypes,
  cosines while the rows have unit norm. As in SwAV (Caron et al. 2020), the rows are put
  on the sphere at initialisation and after every optimizer update by the method
  (`jejax.methods.swav`), not in the forward pass, so gradients see a plain matmul.
  """
  num_prototypes: int

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    prototypes = self.param("prototypes", _unit_rows_init, (self.num_prototypes, z.shape[-1]))
    return z @ prototypes.T  # (B, D) @ (D, K) -> (B, K)


def _unit_rows_init(key: jax.Array, shape: tuple[int, int], dtype=jnp.float32) -> jax.Array:
  w = jax.random.normal(key, shape, dtype)
  return w / jnp.linalg.norm(w, axis=-1, keepdims=True)
