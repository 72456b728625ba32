"""SimSiam (Chen & He 2021): predictor and stop-gradient, no target network."""

from __future__ import annotations

import dataclasses

from jejax import losses
from jejax.methods.base import register_method
from jejax.methods.views import ViewMethod


@register_method("simsiam")
@dataclasses.dataclass(frozen=True, kw_only=True)
class SimSiam(ViewMethod):
  needs_predictor = True

  def loss(self, outputs, target, inputs, state):
    # L = D(p1, z2) / 2 + D(p2, z1) / 2, the stop-gradient on z inside negative_cosine.
    loss = (losses.negative_cosine(outputs[0]["prediction"], outputs[1]["embedding"]) +
            losses.negative_cosine(outputs[1]["prediction"], outputs[0]["embedding"])) / 2
    return loss, {}, None
