"""I-JEPA's networks (Assran et al. 2023): a ViT context encoder and a narrow ViT predictor;
the target encoder is an EMA copy of the context encoder's params, run by `target`."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jejax.models.vit import Transformer, ViT, masked_mean, sincos_2d


def gather_tokens(tokens: jax.Array, indices: jax.Array) -> jax.Array:
  """(B, N, D) tokens at (B, ...) indices -> (B, ..., D)."""
  flat = indices.reshape(indices.shape[0], -1)  # (B, K)
  picked = jnp.take_along_axis(tokens, flat[..., None], axis=1)  # (B, K, D)
  return picked.reshape(*indices.shape, tokens.shape[-1])


class Predictor(nn.Module):
  """I-JEPA's predictor: the context tokens, projected to `width`, plus one shared mask
  token per target position, each with the fixed sin-cos embedding of its position, go
  through `depth` blocks; the mask tokens' outputs are projected back to the encoder's
  width. As the reference, each target block is predicted in a sequence of its own
  (context + that block's mask tokens).

  Attributes:
    width, depth, num_heads: the predictor's transformer (the paper's ViT-H/14: 384, 12;
      the heads as the encoder's).
    out_width: the encoder's width.
  """
  width: int
  depth: int
  num_heads: int
  out_width: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, context: jax.Array, context_ids: jax.Array, context_valid: jax.Array,
               target_ids: jax.Array, target_valid: jax.Array,
               grid: tuple[int, int]) -> jax.Array:
    """context (B, Kc, D), context_ids / context_valid (B, Kc), target_ids / target_valid
    (B, M, Kt) -> predictions (B, M, Kt, out_width)."""
    b, m, kt = target_ids.shape
    kc = context_ids.shape[1]
    positions = jnp.asarray(sincos_2d(self.width, *grid), self.dtype)  # (N, width)
    x = nn.Dense(self.width, dtype=self.dtype, name="embed")(context) + positions[context_ids]
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (self.width,))
    queries = mask_token.astype(self.dtype) + positions[target_ids]  # (B, M, Kt, width)
    x = jnp.broadcast_to(x[:, None], (b, m, kc, self.width))
    sequence = jnp.concatenate([x, queries], axis=2).reshape(b * m, kc + kt, self.width)
    valid = jnp.concatenate([jnp.broadcast_to(context_valid[:, None], (b, m, kc)),
                             target_valid], axis=2).reshape(b * m, kc + kt)
    out = Transformer(self.depth, self.num_heads, 4 * self.width, dtype=self.dtype,
                      name="transformer")(sequence, valid)
    out = nn.Dense(self.out_width, dtype=self.dtype, name="project")(out[:, kc:])
    return out.reshape(b, m, kt, self.out_width)


class IJEPAModel(nn.Module):
  """The online networks: params {'encoder': ..., 'predictor': ...}.

  `__call__` encodes the context tokens and predicts the target blocks; `target` is the
  target encoder's view of the whole image (its params are {'encoder': EMA params});
  `features` the frozen representation for evaluation (mean of the encoder's outputs over
  all patches, as the paper's linear probes on average-pooled tokens).
  """
  encoder: ViT
  predictor: Predictor

  def __call__(self, image: jax.Array, context: jax.Array, context_valid: jax.Array,
               targets: jax.Array, targets_valid: jax.Array) -> dict[str, jax.Array]:
    """image (B, H, W, C) in [0, 1] and the masks of `jejax.augment.masks.ijepa_mask` ->
    'prediction' (B, M, Kt, D) float32 and 'embedding' (B, D), the mean of the context
    encoder's outputs (for the step's collapse diagnostics)."""
    tokens = gather_tokens(self.encoder.embed(image), context)  # (B, Kc, D)
    encoded = self.encoder.transform(tokens, context_valid)
    prediction = self.predictor(encoded, context, context_valid, targets, targets_valid,
                                self.encoder.grid(image.shape))
    return {"prediction": prediction.astype(jnp.float32),
            "embedding": masked_mean(encoded, context_valid).astype(jnp.float32)}

  def target(self, image: jax.Array, targets: jax.Array) -> jax.Array:
    """(B, M, Kt, D) float32: the whole image's encoder outputs, normalised by a
    parameter-free LayerNorm over the channels (as the reference's `F.layer_norm`), at
    the target tokens."""
    encoded = self.encoder.transform(self.encoder.embed(image)).astype(jnp.float32)
    mean = encoded.mean(axis=-1, keepdims=True)
    var = encoded.var(axis=-1, keepdims=True)
    normalised = (encoded - mean) * jax.lax.rsqrt(var + 1e-5)
    return gather_tokens(normalised, targets)

  def features(self, image: jax.Array) -> jax.Array:
    return self.encoder(image).astype(jnp.float32)
