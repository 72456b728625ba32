"""DINO (Caron et al. 2021): self-distillation from an EMA teacher with centring and
sharpening, over multi-crop views."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jejax import losses
from jejax.checks import require_momentum, require_non_negative, require_temperature
from jejax.methods.base import (cosine_ema_momentum, ema, freeze_prototypes,
                                normalize_prototypes, register_method)
from jejax.methods.views import ViewMethod


def teacher_temperature_at(step: jax.Array, warmup_steps: int, start: float,
                           end: float) -> jax.Array:
  """Linear warmup of the teacher temperature from `start` to `end`, then constant."""
  progress = jnp.minimum(step / max(warmup_steps, 1), 1.0)
  return start + (end - start) * progress


@register_method("dino", {
    "student_temperature": 0.1, "teacher_temperature": 0.04,
    "warmup_teacher_temperature": 0.04, "warmup_teacher_temperature_epochs": 0.0,
    "center_momentum": 0.9, "base_momentum": 0.996, "freeze_last_layer_epochs": 0.0})
@dataclasses.dataclass(frozen=True, kw_only=True)
class DINO(ViewMethod):
  """Attributes:
    total_steps: length of the run; the teacher momentum reaches 1 there.
    student_temperature: 0.1 in the paper.
    teacher_temperature: 0.04 in the paper, reached after the warmup.
    warmup_teacher_temperature: start of the warmup (0.04 in the code; the paper's
      ViT-S/16 runs warm up from 0.04 to 0.07 over 30 epochs).
    warmup_teacher_temperature_steps: length of the linear warmup.
    center_momentum: m of the center's EMA, 0.9 in the paper.
    base_momentum: the teacher's EMA momentum at step 0, 0.996 (cosine to 1).
    freeze_last_layer_steps: the last layer (the prototypes) gets no gradient for this
      many first steps (the first epoch in the paper).

  The teacher sees the two global crops (the first two views); the student all crops.
  The last layer is DINO's weight-normalised layer with its norm fixed to 1; here its rows
  are renormalised after each update instead (as SwAV does), the teacher's after its EMA,
  which gives the same forward function, with the gradient not projected onto the
  sphere's tangent.
  """
  total_steps: int
  student_temperature: float = 0.1
  teacher_temperature: float = 0.04
  warmup_teacher_temperature: float = 0.04
  warmup_teacher_temperature_steps: int = 0
  center_momentum: float = 0.9
  base_momentum: float = 0.996
  freeze_last_layer_steps: int = 0

  needs_target = True
  num_target_views = 2
  needs_prototypes = True
  supports_multi_crop = True

  @classmethod
  def validate(cls, c):
    super().validate(c)
    d = c.dino
    require_temperature(d, "dino", "student_temperature", "teacher_temperature",
                        "warmup_teacher_temperature")
    require_momentum(d, "dino", "base_momentum", "center_momentum")
    require_non_negative(d, "dino", "warmup_teacher_temperature_epochs",
                         "freeze_last_layer_epochs")

  @classmethod
  def hyperparameters(cls, block, c, setup):
    warmup_epochs = block.pop("warmup_teacher_temperature_epochs")
    freeze_epochs = block.pop("freeze_last_layer_epochs")
    return {**block, "total_steps": setup.total_steps,
            "warmup_teacher_temperature_steps": round(warmup_epochs * setup.steps_per_epoch),
            "freeze_last_layer_steps": round(freeze_epochs * setup.steps_per_epoch)}

  def init_method_state(self, params, rng):
    num_prototypes = params["prototypes"]["prototypes"].shape[0]
    return {"center": jnp.zeros((num_prototypes,), jnp.float32)}

  def prepare_params(self, params, step):
    return freeze_prototypes(params, step < self.freeze_last_layer_steps)

  def loss(self, outputs, target, inputs, state):
    temperature = teacher_temperature_at(state.step, self.warmup_teacher_temperature_steps,
                                         self.warmup_teacher_temperature,
                                         self.teacher_temperature)
    teacher_scores = [out["scores"] for out in target]
    loss = losses.dino_loss([out["scores"] for out in outputs], teacher_scores,
                            state.method_state["center"],
                            student_temperature=self.student_temperature,
                            teacher_temperature=temperature)
    # The center follows the mean teacher output over the global batch of both crops.
    batch_center = jnp.mean(jnp.concatenate(teacher_scores, axis=0), axis=0)
    return loss, {"teacher_temperature": temperature}, batch_center

  def update(self, state, aux):
    momentum = cosine_ema_momentum(state.step - 1, self.total_steps, self.base_momentum)
    params = normalize_prototypes(state.params)
    # An average of unit rows is shorter than 1: the teacher's rows are put back on the
    # sphere too, as its weight-normalised layer would be.
    target_params = normalize_prototypes(ema(state.target_params, params, momentum))
    center = ema(state.method_state["center"], aux, self.center_momentum)
    return state.replace(params=params, target_params=target_params,
                         method_state={"center": center})
