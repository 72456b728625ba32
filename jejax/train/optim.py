"""Optimizers and learning-rate schedules (optax)."""

from __future__ import annotations

import jax
import optax

from jejax.types import PyTree

OPTIMIZERS = ("lars", "adamw", "sgd")


def decay_mask(params: PyTree) -> PyTree:
  """True for weight matrices and conv kernels; biases and BatchNorm scales are excluded
  from weight decay and LARS adaptation, as in SimCLR and BYOL."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def warmup_cosine(peak_lr: float, total_steps: int, warmup_steps: int) -> optax.Schedule:
  """Linear warmup from 0 to `peak_lr`, then cosine decay to 0 at `total_steps`."""
  return optax.warmup_cosine_decay_schedule(
      0.0, peak_lr, warmup_steps=min(warmup_steps, max(total_steps - 1, 0)),
      decay_steps=max(total_steps, 1), end_value=0.0)


def make_optimizer(name: str, schedule: optax.Schedule, *, weight_decay: float,
                   momentum: float = 0.9) -> optax.GradientTransformation:
  """LARS (You et al. 2017) for large batches, AdamW, or SGD with momentum."""
  if name == "lars":
    return optax.lars(schedule, weight_decay=weight_decay, weight_decay_mask=decay_mask,
                      trust_ratio_mask=decay_mask, momentum=momentum)
  if name == "adamw":
    return optax.adamw(schedule, weight_decay=weight_decay, mask=decay_mask)
  if name == "sgd":
    return optax.chain(optax.add_decayed_weights(weight_decay, mask=decay_mask),
                       optax.sgd(schedule, momentum=momentum))
  raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
