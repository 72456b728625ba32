"""Barlow Twins (Zbontar et al. 2021): cross-correlation of the two views towards identity."""

from __future__ import annotations

import dataclasses

from jejax import losses
from jejax.checks import require_non_negative
from jejax.methods.base import register_method
from jejax.methods.views import ViewMethod


@register_method("barlow_twins", {"off_diagonal_weight": 0.0051})
@dataclasses.dataclass(frozen=True, kw_only=True)
class BarlowTwins(ViewMethod):
  off_diagonal_weight: float = 0.0051

  @classmethod
  def validate(cls, c):
    super().validate(c)
    require_non_negative(c.barlow_twins, "barlow_twins", "off_diagonal_weight")

  def loss(self, outputs, target, inputs, state):
    loss, metrics = losses.barlow_twins_loss(outputs[0]["embedding"], outputs[1]["embedding"],
                                             off_diagonal_weight=self.off_diagonal_weight)
    return loss, metrics, None
