"""ImageBind-style binding (Girdhar et al. 2023, "ImageBind: One Embedding Space To Bind
Them All"): one embedding space for several modalities, each bound to images only.

Every batch holds an (image, caption) pair and an independent (image, speech) pair
(`jejax.data.paired`, 'fashion_mnist_binding'); the loss is CLIP's symmetric InfoNCE of
images with speech, plus that of images with texts while the image-text pair still
trains. Speech and text never meet, so any speech-text alignment has to emerge through
the images (the paper's emergent zero-shot).

As the paper, towers can be frozen at pretrained ones (it freezes OpenCLIP's image and
text encoders): `model.pretrained` names the run they come from (its arrays are grafted
by name and shape, `jejax.train.pretrained`) and `optim.frozen` the frozen parameter
groups (`^image_tower/`, `^image_projection/`, `^text_tower/`, `^text_projection/`), which
the method reads too: a frozen tower runs in inference mode, and a frozen group behind a
stop-gradient. With all four frozen, the image-text pair is fixed and left out of the
loss: only the audio tower and its projection train. A SimCLR backbone, say, would
freeze `^image_tower/` alone and train the projection. The image-text logit scale is
learnt from 1 / 0.07 (CLIP's) while that pair trains; the audio pair's is fixed at 1 / 0.05 = 20 (ImageBind's audio
postprocessor) unless `learn_audio_temperature`.

`audio_anchor='text'` is the control the paper's claim is measured against: the same
run with each clip bound to the caption it speaks (`speech_text`) instead of to its image.

`image_text=False` leaves the image-text pair out of the loss with every tower trainable:
CLIP on the (image, speech) pairs alone (with `learn_audio_temperature` its scale is
learnt, as CLIP's), the one image-audio CLIP jejax has (`experiments/decur_unique.py`
compares DeCUR on image-speech with it). The text tower is then initialised and unused.
"""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jejax.checks import require
from jejax.methods.base import register_method
from jejax.methods.multimodal import (TowerMethod, broadcast_scalars, images_to_float,
                                      mean_scalar, spectrogram_inputs, tower_from_config)

ANCHORS = ("image", "text")
GROUPS = ("image_tower", "image_projection", "text_tower", "text_projection")


def frozen_groups(patterns) -> tuple[str, ...]:
  """The groups of `GROUPS` that `optim.frozen`'s patterns freeze."""
  return tuple(g for g in GROUPS if any(re.search(p, f"{g}/kernel") for p in patterns))


@register_method("imagebind", {
    "temperature_init": 0.07, "audio_temperature": 0.05, "learn_audio_temperature": False,
    "audio_anchor": "image", "image_text": True, "max_logit_scale": 100.0,
    "loss_impl": "dense", "chunk_size": 0})
@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageBind(TowerMethod):
  """Attributes beyond `TowerMethod`'s:
    audio_anchor: 'image' (binding) or 'text' (the speech-text control).
    frozen: the groups of `GROUPS` that `optim.frozen` freezes.
    learn_audio_temperature: False keeps the audio pair's scale at its initial value.
    image_text: False leaves the image-text pair out of the loss (module docstring).
  """
  audio_anchor: str = "image"
  frozen: tuple[str, ...] = ()
  learn_audio_temperature: bool = False
  image_text: bool = True
  handles_frozen: ClassVar[bool] = True

  @classmethod
  def validate(cls, c):
    super().validate(c)
    b = c.imagebind
    for name in ("temperature_init", "audio_temperature"):
      require(0 < b[name] <= 1, f"imagebind.{name}", b[name],
              "must lie in (0, 1] (its logit scale exp t' starts in [1, inf))")
    require(b.audio_anchor in ANCHORS, "imagebind.audio_anchor", b.audio_anchor,
            f"one of {ANCHORS}")
    frozen = frozen_groups(c.optim.frozen)
    if frozen:
      require(c.model.pretrained is not None, "model.pretrained", c.model.pretrained,
              f"frozen {', '.join(frozen)} (optim.frozen) need pretrained values: the "
              "workdir or checkpoint folder of a run with the same towers")

  @classmethod
  def batch_keys(cls, block):
    anchor = ("speech_image",) if block["audio_anchor"] == "image" else (
        "speech_text", "speech_text_mask")
    return (*super().batch_keys(block), "audio", "audio_length", *anchor)

  @classmethod
  def modalities(cls, c):
    return ("image", "text", "audio")

  @classmethod
  def model_arguments(cls, c, block):
    return {"logit_scale_init": float(np.log(1.0 / block["temperature_init"])),
            "audio_tower": tower_from_config(c, "audio"),
            "audio_logit_scale_init": float(np.log(1.0 / block["audio_temperature"]))}

  @classmethod
  def hyperparameters(cls, c, block):
    return {"audio_anchor": block["audio_anchor"], "frozen": frozen_groups(c.optim.frozen),
            "learn_audio_temperature": block["learn_audio_temperature"],
            "image_text": block["image_text"]}

  @property
  def trains_image_text(self) -> bool:
    """Whether the image-text pair is in the loss: asked for, and not all of its groups
    frozen."""
    return self.image_text and set(self.frozen) != set(GROUPS)

  def prepare(self, rng, batch):
    inputs = {**super().prepare(rng, batch),
              **spectrogram_inputs(batch["audio"], batch["audio_length"])}
    if self.audio_anchor == "image":
      return {**inputs, "speech_image": images_to_float(batch["speech_image"])}
    return {**inputs, "speech_text": batch["speech_text"],
            "speech_text_mask": batch["speech_text_mask"]}

  def embed(self, model, inputs):
    def stop(groups, x):
      # No gradient computed for what the optimizer leaves alone: an output is cut off
      # when every group it depends on is frozen (a frozen projection over a trainable
      # tower still passes the tower its gradient).
      return jax.lax.stop_gradient(x) if set(groups) <= set(self.frozen) else x

    def images(x):
      features = model.image_features(x, train="image_tower" not in self.frozen)
      features = stop(["image_tower"], features)
      return stop(["image_tower", "image_projection"], model.image_projection(features))

    def texts(tokens, mask):
      features = stop(["text_tower"], model.text_tower(tokens, mask).astype(jnp.float32))
      return stop(["text_tower", "text_projection"], model.text_projection(features))

    b = inputs["audio"].shape[0]
    pair = self.trains_image_text  # then one call per tower: both pairs' inputs together
    if self.audio_anchor == "image":
      x = inputs["speech_image"]
      image = images(jnp.concatenate([inputs["image"], x]) if pair else x)
      outputs = {"audio_anchor": image[-b:]}
      if pair:
        outputs |= {"image": image[:b], "text": texts(inputs["text"], inputs["text_mask"])}
    else:
      tokens, mask = inputs["speech_text"], inputs["speech_text_mask"]
      if pair:
        tokens = jnp.concatenate([inputs["text"], tokens])
        mask = jnp.concatenate([inputs["text_mask"], mask])
      text = texts(tokens, mask)
      outputs = {"audio_anchor": text[-b:]}
      if pair:
        outputs |= {"text": text[:b], "image": images(inputs["image"])}
    scalars = model.logit_parameters()
    if not self.learn_audio_temperature:
      scalars["audio_logit_scale"] = jax.lax.stop_gradient(scalars["audio_logit_scale"])
    return {**outputs, "audio": model.embed_audio(inputs["audio"], inputs["audio_valid"]),
            **broadcast_scalars(scalars, b)}

  def loss(self, outputs, target, inputs, state):
    audio_log_scale = mean_scalar(outputs, "audio_logit_scale")
    loss = self.infonce(outputs["audio_anchor"], outputs["audio"], audio_log_scale)
    metrics = {f"loss_{self.audio_anchor}_audio": loss,
               "audio_logit_scale": jnp.exp(audio_log_scale)}
    if self.trains_image_text:
      log_scale = mean_scalar(outputs, "logit_scale")
      image_text = self.infonce(outputs["image"], outputs["text"], log_scale)
      metrics |= {"loss_image_text": image_text, "logit_scale": jnp.exp(log_scale)}
      loss = loss + image_text
    return loss, metrics, None

  def embedding(self, outputs):
    return outputs["audio"]
