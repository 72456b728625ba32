"""From a validated config to the model, method, optimizer and view recipes."""

from __future__ import annotations

import dataclasses

import ml_collections
import optax

from jejax import augment, methods, models
from jejax.config import AUGMENT_FIELDS
from jejax.train import optim


def build_model(c: ml_collections.ConfigDict) -> models.SSLModel:
  m = c.model
  if m.backbone == "convnet":
    backbone = models.ConvNet(widths=tuple(m.widths), convs_per_stage=m.convs_per_stage)
  elif m.backbone == "resnet18":
    backbone = models.ResNet18(small_images=m.small_images)
  else:
    backbone = models.ResNet50(small_images=m.small_images)
  projector = models.MLP(tuple(m.projector_hidden), m.embed_dim)
  predictor = (models.MLP(tuple(m.predictor_hidden), m.embed_dim)
               if m.predictor_hidden else None)
  return models.SSLModel(backbone, projector, predictor, m.num_prototypes)


def build_method(c: ml_collections.ConfigDict, total_steps: int,
                 steps_per_epoch: int) -> methods.Method:
  if c.method == "simclr":
    return methods.SimCLR(temperature=c.simclr.temperature)
  if c.method == "byol":
    return methods.BYOL(total_steps=total_steps, base_momentum=c.byol.base_momentum)
  return methods.SwAV(
      temperature=c.swav.temperature, epsilon=c.swav.epsilon,
      sinkhorn_iters=c.swav.sinkhorn_iters,
      freeze_prototypes_steps=round(c.swav.freeze_prototypes_epochs * steps_per_epoch))


def build_optimizer(c: ml_collections.ConfigDict, total_steps: int,
                    steps_per_epoch: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  o = c.optim
  peak_lr = o.learning_rate * c.batch_size / o.base_batch_size
  schedule = optim.warmup_cosine(peak_lr, total_steps, round(o.warmup_epochs * steps_per_epoch))
  tx = optim.make_optimizer(o.name, schedule, weight_decay=o.weight_decay, momentum=o.momentum)
  return tx, schedule


def build_views(c: ml_collections.ConfigDict, image_size: int) -> tuple[augment.ViewConfig, ...]:
  """The recipe's views at `image_size`, with the config's non-None overrides applied."""
  recipe = {"simclr": augment.simclr_views, "byol": augment.byol_views}[c.augment.recipe]
  overrides = {field: tuple(v) if isinstance(v, (list, tuple)) else v
               for field in AUGMENT_FIELDS if (v := c.augment[field]) is not None}
  return tuple(dataclasses.replace(v, **overrides) for v in recipe(image_size))
