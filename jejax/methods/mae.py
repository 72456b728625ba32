"""MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners";
facebookresearch/mae): the reconstruction baseline that joint embedding is compared with.

The step: one random resized crop and flip of each image (the paper's augmentation), a
random 75% of its patches removed (`jejax.augment.masks.mae_mask`, per image, on the
device), the ViT encoder (with a class token) on the visible patches only, a lighter
decoder with mask tokens that predicts every patch's pixels, and the mean squared error
on the removed patches, against per-patch normalised pixels by default
(`losses.mae_loss`). Evaluation reads the encoder's class token on the whole image (as
MAE's linear probes), with nothing masked.
"""

from __future__ import annotations

import dataclasses

import jax

from jejax import augment, losses
from jejax.augment import masks
from jejax.checks import require, require_interval
from jejax.methods.base import Method, config_block, register_method
from jejax.methods.views import backbone_from_config
from jejax.models import ViT
from jejax.models.base import compute_dtype
from jejax.models.mae import Decoder, MAEModel


@register_method("mae", {
    "mask_ratio": 0.75, "decoder_width": 512, "decoder_depth": 8, "decoder_heads": 16,
    "norm_pix_loss": True, "crop_scale": (0.2, 1.0)})
@dataclasses.dataclass(frozen=True, kw_only=True)
class MAE(Method):
  """Attributes:
    model: the encoder and decoder (`MAEModel`).
    view: the random resized crop (scale 0.2-1) and horizontal flip of every image.
    num_tokens: patches per view.
    mask_ratio: the removed fraction, 0.75 in the paper.
    norm_pix_loss: regress per-patch normalised pixels (the paper's default).
  """
  model: MAEModel
  view: augment.ViewConfig
  num_tokens: int
  mask_ratio: float = 0.75
  norm_pix_loss: bool = True

  @classmethod
  def validate(cls, c):
    super().validate(c)
    require(c.model.backbone == "vit", "model.backbone", c.model.backbone,
            "mae's encoder is a ViT ('vit')")
    require(c.model.vit.class_token, "model.vit.class_token", c.model.vit.class_token,
            "MAE's encoder has a class token (its linear probes read it)")
    b = c.mae
    require(0 < b.mask_ratio < 1, "mae.mask_ratio", b.mask_ratio, "must lie in (0, 1)")
    require_interval(b, "mae", "crop_scale")
    require(b.decoder_width % 4 == 0 and b.decoder_width % b.decoder_heads == 0,
            "mae.decoder_width", b.decoder_width,
            f"must be divisible by 4 (sin-cos positions) and by decoder_heads="
            f"{b.decoder_heads}")
    require(b.decoder_depth >= 1, "mae.decoder_depth", b.decoder_depth, "must be >= 1")

  @classmethod
  def from_config(cls, c, setup):
    b = config_block(c, "mae")
    encoder = backbone_from_config(c)
    if not isinstance(encoder, ViT):
      raise ValueError(f"config.model.backbone={c.model.backbone!r}: mae needs a ViT")
    height, width, channels = setup.example_batch["image"].shape[1:]
    p = encoder.patch_size
    decoder = Decoder(b["decoder_width"], b["decoder_depth"], b["decoder_heads"],
                      p * p * channels, dtype=compute_dtype(c.model.dtype))
    return cls(model=MAEModel(encoder, decoder),
               view=augment.ViewConfig(out_size=height, crop_scale=tuple(b["crop_scale"]),
                                       flip_prob=0.5),
               num_tokens=(height // p) * (width // p), mask_ratio=b["mask_ratio"],
               norm_pix_loss=b["norm_pix_loss"])

  def init_args(self, batch):
    inputs = self.prepare(jax.random.key(0), batch)
    return {"image": inputs["image"], "keep": inputs["keep"], "restore": inputs["restore"]}

  def prepare(self, rng, batch):
    images = batch["image"]
    view = augment.augment_batch(jax.random.fold_in(rng, 0), images, self.view)
    mask = masks.per_image(masks.mae_mask, jax.random.fold_in(rng, 1), images.shape[0],
                           self.num_tokens, self.mask_ratio)
    return {"image": view, "keep": mask.keep, "restore": mask.restore, "mask": mask.mask}

  def forward(self, params, batch_stats, inputs):
    outputs = self.model.apply({"params": params}, inputs["image"], inputs["keep"],
                               inputs["restore"])
    return outputs, batch_stats

  def loss(self, outputs, target, inputs, state):
    patches = losses.patchify(inputs["image"], self.model.encoder.patch_size)
    loss = losses.mae_loss(outputs["prediction"], patches, inputs["mask"],
                           norm_pix=self.norm_pix_loss)
    return loss, {}, None

  def embedding(self, outputs):
    return outputs["embedding"]

  def features(self, variables, images):
    return self.model.apply({"params": variables["params"]}, images, method="features")
