"""From a validated config to the method (with its model) and the optimizer."""

from __future__ import annotations

import ml_collections
import optax

from jejax.methods import METHODS, Method, Setup
from jejax.train import optim


def build_method(c: ml_collections.ConfigDict, setup: Setup) -> Method:
  """The registered method `c.method` with its model and hyperparameters."""
  return METHODS.get(c.method).value.from_config(c, setup)


def build_optimizer(c: ml_collections.ConfigDict, total_steps: int,
                    steps_per_epoch: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optimizer with its parameter groups and its warmup + cosine learning-rate
  schedule (linear scaling rule); weight decay follows a cosine from `weight_decay` to
  `weight_decay_end` when that is set."""
  o = c.optim
  peak_lr = o.learning_rate * c.batch_size / o.base_batch_size
  schedule = optim.warmup_cosine(peak_lr, total_steps, round(o.warmup_epochs * steps_per_epoch),
                                 start_fraction=o.warmup_start_fraction)
  weight_decay = (o.weight_decay if o.weight_decay_end is None else
                  optim.cosine_ramp(o.weight_decay, o.weight_decay_end, total_steps))
  tx = optim.make_optimizer(o.name, schedule, weight_decay=weight_decay, momentum=o.momentum,
                            b2=o.b2, no_weight_decay=tuple(o.no_weight_decay),
                            frozen=tuple(o.frozen))
  return tx, schedule
