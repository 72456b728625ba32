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


def all_finite(tree) -> jax.Array:
  """A scalar bool: whether every floating-point leaf of `tree` is free of NaN and inf
  (integer and bool leaves are finite by construction).

  >>> all_finite({'w': jnp.array([1.0, jnp.nan]), 'step': jnp.array(3)})  # False
  """
  checks = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
  return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)
