"""SwAV (Caron et al. 2020): swapped prediction of Sinkhorn-Knopp codes over prototypes."""

from __future__ import annotations

import dataclasses

from jejax import losses
from jejax.checks import require, require_non_negative, require_temperature
from jejax.methods.base import freeze_prototypes, normalize_prototypes, register_method
from jejax.methods.views import ViewMethod


@register_method("swav", {"temperature": 0.1, "epsilon": 0.05, "sinkhorn_iters": 3,
                          "freeze_prototypes_epochs": 0.0})
@dataclasses.dataclass(frozen=True, kw_only=True)
class SwAV(ViewMethod):
  """Attributes:
    temperature: prediction softmax temperature, 0.1 in the paper.
    epsilon, sinkhorn_iters: Sinkhorn-Knopp settings, 0.05 and 3 in the paper.
    freeze_prototypes_steps: the prototypes get no gradient for this many first steps
      (313 iterations, i.e. the first epoch, in the paper), which helps them not to chase
      a random encoder.

  Codes come from the first two views (the large crops of a multi-crop recipe); every view
  predicts the codes of the others.
  """
  temperature: float = 0.1
  epsilon: float = 0.05
  sinkhorn_iters: int = 3
  freeze_prototypes_steps: int = 0

  needs_prototypes = True
  supports_multi_crop = True

  @classmethod
  def validate(cls, c):
    super().validate(c)
    s = c.swav
    require_temperature(s, "swav", "temperature")
    require(s.epsilon > 0, "swav.epsilon", s.epsilon, "must be positive")
    require(s.sinkhorn_iters >= 1, "swav.sinkhorn_iters", s.sinkhorn_iters, "must be >= 1")
    require_non_negative(s, "swav", "freeze_prototypes_epochs")

  @classmethod
  def hyperparameters(cls, block, c, setup):
    epochs = block.pop("freeze_prototypes_epochs")
    return {**block, "freeze_prototypes_steps": round(epochs * setup.steps_per_epoch)}

  def loss(self, outputs, target, inputs, state):
    scores = [out["scores"] for out in outputs]
    loss = losses.swav_loss(scores, temperature=self.temperature, epsilon=self.epsilon,
                            num_iters=self.sinkhorn_iters)
    return loss, {}, None

  def prepare_params(self, params, step):
    return freeze_prototypes(params, step < self.freeze_prototypes_steps)

  def update(self, state, aux):
    # The prototypes go back onto the unit sphere after every update.
    return state.replace(params=normalize_prototypes(state.params))
