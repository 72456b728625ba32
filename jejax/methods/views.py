"""The default method shape: N augmented views of the image batch through one network.

`ViewMethod` makes the views on the device (`jejax.augment`), runs the backbone ->
projector -> (predictor, prototypes) model (`jejax.models.SSLModel`) once per resolution,
and the target network, when there is one, on the first `num_target_views` views. SimCLR,
MoCo, BYOL, SimSiam, SwAV, DINO, VICReg and Barlow Twins only add their loss and state.
Their shared config: `config.model` (backbone and heads) and `config.augment` (views).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections

from jejax import augment
from jejax.checks import require, require_interval
from jejax.methods.base import Method, Setup, config_block
from jejax.models import BACKBONES, MLP, SSLModel
from jejax.models.base import compute_dtype
from jejax.types import PyTree

RECIPES = {"simclr": augment.simclr_views, "byol": augment.byol_views}

# ViewConfig fields a config may override (all but the output size), with their types.
AUGMENT_FIELDS = {f.name: tuple if isinstance(f.default, tuple) else float
                  for f in dataclasses.fields(augment.ViewConfig) if f.name != "out_size"}


def backbone_from_config(c: ml_collections.ConfigDict):
  """The registered backbone `config.model.backbone` with its block, in `model.dtype`."""
  name = c.model.backbone
  entry = BACKBONES.get(name)
  block = c.model[name].to_dict() if name in c.model else dict(entry.defaults)
  return entry.value(block, compute_dtype(c.model.dtype))


def ssl_model(c: ml_collections.ConfigDict) -> SSLModel:
  """Backbone, projector, and the predictor or prototypes the config asks for, computing
  in `model.dtype` (params, BatchNorm statistics and the outputs stay float32)."""
  m = c.model
  dtype = compute_dtype(m.dtype)
  projector = MLP(tuple(m.projector_hidden), m.embed_dim, output_bn=m.projector_output_bn,
                  dtype=dtype)
  predictor = (MLP(tuple(m.predictor_hidden), m.embed_dim, dtype=dtype)
               if m.predictor_hidden else None)
  return SSLModel(backbone_from_config(c), projector, predictor, m.num_prototypes)


def view_recipes(c: ml_collections.ConfigDict, image_size: int) -> tuple[augment.ViewConfig, ...]:
  """The recipe's views at `image_size`, with the config's non-None overrides applied,
  then the multi-crop small views if `augment.num_small_crops` > 0."""
  a = c.augment
  require(a.recipe in RECIPES, "augment.recipe", a.recipe,
          f"unknown view recipe; known: {sorted(RECIPES)}")
  overrides = {field: tuple(v) if isinstance(v, (list, tuple)) else v
               for field in AUGMENT_FIELDS if (v := a[field]) is not None}
  views = tuple(dataclasses.replace(v, **overrides) for v in RECIPES[a.recipe](image_size))
  if not a.num_small_crops:
    return views
  require(a.small_crop_size <= image_size, "augment.small_crop_size", a.small_crop_size,
          f"is larger than the {image_size} px images")
  return augment.multi_crop_views(views, num_small=a.num_small_crops,
                                  small_size=a.small_crop_size,
                                  small_crop_scale=tuple(a.small_crop_scale))


def forward_views(model: SSLModel, params: PyTree, batch_stats: PyTree,
                  views: tuple[jax.Array, ...]) -> tuple[list[dict[str, jax.Array]], PyTree]:
  """Runs the model in training mode on the views, one call per resolution.

  Consecutive views of one shape are stacked along the batch and go through one call, so
  BatchNorm statistics are taken over all of them, as SimCLR's reference code does; a
  multi-crop layout (2 large, then N small crops) makes two calls, as SwAV's code does,
  each updating the running statistics. Returns per-view outputs and the new stats.
  """
  per_view = []
  for group in _runs_of_equal_shape(views):
    x = jnp.concatenate(group, axis=0)  # G x (B, H, W, C) -> (G*B, H, W, C)
    out, mutated = model.apply({"params": params, "batch_stats": batch_stats}, x,
                               train=True, mutable=["batch_stats"])
    batch_stats = mutated["batch_stats"]
    b = group[0].shape[0]
    per_view += [jax.tree.map(lambda a, i=i, b=b: a[i * b:(i + 1) * b], out)
                 for i in range(len(group))]
  return per_view, batch_stats


def _runs_of_equal_shape(views: tuple[jax.Array, ...]) -> list[list[jax.Array]]:
  """[[v1, v2], [v3, v4, v5]] for views whose shapes are (a, a, b, b, b)."""
  groups = []
  for view in views:
    if groups and groups[-1][0].shape == view.shape:
      groups[-1].append(view)
    else:
      groups.append([view])
  return groups


@dataclasses.dataclass(frozen=True, kw_only=True)
class ViewMethod(Method):
  """A method on augmented views. Attributes:
    model: an `SSLModel`; outputs are one dict per view ('features', 'embedding', and
      'prediction' or 'scores' when the model has those heads).
    views: one `ViewConfig` per view (static).
  Class attributes: `num_target_views` (the target sees the first that many views; all
  when None), `needs_predictor`, `needs_prototypes`, `supports_multi_crop`.
  """
  model: SSLModel
  views: tuple[augment.ViewConfig, ...]
  num_target_views: ClassVar[int | None] = None
  needs_predictor: ClassVar[bool] = False
  needs_prototypes: ClassVar[bool] = False
  supports_multi_crop: ClassVar[bool] = False

  @classmethod
  def validate(cls, c: ml_collections.ConfigDict) -> None:
    super().validate(c)
    m, a = c.model, c.augment
    require(m.embed_dim > 0, "model.embed_dim", m.embed_dim, "must be positive")
    require(a.recipe in RECIPES, "augment.recipe", a.recipe,
            f"unknown view recipe; known: {sorted(RECIPES)}")
    require(a.num_small_crops >= 0, "augment.num_small_crops", a.num_small_crops,
            "must be >= 0")
    if a.num_small_crops:
      require(cls.supports_multi_crop, "augment.num_small_crops", a.num_small_crops,
              f"multi-crop is for swav and dino, not {cls.name}")
      require(a.small_crop_size > 0, "augment.small_crop_size", a.small_crop_size,
              "must be positive")
      require_interval(a, "augment", "small_crop_scale")
    if cls.needs_predictor:
      require(len(m.predictor_hidden) > 0, "model.predictor_hidden", m.predictor_hidden,
              f"{cls.name} needs a predictor")
    if cls.needs_prototypes:
      require(m.num_prototypes > 0, "model.num_prototypes", m.num_prototypes,
              f"{cls.name} needs prototypes")

  @classmethod
  def from_config(cls, c: ml_collections.ConfigDict, setup: Setup) -> "ViewMethod":
    image_size = setup.example_batch["image"].shape[1]
    return cls(model=ssl_model(c), views=view_recipes(c, image_size),
               **cls.hyperparameters(config_block(c, cls.name), c, setup))

  @classmethod
  def hyperparameters(cls, block: dict[str, Any], c: ml_collections.ConfigDict,
                      setup: Setup) -> dict[str, Any]:
    """The dataclass fields beyond model and views; by default the config block as is."""
    return block

  def init_args(self, batch):
    # Two images of one view's shape: BatchNorm needs more than one example.
    return {"x": jnp.zeros((2, *batch["image"].shape[1:]), jnp.float32), "train": True}

  def prepare(self, rng, batch):
    return augment.make_views(rng, batch["image"], self.views)

  def forward(self, params, batch_stats, inputs):
    return forward_views(self.model, params, batch_stats, inputs)

  def target(self, target_params, target_batch_stats, inputs):
    if not self.needs_target:
      return None, target_batch_stats
    return forward_views(self.model, target_params, target_batch_stats,
                         inputs[:self.num_target_views])

  def embedding(self, outputs):
    return outputs[0]["embedding"]

  def features(self, variables, images):
    return self.model.apply(variables, images, method="encode")
