"""The network every method trains: backbone -> projector -> (predictor, prototypes)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jejax.models.heads import MLP, Prototypes


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / ||x||, safe at zero (the norm is floored at sqrt(eps))."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps))


class SSLModel(nn.Module):
  """Backbone features, projected embeddings, and the optional heads a method needs.

  Returns a dict for input (B, H, W, C):
    'features'   (B, F)  the representation evaluated by kNN and linear probes,
    'embedding'  (B, D)  the projector output the SSL loss sees,
    'prediction' (B, D)  predictor output (BYOL, SimSiam), when `predictor` is set,
    'scores'     (B, K)  prototype scores of the L2-normalised embedding (SwAV).
  """
  backbone: nn.Module
  projector: MLP
  predictor: MLP | None = None
  num_prototypes: int = 0

  def setup(self):
    if self.num_prototypes:
      self.prototypes = Prototypes(self.num_prototypes)

  def __call__(self, x: jax.Array, train: bool = True) -> dict[str, jax.Array]:
    features = self.backbone(x, train)
    embedding = self.projector(features, train)
    out = {"features": features, "embedding": embedding}
    if self.predictor is not None:
      out["prediction"] = self.predictor(embedding, train)
    if self.num_prototypes:
      out["scores"] = self.prototypes(l2_normalize(embedding))
    return out

  def encode(self, x: jax.Array) -> jax.Array:
    """Frozen-encoder features for evaluation (BatchNorm in inference mode)."""
    return self.backbone(x, train=False)
