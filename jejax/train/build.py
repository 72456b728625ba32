"""From a validated config to the model, method, optimizer and view recipes."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import ml_collections
import optax

from jejax import augment, methods, models, parallel
from jejax.config import AUGMENT_FIELDS
from jejax.train import optim

BACKBONES = {
    "convnet": lambda m: models.ConvNet(widths=tuple(m.widths),
                                        convs_per_stage=m.convs_per_stage),
    "resnet18": lambda m: models.ResNet18(small_images=m.small_images),
    "resnet50": lambda m: models.ResNet50(small_images=m.small_images),
}

METHODS = {
    "simclr": lambda c, total_steps, steps_per_epoch: methods.SimCLR(
        temperature=c.simclr.temperature, loss_impl=c.simclr.loss_impl,
        chunk_size=c.simclr.chunk_size or None,
        # The ring's shard_map needs the mesh the step is jitted over; the loop makes it
        # from the same setting (an equal mesh is the same mesh to jit and shard_map).
        mesh=(parallel.make_mesh(c.num_devices or None) if c.simclr.loss_impl == "ring"
              else None)),
    "byol": lambda c, total_steps, steps_per_epoch: methods.BYOL(
        total_steps=total_steps, base_momentum=c.byol.base_momentum),
    "swav": lambda c, total_steps, steps_per_epoch: methods.SwAV(
        temperature=c.swav.temperature, epsilon=c.swav.epsilon,
        sinkhorn_iters=c.swav.sinkhorn_iters,
        freeze_prototypes_steps=round(c.swav.freeze_prototypes_epochs * steps_per_epoch)),
    "simsiam": lambda c, total_steps, steps_per_epoch: methods.SimSiam(),
    "vicreg": lambda c, total_steps, steps_per_epoch: methods.VICReg(
        sim_weight=c.vicreg.sim_weight, var_weight=c.vicreg.var_weight,
        cov_weight=c.vicreg.cov_weight),
    "barlow_twins": lambda c, total_steps, steps_per_epoch: methods.BarlowTwins(
        off_diagonal_weight=c.barlow_twins.off_diagonal_weight),
    "moco_v2": lambda c, total_steps, steps_per_epoch: methods.MoCoV2(
        embed_dim=c.model.embed_dim, queue_size=c.moco_v2.queue_size,
        temperature=c.moco_v2.temperature, momentum=c.moco_v2.momentum),
    "moco_v3": lambda c, total_steps, steps_per_epoch: methods.MoCoV3(
        total_steps=total_steps, temperature=c.moco_v3.temperature,
        base_momentum=c.moco_v3.base_momentum),
    "dino": lambda c, total_steps, steps_per_epoch: methods.DINO(
        total_steps=total_steps, student_temperature=c.dino.student_temperature,
        teacher_temperature=c.dino.teacher_temperature,
        warmup_teacher_temperature=c.dino.warmup_teacher_temperature,
        warmup_teacher_temperature_steps=round(
            c.dino.warmup_teacher_temperature_epochs * steps_per_epoch),
        center_momentum=c.dino.center_momentum, base_momentum=c.dino.base_momentum,
        freeze_last_layer_steps=round(c.dino.freeze_last_layer_epochs * steps_per_epoch)),
}

RECIPES = {"simclr": augment.simclr_views, "byol": augment.byol_views}


def _lookup(registry: dict, name: str, field: str):
  if name not in registry:
    raise ValueError(f"config.{field}={name!r}: unknown; known: {sorted(registry)}")
  return registry[name]


# Compute dtypes of `model.dtype`. float16 is left out: its 5-bit exponent needs loss
# scaling, which bfloat16 (float32's exponent range) does not.
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_model(c: ml_collections.ConfigDict) -> models.SSLModel:
  """Backbone, projector, and the predictor or prototypes the method needs, computing in
  `model.dtype` (params, BatchNorm statistics and the outputs stay float32)."""
  m = c.model
  dtype = _lookup(DTYPES, m.dtype, "model.dtype")
  backbone = _lookup(BACKBONES, m.backbone, "model.backbone")(m).clone(dtype=dtype)
  projector = models.MLP(tuple(m.projector_hidden), m.embed_dim,
                         output_bn=m.projector_output_bn, dtype=dtype)
  predictor = (models.MLP(tuple(m.predictor_hidden), m.embed_dim, dtype=dtype)
               if m.predictor_hidden else None)
  return models.SSLModel(backbone, projector, predictor, m.num_prototypes)


def build_method(c: ml_collections.ConfigDict, total_steps: int,
                 steps_per_epoch: int) -> methods.Method:
  """The method of `c.method` with its hyperparameters; schedules span `total_steps`."""
  return _lookup(METHODS, c.method, "method")(c, total_steps, steps_per_epoch)


def build_optimizer(c: ml_collections.ConfigDict, total_steps: int,
                    steps_per_epoch: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optimizer and its warmup + cosine learning-rate schedule (linear scaling rule)."""
  o = c.optim
  peak_lr = o.learning_rate * c.batch_size / o.base_batch_size
  schedule = optim.warmup_cosine(peak_lr, total_steps, round(o.warmup_epochs * steps_per_epoch))
  tx = optim.make_optimizer(o.name, schedule, weight_decay=o.weight_decay, momentum=o.momentum)
  return tx, schedule


def build_views(c: ml_collections.ConfigDict, image_size: int) -> tuple[augment.ViewConfig, ...]:
  """The recipe's views at `image_size`, with the config's non-None overrides applied,
  then the multi-crop small views if `augment.num_small_crops` > 0."""
  a = c.augment
  recipe = _lookup(RECIPES, a.recipe, "augment.recipe")
  overrides = {field: tuple(v) if isinstance(v, (list, tuple)) else v
               for field in AUGMENT_FIELDS if (v := a[field]) is not None}
  views = tuple(dataclasses.replace(v, **overrides) for v in recipe(image_size))
  if not a.num_small_crops:
    return views
  if a.small_crop_size > image_size:
    raise ValueError(f"config.augment.small_crop_size={a.small_crop_size} is larger than "
                     f"the {image_size} px images")
  return augment.multi_crop_views(views, num_small=a.num_small_crops,
                                  small_size=a.small_crop_size,
                                  small_crop_scale=tuple(a.small_crop_scale))
