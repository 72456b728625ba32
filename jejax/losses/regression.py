"""Regression losses between an online prediction and a target embedding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jejax.numerics import l2_normalize


def normalized_mse(prediction: ArrayLike, target: ArrayLike) -> jax.Array:
  """BYOL's loss (Grill et al. 2020, eq. 2): ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z).

  The target gets a stop-gradient here, as in BYOL, whose target is an EMA network.

  Args:
    prediction: (N, D) online predictions q(z).
    target: (N, D) target projections of the other view.

  Returns:
    Scalar: the mean over the N pairs, in [0, 4].
  """
  p = l2_normalize(jnp.asarray(prediction))
  z = l2_normalize(jax.lax.stop_gradient(jnp.asarray(target)))
  return jnp.mean(2.0 - 2.0 * jnp.sum(p * z, axis=-1))


def negative_cosine(prediction: ArrayLike, target: ArrayLike) -> jax.Array:
  """SimSiam's D(p, z) = -cos(p, stopgrad(z)) (Chen & He 2021, eq. 1 and 3).

  Args:
    prediction: (N, D) predictor outputs p.
    target: (N, D) projections z of the other view; gets the stop-gradient that keeps
      SimSiam from collapsing.

  Returns:
    Scalar: the mean over the N pairs, in [-1, 1].
  """
  p = l2_normalize(jnp.asarray(prediction))
  z = l2_normalize(jax.lax.stop_gradient(jnp.asarray(target)))
  return -jnp.mean(jnp.sum(p * z, axis=-1))
