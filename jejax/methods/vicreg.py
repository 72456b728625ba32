"""VICReg (Bardes, Ponce, LeCun 2022): invariance, variance and covariance terms."""

from __future__ import annotations

import dataclasses

from jejax import losses
from jejax.methods.base import Method


@dataclasses.dataclass(frozen=True)
class VICReg(Method):
  sim_weight: float = 25.0
  var_weight: float = 25.0
  cov_weight: float = 1.0

  def loss(self, online, target, state):
    loss, metrics = losses.vicreg_loss(
        online[0]["embedding"], online[1]["embedding"], sim_weight=self.sim_weight,
        var_weight=self.var_weight, cov_weight=self.cov_weight)
    return loss, metrics, None
