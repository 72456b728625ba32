"""SimSiam (Chen & He 2021): predictor and stop-gradient, no target network."""

from __future__ import annotations

import dataclasses

from jejax import losses
from jejax.methods.base import Method


@dataclasses.dataclass(frozen=True)
class SimSiam(Method):

  def loss(self, online, target, state):
    # L = D(p1, z2) / 2 + D(p2, z1) / 2, the stop-gradient on z inside negative_cosine.
    loss = (losses.negative_cosine(online[0]["prediction"], online[1]["embedding"]) +
            losses.negative_cosine(online[1]["prediction"], online[0]["embedding"])) / 2
    return loss, {}, None
