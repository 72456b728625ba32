"""The network every method trains: backbone -> projector -> (predictor, prototypes)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jejax.models.heads import MLP, Prototypes
from jejax.numerics import l2_normalize


class SSLModel(nn.Module):
  """Backbone features, projected embeddings, and the optional heads a method needs.

  Returns a dict for input (B, H, W, C):
    'features'   (B, F)  the representation evaluated by kNN and linear probes,
    'embedding'  (B, D)  the projector output the SSL loss sees,
    'prediction' (B, D)  predictor output (BYOL, SimSiam), when `predictor` is set,
    'scores'     (B, K)  prototype scores of the L2-normalised embedding (SwAV).

  Mixed precision: the parts compute in their own `dtype` (bfloat16 under
  `model.dtype='bfloat16'`), but every output is float32, so every loss (contrastive
  logits, Sinkhorn, covariances, DINO's softmax) and every reduction runs in float32
  whatever the parts compute in. The prototype layer runs in float32 too: its scores are
  divided by temperatures as small as 0.04 (DINO) and Sinkhorn's epsilon 0.05, which
  would turn bfloat16's rounding of a cosine (relative 2^-8) into ~0.1 of a logit.
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
    embedding = self.projector(features, train).astype(jnp.float32)
    out = {"features": features.astype(jnp.float32), "embedding": embedding}
    if self.predictor is not None:
      out["prediction"] = self.predictor(embedding, train).astype(jnp.float32)
    if self.num_prototypes:
      out["scores"] = self.prototypes(l2_normalize(embedding))
    return out

  def encode(self, x: jax.Array) -> jax.Array:
    """Frozen-encoder features for evaluation (BatchNorm in inference mode), float32."""
    return self.backbone(x, train=False).astype(jnp.float32)
