"""VICReg (Bardes, Ponce, LeCun 2022): invariance, variance and covariance terms."""

from __future__ import annotations

import dataclasses

from jejax import losses
from jejax.checks import require_non_negative
from jejax.methods.base import register_method
from jejax.methods.views import ViewMethod


@register_method("vicreg", {"sim_weight": 25.0, "var_weight": 25.0, "cov_weight": 1.0})
@dataclasses.dataclass(frozen=True, kw_only=True)
class VICReg(ViewMethod):
  sim_weight: float = 25.0
  var_weight: float = 25.0
  cov_weight: float = 1.0

  @classmethod
  def validate(cls, c):
    super().validate(c)
    require_non_negative(c.vicreg, "vicreg", "sim_weight", "var_weight", "cov_weight")

  def loss(self, outputs, target, inputs, state):
    loss, metrics = losses.vicreg_loss(
        outputs[0]["embedding"], outputs[1]["embedding"], sim_weight=self.sim_weight,
        var_weight=self.var_weight, cov_weight=self.cov_weight)
    return loss, metrics, None
