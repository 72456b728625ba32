"""I-JEPA (Assran et al. 2023, "Self-Supervised Learning from Images with a Joint-Embedding
Predictive Architecture"; facebookresearch/ijepa): from a context block of an image, a
predictor predicts the target encoder's representations of several target blocks.

The step: one random resized crop of each image (the paper's only augmentation), its
multi-block masks (`jejax.augment.masks.ijepa_mask`, drawn on the device per image), the
context encoder on the context tokens and the predictor on their outputs plus mask
tokens at the target positions; the target encoder (an EMA of the context encoder,
momentum linear from 0.996 to 1) on the whole image, layer-normed, at the target tokens;
the smooth L1 loss of the authors' code between the two (`losses.ijepa_loss`). The paper's
optimizer is AdamW with weight decay rising 0.04 -> 0.4 along a cosine
(`optim.weight_decay_end`), set in `experiments/configs/ijepa.py`. Evaluation reads the
target encoder (`eval.encoder='target'`), average-pooled.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jejax import augment, losses
from jejax.augment import masks
from jejax.checks import require, require_interval, require_momentum
from jejax.methods.base import (Method, config_block, copy_of, ema, linear_ema_momentum,
                                register_method)
from jejax.methods.views import backbone_from_config
from jejax.models import VIT_SIZES, ViT
from jejax.models.base import compute_dtype
from jejax.models.jepa import IJEPAModel, Predictor


@register_method("ijepa", {
    "num_targets": 4, "target_scale": (0.15, 0.2), "target_aspect": (0.75, 1.5),
    "context_scale": (0.85, 1.0), "context_fraction": 0.27, "crop_scale": (0.3, 1.0),
    "predictor_width": 384, "predictor_depth": 12, "base_momentum": 0.996,
    "regression": "smooth_l1"})
@dataclasses.dataclass(frozen=True, kw_only=True)
class IJEPA(Method):
  """Attributes:
    model: the context encoder and predictor (`IJEPAModel`).
    view: the random resized crop applied to every image (crop scale 0.3-1 in the paper).
    grid: tokens per column and per row of a view.
    total_steps: the target momentum reaches 1 there.
    num_targets, target_scale, target_aspect: 4 blocks of 15-20% of the image, aspect
      ratio 0.75-1.5 (the paper's).
    context_scale: the context block covers 85-100% of the image before the targets are
      removed (the paper's).
    context_tokens: the fixed number of context tokens (see `jejax.augment.masks`).
    base_momentum: the target momentum at step 0, 0.996.
    regression: 'smooth_l1' (the authors' code) or 'l2' (the paper's equation).
  """
  model: IJEPAModel
  view: augment.ViewConfig
  grid: tuple[int, int]
  total_steps: int
  num_targets: int = 4
  target_scale: tuple[float, float] = (0.15, 0.2)
  target_aspect: tuple[float, float] = (0.75, 1.5)
  context_scale: tuple[float, float] = (0.85, 1.0)
  context_tokens: int
  base_momentum: float = 0.996
  regression: str = "smooth_l1"

  needs_target = True

  @classmethod
  def validate(cls, c):
    super().validate(c)
    require(c.model.backbone == "vit", "model.backbone", c.model.backbone,
            "ijepa's encoder is a ViT ('vit')")
    require(not c.model.vit.class_token, "model.vit.class_token", c.model.vit.class_token,
            "I-JEPA's encoder has no class token")
    b = c.ijepa
    require(b.num_targets >= 1, "ijepa.num_targets", b.num_targets, "must be >= 1")
    for name in ("target_scale", "context_scale", "crop_scale"):
      require_interval(b, "ijepa", name)
    require_interval(b, "ijepa", "target_aspect", high=float("inf"))
    require(0 < b.context_fraction <= 1, "ijepa.context_fraction", b.context_fraction,
            "must lie in (0, 1]")
    require(b.regression in losses.predictive.REGRESSIONS, "ijepa.regression", b.regression,
            f"known: {losses.predictive.REGRESSIONS}")
    require_momentum(b, "ijepa", "base_momentum")
    require(c.model.vit.size in VIT_SIZES, "model.vit.size", c.model.vit.size,
            f"unknown; known: {', '.join(VIT_SIZES)}")
    heads = VIT_SIZES[c.model.vit.size][2]  # the predictor has the encoder's heads
    require(b.predictor_width % 4 == 0 and b.predictor_width % heads == 0,
            "ijepa.predictor_width", b.predictor_width,
            f"must be divisible by 4 (sin-cos positions) and by the encoder's {heads} heads")
    require(b.predictor_depth >= 1, "ijepa.predictor_depth", b.predictor_depth,
            "must be >= 1")

  @classmethod
  def from_config(cls, c, setup):
    b = config_block(c, "ijepa")
    encoder = backbone_from_config(c)
    if not isinstance(encoder, ViT):
      raise ValueError(f"config.model.backbone={c.model.backbone!r}: ijepa needs a ViT")
    image_shape = setup.example_batch["image"].shape[1:]
    grid = (image_shape[0] // encoder.patch_size, image_shape[1] // encoder.patch_size)
    predictor = Predictor(b["predictor_width"], b["predictor_depth"], encoder.num_heads,
                          encoder.width, dtype=compute_dtype(c.model.dtype))
    return cls(model=IJEPAModel(encoder, predictor),
               view=augment.ViewConfig(out_size=image_shape[0],
                                       crop_scale=tuple(b["crop_scale"])),
               grid=grid, total_steps=setup.total_steps, num_targets=b["num_targets"],
               target_scale=tuple(b["target_scale"]), target_aspect=tuple(b["target_aspect"]),
               context_scale=tuple(b["context_scale"]),
               context_tokens=max(1, round(b["context_fraction"] * grid[0] * grid[1])),
               base_momentum=b["base_momentum"], regression=b["regression"])

  def init_args(self, batch):
    inputs = self.prepare(jax.random.key(0), batch)
    return self._model_args(inputs)

  def init_target(self, params, batch_stats, rng):
    return {"encoder": copy_of(params["encoder"])}, {}, {}

  def prepare(self, rng, batch):
    images = batch["image"]
    view = augment.augment_batch(jax.random.fold_in(rng, 0), images, self.view)
    block_masks = masks.per_image(
        masks.ijepa_mask, jax.random.fold_in(rng, 1), images.shape[0], self.grid,
        num_targets=self.num_targets, target_scale=self.target_scale,
        target_aspect=self.target_aspect, context_scale=self.context_scale,
        context_tokens=self.context_tokens)
    return {"image": view, **block_masks}

  @staticmethod
  def _model_args(inputs):
    return {name: inputs[name] for name in ("image", "context", "context_valid", "targets",
                                            "targets_valid")}

  def forward(self, params, batch_stats, inputs):
    return self.model.apply({"params": params}, **self._model_args(inputs)), batch_stats

  def target(self, target_params, target_batch_stats, inputs):
    target = self.model.apply({"params": target_params}, inputs["image"], inputs["targets"],
                              method="target")
    return target, target_batch_stats

  def loss(self, outputs, target, inputs, state):
    loss = losses.ijepa_loss(outputs["prediction"], target, inputs["targets_valid"],
                             regression=self.regression)
    # How many tokens the predictor saw and predicted (padding excluded).
    metrics = {"context_tokens": jnp.mean(jnp.sum(inputs["context_valid"], axis=-1)),
               "target_tokens": jnp.mean(jnp.sum(inputs["targets_valid"], axis=-1))}
    return loss, metrics, None

  def update(self, state, aux):
    # `state.step` already counts this update, so step k's EMA uses m(k - 1).
    momentum = linear_ema_momentum(state.step - 1, self.total_steps, self.base_momentum)
    encoder = ema(state.target_params["encoder"], state.params["encoder"], momentum)
    return state.replace(target_params={"encoder": encoder})

  def embedding(self, outputs):
    return outputs["embedding"]

  def features(self, variables, images):
    return self.model.apply({"params": variables["params"]}, images, method="features")
