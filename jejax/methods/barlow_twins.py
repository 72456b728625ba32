"""Barlow Twins (Zbontar et al. 2021): cross-correlation of the two views towards identity."""

from __future__ import annotations

import dataclasses

from jejax import losses
from jejax.methods.base import Method


@dataclasses.dataclass(frozen=True)
class BarlowTwins(Method):
  off_diagonal_weight: float = 0.0051

  def loss(self, online, target, state):
    loss, metrics = losses.barlow_twins_loss(online[0]["embedding"], online[1]["embedding"],
                                             off_diagonal_weight=self.off_diagonal_weight)
    return loss, metrics, None
