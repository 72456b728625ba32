"""MoCo v2 (Chen et al. 2020) and MoCo v3 (Chen, Xie, He 2021): a momentum key encoder;
v2 contrasts against a queue of past keys, v3 against the global batch.

BatchNorm statistics are taken over the global batch (the arrays are global under
`jax.jit`), as MoCo v3's SyncBN does. MoCo v2's shuffling BN exists to stop per-device
BatchNorm from leaking which key is the positive; with global statistics there is no
per-device batch to leak through, so it is not needed here.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jejax import losses
from jejax.checks import require, require_momentum, require_temperature
from jejax.methods.base import cosine_ema_momentum, ema, register_method
from jejax.methods.views import ViewMethod
from jejax.numerics import l2_normalize


def push_to_queue(queue: jax.Array, position: jax.Array,
                  keys: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Writes `keys` (N, D) over the oldest N rows of the ring buffer `queue` (K, D).

  `position` is the row the next push starts at; N must divide K (as in MoCo's code), so
  a push never wraps around the end. Returns the new queue and position.
  """
  size, n = queue.shape[0], keys.shape[0]
  if size % n:
    raise ValueError(f"a queue of {size} keys cannot take pushes of {n}: the batch must "
                     "divide the queue size")
  queue = jax.lax.dynamic_update_slice(queue, keys.astype(queue.dtype), (position, 0))
  return queue, (position + n) % size


@register_method("moco_v2", {"temperature": 0.2, "queue_size": 65536, "momentum": 0.999})
@dataclasses.dataclass(frozen=True, kw_only=True)
class MoCoV2(ViewMethod):
  """Attributes:
    embed_dim: D, the width of the keys in the queue.
    queue_size: K negatives; 65536 in the paper. The batch must divide it.
    temperature: 0.2 in MoCo v2.
    momentum: the key encoder's constant EMA momentum m; 0.999 in the paper.

  The query is view 1's embedding and the key view 2's, as in the paper's (asymmetric)
  loss. The queue starts as random unit vectors, as in the authors' code.
  """
  embed_dim: int
  queue_size: int = 65536
  temperature: float = 0.2
  momentum: float = 0.999

  needs_target = True

  @classmethod
  def validate(cls, c):
    super().validate(c)
    m = c.moco_v2
    require_temperature(m, "moco_v2", "temperature")
    require_momentum(m, "moco_v2", "momentum")
    # Each step pushes the global batch of keys; the ring buffer takes whole batches.
    require(m.queue_size >= c.batch_size and m.queue_size % c.batch_size == 0,
            "moco_v2.queue_size", m.queue_size,
            f"the queue must hold a whole number (>= 1) of batches of {c.batch_size}")

  @classmethod
  def hyperparameters(cls, block, c, setup):
    return {**block, "embed_dim": c.model.embed_dim}

  def init_method_state(self, params, rng):
    queue = l2_normalize(jax.random.normal(rng, (self.queue_size, self.embed_dim)))
    return {"queue": queue, "queue_position": jnp.zeros((), jnp.int32)}

  def loss(self, outputs, target, inputs, state):
    query, key = outputs[0]["embedding"], target[1]["embedding"]
    loss = losses.moco_v2_loss(query, key, state.method_state["queue"],
                               temperature=self.temperature)
    return loss, {}, l2_normalize(key)

  def update(self, state, aux):
    """EMA of the key encoder, then this batch's keys replace the oldest in the queue."""
    queue, position = push_to_queue(state.method_state["queue"],
                                    state.method_state["queue_position"], aux)
    return state.replace(
        target_params=ema(state.target_params, state.params, self.momentum),
        method_state={"queue": queue, "queue_position": position})


@register_method("moco_v3", {"temperature": 1.0, "base_momentum": 0.99})
@dataclasses.dataclass(frozen=True, kw_only=True)
class MoCoV3(ViewMethod):
  """Attributes:
    total_steps: length of the run; the momentum reaches 1 there.
    temperature: 1.0 for ResNets in the authors' code (0.2 for ViTs).
    base_momentum: 0.99, raised to 1 by a cosine schedule as in the paper.

  Symmetric loss: each view's prediction is contrasted against the other view's key.
  """
  total_steps: int
  temperature: float = 1.0
  base_momentum: float = 0.99

  needs_target = True
  needs_predictor = True

  @classmethod
  def validate(cls, c):
    super().validate(c)
    require_temperature(c.moco_v3, "moco_v3", "temperature")
    require_momentum(c.moco_v3, "moco_v3", "base_momentum")

  @classmethod
  def hyperparameters(cls, block, c, setup):
    return {**block, "total_steps": setup.total_steps}

  def loss(self, outputs, target, inputs, state):
    loss = (losses.moco_v3_loss(outputs[0]["prediction"], target[1]["embedding"],
                                temperature=self.temperature) +
            losses.moco_v3_loss(outputs[1]["prediction"], target[0]["embedding"],
                                temperature=self.temperature))
    return loss, {}, None

  def update(self, state, aux):
    # `state.step` already counts this update, so step k's EMA uses m(k - 1).
    momentum = cosine_ema_momentum(state.step - 1, self.total_steps, self.base_momentum)
    return state.replace(target_params=ema(state.target_params, state.params, momentum))
