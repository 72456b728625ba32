"""ImageBind-style binding (Girdhar et al. 2023, "ImageBind: One Embedding Space To Bind
Them All"): one embedding space for several modalities, each bound to images only.

Every batch holds an (image, caption) pair and an independent (image, speech) pair
(`jejax.data.paired`, 'fashion_mnist_binding'); the loss is CLIP's symmetric InfoNCE of
images with texts plus that of images with speech. Speech and text never meet, so any
speech-text alignment has to emerge through the images (the paper's emergent zero-shot).

As the paper, the image tower can be frozen at a pretrained one (`freeze_image_tower`,
with `model.pretrained` naming the run whose backbone it takes, and
`optim.frozen=("^image_tower/",)`; the tower then runs in inference mode behind a
stop-gradient); the projections train. The text pair's logit scale is learnt from 1 / 0.07
(CLIP's), the audio pair's fixed at 1 / 0.05 = 20 (ImageBind's audio postprocessor)
unless `learn_audio_temperature`.

`audio_anchor='text'` is the control the paper's claim is measured against: the same
run with each clip bound to the caption it speaks (`speech_text`) instead of to its image.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np

from jejax.checks import require
from jejax.methods.base import register_method
from jejax.methods.multimodal import (TowerMethod, broadcast_scalars, images_to_float,
                                      mean_scalar, spectrogram_inputs, tower_from_config)

ANCHORS = ("image", "text")
FROZEN_TOWER_PATH = "image_tower/kernel"  # a parameter path of the image tower


@register_method("imagebind", {
    "temperature_init": 0.07, "audio_temperature": 0.05, "learn_audio_temperature": False,
    "audio_anchor": "image", "freeze_image_tower": True, "max_logit_scale": 100.0,
    "loss_impl": "dense", "chunk_size": 0})
@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageBind(TowerMethod):
  """Attributes beyond `TowerMethod`'s:
    audio_anchor: 'image' (binding) or 'text' (the speech-text control).
    freeze_image_tower: the image tower in inference mode, no gradient.
    learn_audio_temperature: False keeps the audio pair's scale at its initial value.
  """
  audio_anchor: str = "image"
  freeze_image_tower: bool = True
  learn_audio_temperature: bool = False

  @classmethod
  def validate(cls, c):
    super().validate(c)
    b = c.imagebind
    for name in ("temperature_init", "audio_temperature"):
      require(0 < b[name] <= 1, f"imagebind.{name}", b[name],
              "must lie in (0, 1] (its logit scale exp t' starts in [1, inf))")
    require(b.audio_anchor in ANCHORS, "imagebind.audio_anchor", b.audio_anchor,
            f"one of {ANCHORS}")
    if b.freeze_image_tower:
      require(c.model.pretrained is not None, "model.pretrained", c.model.pretrained,
              "a frozen image tower (imagebind.freeze_image_tower) needs a pretrained one: "
              "the workdir or checkpoint folder of a run with the same backbone")
      require(any(re.search(p, FROZEN_TOWER_PATH) for p in c.optim.frozen), "optim.frozen",
              tuple(c.optim.frozen), "a frozen image tower needs '^image_tower/' among the "
              "frozen parameters (no update, no weight decay)")

  @classmethod
  def batch_keys(cls, block):
    anchor = ("speech_image",) if block["audio_anchor"] == "image" else (
        "speech_text", "speech_text_mask")
    return (*super().batch_keys(block), "audio", "audio_length", *anchor)

  @classmethod
  def model_arguments(cls, c, block):
    return {"logit_scale_init": float(np.log(1.0 / block["temperature_init"])),
            "audio_tower": tower_from_config(c, "audio"),
            "audio_logit_scale_init": float(np.log(1.0 / block["audio_temperature"]))}

  @classmethod
  def hyperparameters(cls, block):
    return {name: block[name] for name in ("audio_anchor", "freeze_image_tower",
                                           "learn_audio_temperature")}

  def prepare(self, rng, batch):
    inputs = {**super().prepare(rng, batch),
              **spectrogram_inputs(batch["audio"], batch["audio_length"])}
    if self.audio_anchor == "image":
      return {**inputs, "speech_image": images_to_float(batch["speech_image"])}
    return {**inputs, "speech_text": batch["speech_text"],
            "speech_text_mask": batch["speech_text_mask"]}

  def embed(self, model, inputs):
    b = inputs["image"].shape[0]
    # One call per tower: both pairs' images (or texts) go through it together.
    if self.audio_anchor == "image":
      images = jnp.concatenate([inputs["image"], inputs["speech_image"]])
      texts, masks = inputs["text"], inputs["text_mask"]
    else:
      images = inputs["image"]
      texts = jnp.concatenate([inputs["text"], inputs["speech_text"]])
      masks = jnp.concatenate([inputs["text_mask"], inputs["speech_text_mask"]])
    image = model.embed_image(images, train=True, frozen_tower=self.freeze_image_tower)
    text = model.embed_text(texts, masks)
    anchor = image[b:] if self.audio_anchor == "image" else text[b:]
    scalars = model.logit_parameters()
    if not self.learn_audio_temperature:
      scalars["audio_logit_scale"] = jax.lax.stop_gradient(scalars["audio_logit_scale"])
    return {"image": image[:b], "text": text[:b], "audio_anchor": anchor,
            "audio": model.embed_audio(inputs["audio"], inputs["audio_valid"]),
            **broadcast_scalars(scalars, b)}

  def loss(self, outputs, target, inputs, state):
    log_scale = mean_scalar(outputs, "logit_scale")
    audio_log_scale = mean_scalar(outputs, "audio_logit_scale")
    image_text = self.infonce(outputs["image"], outputs["text"], log_scale)
    audio = self.infonce(outputs["audio_anchor"], outputs["audio"], audio_log_scale)
    metrics = {"loss_image_text": image_text, f"loss_{self.audio_anchor}_audio": audio,
               "logit_scale": jnp.exp(log_scale), "audio_logit_scale": jnp.exp(audio_log_scale)}
    return image_text + audio, metrics, None

  def embedding(self, outputs):
    return outputs["audio"]
