"""CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision"): symmetric InfoNCE between the image and text embeddings of the global
batch, with a learnable temperature.

As open_clip: the logit scale is exp t', t' a parameter initialised at log(1 / 0.07) and
clamped to [0, log 100] after every step (`TowerMethod.update`). 'dense' forms the (B, B)
logits (`losses.clip_loss`); 'ring' passes each device's text and image blocks round the
data axis (`losses.ring_clip_loss`), never holding more than one tile. No augmentation:
CLIP's only one is a random crop, which the small 28 px images here do without.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from jejax.checks import require_temperature
from jejax.methods.base import register_method
from jejax.methods.multimodal import TowerMethod, mean_scalar


@register_method("clip", {"temperature_init": 0.07, "max_logit_scale": 100.0,
                          "loss_impl": "dense", "chunk_size": 0})
@dataclasses.dataclass(frozen=True, kw_only=True)
class CLIP(TowerMethod):

  @classmethod
  def validate(cls, c):
    super().validate(c)
    require_temperature(c.clip, "clip", "temperature_init")

  @classmethod
  def model_arguments(cls, c, block):
    return {"logit_scale_init": float(np.log(1.0 / block["temperature_init"]))}

  def loss(self, outputs, target, inputs, state):
    log_scale = mean_scalar(outputs, "logit_scale")
    loss = self.infonce(outputs["image"], outputs["text"], log_scale)
    return loss, {"logit_scale": jnp.exp(log_scale)}, None
