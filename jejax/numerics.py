"""Array helpers that every layer uses (losses, models, methods, evaluation); they depend
on jax alone, so nothing below them exists to import back."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def l2_normalize(x: ArrayLike, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / ||x|| along `axis`, safe at zero (the norm is floored at sqrt(eps)).

  >>> l2_normalize(jnp.array([3.0, 4.0]))  # [0.6, 0.8]
  """
  x = jnp.asarray(x)
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps))
