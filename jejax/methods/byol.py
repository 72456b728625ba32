"""BYOL (Grill et al. 2020): predictor, EMA target network, symmetric normalised MSE."""

from __future__ import annotations

import dataclasses

from jejax import losses
from jejax.checks import require_momentum
from jejax.methods.base import cosine_ema_momentum, ema, register_method
from jejax.methods.views import ViewMethod


@register_method("byol", {"base_momentum": 0.996})
@dataclasses.dataclass(frozen=True, kw_only=True)
class BYOL(ViewMethod):
  """Attributes:
    total_steps: length of the run; the target decay reaches 1 there.
    base_momentum: tau_base, 0.996 in the paper.
  """
  total_steps: int
  base_momentum: float = 0.996

  needs_target = True
  needs_predictor = True

  @classmethod
  def validate(cls, c):
    super().validate(c)
    require_momentum(c.byol, "byol", "base_momentum")

  @classmethod
  def hyperparameters(cls, block, c, setup):
    return {**block, "total_steps": setup.total_steps}

  def loss(self, outputs, target, inputs, state):
    # Each view's prediction regresses the target projection of the other view.
    loss = (losses.normalized_mse(outputs[0]["prediction"], target[1]["embedding"]) +
            losses.normalized_mse(outputs[1]["prediction"], target[0]["embedding"]))
    return loss, {}, None

  def update(self, state, aux):
    # `state.step` already counts this update, so step k's EMA uses tau(k - 1).
    tau = cosine_ema_momentum(state.step - 1, self.total_steps, self.base_momentum)
    return state.replace(target_params=ema(state.target_params, state.params, tau))
