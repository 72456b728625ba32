"""Optimizers, learning-rate and weight-decay schedules, and parameter groups (optax).

Parameters are grouped by their path in the params tree ('encoder/block_0/Dense_0/bias'):

- weight decay (and LARS's trust ratio) applies to weight matrices and conv kernels, not
  to biases, norm scales, or the paths matched by `no_weight_decay` (class and mask
  tokens, position embeddings, learnable temperatures and logit biases), as SimCLR, BYOL,
  MAE and I-JEPA do;
- parameters matched by `frozen` get no update at all and no optimizer state
  (`optax.multi_transform` with `optax.set_to_zero`), e.g. a pretrained image tower.

Patterns are regular expressions searched in the '/'-joined path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from jejax.types import PyTree, path_name

OPTIMIZERS = ("lars", "adamw", "sgd")

# Paths that weight decay leaves alone beyond biases and norms (any parameter of at most
# one dimension): the class and mask tokens and position embeddings of a ViT, and the
# learnable temperature and bias of CLIP/SigLIP losses.
NO_WEIGHT_DECAY = (r"cls_token", r"mask_token", r"pos_embed", r"logit_scale", r"logit_bias")


def _matches(path: tuple, patterns: Sequence[str]) -> bool:
  name = path_name(path)
  return any(re.search(pattern, name) for pattern in patterns)


def decay_mask(params: PyTree, no_weight_decay: Sequence[str] = NO_WEIGHT_DECAY) -> PyTree:
  """True where weight decay applies: parameters of 2+ dimensions, not named 'bias',
  whose path matches none of `no_weight_decay`. The name test is needed too: Flax's
  attention keeps its query, key and value biases as (heads, head_dim) arrays, which
  the papers' codes (I-JEPA's, MAE's: no decay for any bias) exempt."""
  return jax.tree_util.tree_map_with_path(
      lambda path, p: (p.ndim > 1 and not path_name(path).endswith("bias")
                       and not _matches(path, no_weight_decay)), params)


def frozen_labels(params: PyTree, frozen: Sequence[str]) -> PyTree:
  """'frozen' or 'trainable' per parameter, by whether its path matches `frozen`."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: "frozen" if _matches(path, frozen) else "trainable", params)


def warmup_cosine(peak_lr: float, total_steps: int, warmup_steps: int,
                  end_value: float = 0.0, start_fraction: float = 0.0) -> optax.Schedule:
  """Linear warmup from `start_fraction` x `peak_lr` to `peak_lr`, then cosine decay to
  `end_value` at `total_steps`."""
  return optax.warmup_cosine_decay_schedule(
      start_fraction * peak_lr, peak_lr, warmup_steps=min(warmup_steps, max(total_steps - 1, 0)),
      decay_steps=max(total_steps, 1), end_value=end_value)


def cosine_ramp(start: float, end: float, total_steps: int) -> optax.Schedule:
  """From `start` at step 0 to `end` at `total_steps` along a half cosine, then `end`
  (I-JEPA's and DINO's weight-decay schedule, 0.04 -> 0.4)."""
  def schedule(step):
    progress = jnp.minimum(step / max(total_steps, 1), 1.0)
    return end + (start - end) * (1.0 + jnp.cos(jnp.pi * progress)) / 2.0
  return schedule


def make_optimizer(name: str, schedule: optax.Schedule, *,
                   weight_decay: float | optax.Schedule, momentum: float = 0.9,
                   b2: float = 0.999, no_weight_decay: Sequence[str] = NO_WEIGHT_DECAY,
                   frozen: Sequence[str] = ()) -> optax.GradientTransformation:
  """LARS (You et al. 2017) for large batches, AdamW, or SGD with momentum, with the
  parameter groups above. `momentum` is LARS's and SGD's, `b2` Adam's second-moment decay
  (MAE uses 0.95)."""
  mask = lambda params: decay_mask(params, no_weight_decay)  # noqa: E731
  if name == "lars":
    tx = optax.lars(schedule, weight_decay=weight_decay, weight_decay_mask=mask,
                    trust_ratio_mask=mask, momentum=momentum)
  elif name == "adamw":
    tx = optax.adamw(schedule, b2=b2, weight_decay=weight_decay, mask=mask)
  elif name == "sgd":
    tx = optax.chain(optax.add_decayed_weights(weight_decay, mask=mask),
                     optax.sgd(schedule, momentum=momentum))
  else:
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
  if not frozen:
    return tx
  return optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()},
                               lambda params: frozen_labels(params, frozen))
