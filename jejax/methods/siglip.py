"""SigLIP (Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training"): every
image-text pair of the global batch is a binary classification, positive on the
diagonal, with a learnable scale t = exp t' (t' from log 10) and bias b (from -10).

'dense' forms the (B, B) logits (`losses.siglip_loss`); 'ring' scores each device's images
against the text blocks passed round the data axis, tiled by `chunk_size` rows, with
memory per device linear in the batch (`losses.ring_siglip_loss`). t' is clamped to
[0, log 100] after every step as open_clip does for all its models (big_vision leaves it
free).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from jejax import losses
from jejax.checks import require
from jejax.methods.base import register_method
from jejax.methods.multimodal import TowerMethod, mean_scalar


@register_method("siglip", {"scale_init": 10.0, "bias_init": -10.0, "max_logit_scale": 100.0,
                            "loss_impl": "dense", "chunk_size": 0})
@dataclasses.dataclass(frozen=True, kw_only=True)
class SigLIP(TowerMethod):

  @classmethod
  def validate(cls, c):
    super().validate(c)
    s = c.siglip
    require(1.0 <= s.scale_init <= s.max_logit_scale, "siglip.scale_init", s.scale_init,
            f"must lie in [1, max_logit_scale={s.max_logit_scale}]")

  @classmethod
  def model_arguments(cls, c, block):
    return {"logit_scale_init": float(np.log(block["scale_init"])),
            "logit_bias_init": float(block["bias_init"])}

  def loss(self, outputs, target, inputs, state):
    scale = jnp.exp(mean_scalar(outputs, "logit_scale"))
    bias = mean_scalar(outputs, "logit_bias")
    a, b = outputs["image"], outputs["text"]
    if self.loss_impl == "ring":
      loss = losses.ring_siglip_loss(a, b, scale=scale, bias=bias, mesh=self.ring_mesh(),
                                     chunk_size=self.chunk_size)
    else:
      loss = losses.siglip_loss(a, b, scale=scale, bias=bias)
    return loss, {"logit_scale": scale, "logit_bias": bias}, None
