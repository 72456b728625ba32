"""DeCUR (Wang et al. 2024, "Decoupling Common and Unique Representations for Multimodal
Self-supervised Learning", ECCV): Barlow Twins within each of two modalities and across
them, with the embedding split into common dimensions (driven to agree across the
modalities) and unique ones (driven to be decorrelated across them),
`jejax.losses.decur_loss`.

Modalities (`decur.modalities`): images with their captions ('image', 'text'; data
'fashion_mnist_captions') or with spoken captions ('image', 'audio'; data
'fashion_mnist_binding', whose (speech_image, audio) pairs it reads and whose text pairs
it leaves alone). A caption names two of an image's five measured attributes
(`jejax.data.captions`): the other three are what the image's unique dimensions can hold.

Two views of every modality, made on the device:
- images: the config's view recipe (`config.augment`, as the view methods);
- text: byte deletion (`augment.delete_tokens`, rate `text_deletion`) on each view; the
  data has one caption per image, and a deleted character leaves a short caption readable;
- speech: the log-mel spectrogram with one SpecAugment time mask per view
  (`augment.time_mask`, up to `time_mask_frames` frames).
The authors' data are images of two sensors, augmented by crops, flips, blur and
jitter; their cross-modal term pairs the first view of each modality, as here.

As jejax's view methods, both image views go through the network as one batch (the
authors' code runs each view separately), and BatchNorm statistics are global.
`common_fraction` x `model.embed_dim` leading dimensions are common (the authors: 0.75 on
SUN RGB-D and GeoNRW, 0.875 on SSL4EO-S12). kNN and probes read the image tower.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jejax import augment, losses
from jejax.checks import require, require_non_negative
from jejax.methods.base import Method, config_block, register_method
from jejax.methods.multimodal import require_batch_keys, spectrogram_inputs, tower_from_config
from jejax.methods.views import backbone_from_config, view_recipes
from jejax.models import DecurModel
from jejax.models.base import compute_dtype

MODALITIES = (("image", "text"), ("image", "audio"))
# What a batch must hold, per second modality; the images of (image, speech) pairs are
# 'speech_image' in 'fashion_mnist_binding'.
BATCH_KEYS = {"text": ("image", "text", "text_mask"),
              "audio": ("speech_image", "audio", "audio_length")}


@register_method("decur", {"modalities": ("image", "text"), "common_fraction": 0.75,
                           "off_diagonal_weight": 0.0051, "text_deletion": 0.1,
                           "time_mask_frames": 50})
@dataclasses.dataclass(frozen=True, kw_only=True)
class DeCUR(Method):
  """Attributes:
    model: the image tower and one other tower, each with its projector (`DecurModel`).
    views: the two image views (`augment.ViewConfig`s, static).
    other: the second modality, 'text' or 'audio'.
    common_dim: K, the leading common dimensions of the embedding.
    off_diagonal_weight: Barlow Twins' lambda.
    text_deletion: per-byte deletion probability of a text view.
    time_mask_frames: the widest time mask of a speech view.
  """
  model: DecurModel
  views: tuple[augment.ViewConfig, ...]
  other: str = "text"
  common_dim: int
  off_diagonal_weight: float = 0.0051
  text_deletion: float = 0.1
  time_mask_frames: int = 50

  @classmethod
  def validate(cls, c):
    super().validate(c)
    b = c.decur
    require(tuple(b.modalities) in MODALITIES, "decur.modalities", b.modalities,
            f"one of {MODALITIES}")
    require(0 <= b.common_fraction <= 1, "decur.common_fraction", b.common_fraction,
            "must lie in [0, 1] (the share of embedding dimensions common to both)")
    require_non_negative(b, "decur", "off_diagonal_weight", "time_mask_frames")
    require(0 <= b.text_deletion < 1, "decur.text_deletion", b.text_deletion,
            "must lie in [0, 1)")
    require(c.model.embed_dim > 0, "model.embed_dim", c.model.embed_dim, "must be positive")
    require(c.augment.num_small_crops == 0, "augment.num_small_crops",
            c.augment.num_small_crops, "DeCUR takes two views per modality, no small crops")

  @classmethod
  def from_config(cls, c, setup):
    block = config_block(c, cls.name)
    other = tuple(block["modalities"])[1]
    require_batch_keys(c, cls.name, BATCH_KEYS[other], setup.example_batch)
    image_size = setup.example_batch[BATCH_KEYS[other][0]].shape[1]
    model = DecurModel(image_tower=backbone_from_config(c),
                       **{f"{other}_tower": tower_from_config(c, other)},
                       projector_hidden=tuple(c.model.projector_hidden),
                       embed_dim=c.model.embed_dim, dtype=compute_dtype(c.model.dtype))
    return cls(model=model, views=view_recipes(c, image_size), other=other,
               common_dim=round(block["common_fraction"] * c.model.embed_dim),
               off_diagonal_weight=block["off_diagonal_weight"],
               text_deletion=block["text_deletion"],
               time_mask_frames=block["time_mask_frames"])

  @classmethod
  def modalities(cls, c) -> tuple[str, ...]:
    """The modalities the model of config `c` embeds (as `TowerMethod.modalities`)."""
    return tuple(c.decur.modalities)

  def init_args(self, batch):
    inputs = self.prepare(jax.random.key(0), batch)
    first = lambda name: inputs[name][0] if name in inputs else None  # noqa: E731
    return {"images": first("image"), "tokens": first("text"), "mask": first("text_mask"),
            "log_mel": first("audio"), "valid": inputs.get("audio_valid"), "train": True}

  def prepare(self, rng, batch):
    """{'image': 2 views (B, H, W, C), and 'text', 'text_mask': 2 views (B, L) each, or
    'audio': 2 views (B, T, M) and 'audio_valid' (B, T)}."""
    image_rng, other_rng = jax.random.split(rng)
    image = batch["image"] if self.other == "text" else batch["speech_image"]
    inputs = {"image": augment.make_views(image_rng, image, self.views)}
    keys = jax.random.split(other_rng, 2)
    if self.other == "text":
      views = [augment.delete_tokens(k, batch["text"], batch["text_mask"], self.text_deletion)
               for k in keys]
      return {**inputs, "text": tuple(v[0] for v in views),
              "text_mask": tuple(v[1] for v in views)}
    spectrogram = spectrogram_inputs(batch["audio"], batch["audio_length"])
    log_mel, valid = spectrogram["audio"], spectrogram["audio_valid"]
    return {**inputs, "audio_valid": valid,
            "audio": tuple(augment.time_mask(k, log_mel, valid, self.time_mask_frames)
                           for k in keys)}

  def forward(self, params, batch_stats, inputs):
    outputs, mutated = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, inputs, method=self.embed,
        mutable=["batch_stats"])
    return outputs, mutated.get("batch_stats", batch_stats)

  def embed(self, model: DecurModel, inputs):
    """Inside `model.apply`: {modality: (view 1, view 2) (B, D) embeddings}; the two views
    of a modality go through its tower and projector as one batch."""
    b = inputs["image"][0].shape[0]
    halves = lambda z: (z[:b], z[b:])  # noqa: E731
    both = lambda name: jnp.concatenate(inputs[name])  # noqa: E731
    image = halves(model.embed_image(both("image"), train=True))
    if self.other == "text":
      return {"image": image,
              "text": halves(model.embed_text(both("text"), both("text_mask"), train=True))}
    valid = jnp.concatenate([inputs["audio_valid"]] * 2)
    return {"image": image, "audio": halves(model.embed_audio(both("audio"), valid, train=True))}

  def loss(self, outputs, target, inputs, state):
    (z1, z1_view), (z2, z2_view) = outputs["image"], outputs[self.other]
    loss, metrics = losses.decur_loss(z1, z1_view, z2, z2_view, common_dim=self.common_dim,
                                      off_diagonal_weight=self.off_diagonal_weight)
    return loss, metrics, None

  def embedding(self, outputs):
    return outputs["image"][0]

  def features(self, variables, images):
    return self.model.apply(variables, images, method="image_features")
