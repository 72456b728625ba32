"""I-JEPA's loss (Assran et al. 2023): predictions of the target encoder's representations
of masked blocks, regressed in representation space."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

REGRESSIONS = ("smooth_l1", "l2")


def smooth_l1(x: ArrayLike, beta: float = 1.0) -> jax.Array:
  """Huber-like elementwise loss: x^2 / (2 beta) where |x| < beta, else |x| - beta / 2
  (PyTorch's `smooth_l1_loss`, which I-JEPA's code uses with beta = 1)."""
  x = jnp.abs(jnp.asarray(x))
  return jnp.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)


def ijepa_loss(predictions: ArrayLike, targets: ArrayLike, valid: ArrayLike | None = None,
               *, regression: str = "smooth_l1") -> jax.Array:
  """The mean regression loss of predicted vs target token representations.

  The paper writes the loss as the average L2 distance over the M target blocks (eq. 1,
  sum over blocks and tokens of ||s_hat_y - s_y||_2^2 / M); the authors' code uses
  `F.smooth_l1_loss(z, h)`, the mean over every token and channel of the smooth L1
  (beta = 1) of the difference, with h the target encoder's outputs after a parameter-free
  LayerNorm. `regression='smooth_l1'` (the default) is the code's; 'l2' the squared
  error, averaged alike. The targets get no gradient (`stop_gradient`).

  Args:
    predictions: (..., T, D) the predictor's outputs for T target tokens.
    targets: (..., T, D) the target encoder's (layer-normed) representations.
    valid: (..., T) bool, False for padding slots, which do not count; None: all count.

  Returns:
    Scalar: the mean over valid tokens and channels.

  >>> ijepa_loss(jnp.ones((2, 3, 4)), jnp.zeros((2, 3, 4)))  # smooth L1 of 1: 0.5
  """
  if regression not in REGRESSIONS:
    raise ValueError(f"regression={regression!r}: unknown; known: {REGRESSIONS}")
  diff = jnp.asarray(predictions) - jax.lax.stop_gradient(jnp.asarray(targets))
  per_element = smooth_l1(diff) if regression == "smooth_l1" else diff * diff
  per_token = per_element.mean(axis=-1)  # (..., T)
  if valid is None:
    return per_token.mean()
  weights = jnp.asarray(valid, per_token.dtype)
  return (per_token * weights).sum() / jnp.maximum(weights.sum(), 1.0)
