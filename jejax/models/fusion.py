"""Cross-modal fusion: several modalities' tokens -> one (B, width) feature.

One interface for every fusion module: a mapping from modality name to `Tokens`, a
(B, T_m, D_m) token array with its (B, T_m) bool validity mask (True on real tokens,
False on padding). Pooled features are the T = 1 case (`pooled`). Each modality has its
own width D_m; every module projects each modality with its own parameters, named by
the modality (`project_<name>`), so the result does not depend on the order of the
mapping, and padding never reaches the output (tested).

- `ConcatFusion` ('concat'): each modality's masked mean over its tokens, layer-normed,
  concatenated in name order, then an MLP (late fusion by concatenation).
- `AttentionPoolFusion` ('attention_pool'): each modality's masked mean, projected to
  `width`; a learned query scores each modality, a softmax over the modalities present
  weighs them (attention-based late fusion, as in Hori et al. 2017's attention over
  modalities). The pool is a symmetric function of the modalities (`attention_pool`):
  only the per-modality projections tell them apart. A modality with no valid token in an
  example is left out of that example's softmax.
- `CrossAttentionFusion` ('cross_attention'): the query modality's tokens (text) pass
  through pre-norm blocks of self-attention, cross-attention to the context modalities'
  tokens (image patches) and an MLP (a transformer decoder block without the causal
  mask; the co-attention layers of ViLBERT, Lu et al. 2019, one way; Flamingo's gated
  cross-attention, Alayrac et al. 2022, without the gate), padding masked out of every
  attention as keys, then the masked mean over the valid query tokens.

Each is registered in `FUSIONS` with its default settings, so a config picks one by name:
`FUSIONS.get('cross_attention').value(block, dtype)`. (No `jejax.main` method trains a
fusion model yet, so `jejax.config.base_config` holds no fusion blocks;
`experiments/fusion_qa.py` builds them from the defaults.)

Example:
  >>> fusion = CrossAttentionFusion(width=64, depth=1, num_heads=2)
  >>> inputs = {"text": Tokens(text_tokens, text_mask), "image": Tokens(patches, ones)}
  >>> fusion.init_with_output(key, inputs)[0].shape
  (B, 64)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jejax.models.base import FUSIONS
from jejax.models.vit import MLPBlock, masked_mean


class Tokens(NamedTuple):
  """One modality's input to a fusion module.

  Attributes:
    tokens: (B, T, D) float.
    valid: (B, T) bool, True on real tokens.
  """
  tokens: jax.Array
  valid: jax.Array


def pooled(features: jax.Array) -> Tokens:
  """(B, D) pooled features -> `Tokens` of one valid token, (B, 1, D) and (B, 1)."""
  return Tokens(features[:, None, :], jnp.ones(features.shape[:1] + (1,), bool))


def _check(inputs: Mapping[str, Tokens]) -> None:
  """Shapes that agree: (B, T_m, D_m) tokens, (B, T_m) masks, one batch size."""
  if not inputs:
    raise ValueError("a fusion module needs at least one modality")
  batch = {name: x.tokens.shape[0] for name, x in inputs.items()}
  if len(set(batch.values())) > 1:
    raise ValueError(f"the modalities' batch sizes differ: {batch}")
  for name, x in inputs.items():
    if x.tokens.ndim != 3 or x.valid.shape != x.tokens.shape[:2]:
      raise ValueError(f"modality {name!r}: tokens must be (B, T, D) with a (B, T) mask, got "
                       f"{x.tokens.shape} and {x.valid.shape}")


def _layer_norm(name: str | None = None, dtype: Any = jnp.float32) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=1e-6, dtype=dtype, name=name)


def attention_pool(query: jax.Array, features: jax.Array,
                   present: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Softmax-weighted sum over modalities, scored by a query.

  Args:
    query: (D,).
    features: (B, M, D), one feature per modality.
    present: (B, M) bool; a modality that is absent gets weight 0.

  Returns:
    pooled (B, D) = sum_m w_m features_m, and the weights (B, M):
    w = softmax_m(features_m . query / sqrt(D)) over the present modalities (all 0 in an
    example with none). Permuting the M axis of `features` and `present` permutes the
    weights and leaves the pooled features unchanged.
  """
  scores = features @ query / jnp.sqrt(features.shape[-1]).astype(features.dtype)  # (B, M)
  scores = jnp.where(present, scores, jnp.finfo(scores.dtype).min)
  weights = jax.nn.softmax(scores, axis=-1) * present  # exactly 0 where absent
  return jnp.einsum("bm,bmd->bd", weights, features), weights


class ConcatFusion(nn.Module):
  """Masked mean per modality, LayerNorm, concatenation (name order), MLP.

  Attributes:
    width: output width.
    hidden: the MLP's hidden width.
    dtype: compute dtype; params and the output stay float32.
  """
  width: int = 128
  hidden: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: Mapping[str, Tokens]) -> jax.Array:
    _check(inputs)
    features = [_layer_norm(f"norm_{name}", self.dtype)(
        masked_mean(inputs[name].tokens, inputs[name].valid))
        for name in sorted(inputs)]  # each (B, D_m)
    x = jnp.concatenate(features, axis=-1)  # (B, sum D_m)
    x = nn.gelu(nn.Dense(self.hidden, dtype=self.dtype, name="hidden")(x), approximate=False)
    return nn.Dense(self.width, dtype=self.dtype, name="out")(x).astype(jnp.float32)


class AttentionPoolFusion(nn.Module):
  """Masked mean per modality, its own projection and LayerNorm, then `attention_pool`
  with a learned query. The weights are sown as `intermediates/modality_weights` (B, M),
  modalities in name order (`apply(..., mutable=['intermediates'])` reads them).

  Attributes:
    width: output width (and the projections').
  """
  width: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: Mapping[str, Tokens]) -> jax.Array:
    _check(inputs)
    names = sorted(inputs)
    features = jnp.stack([_layer_norm(f"norm_{name}", self.dtype)(
        nn.Dense(self.width, dtype=self.dtype, name=f"project_{name}")(
            masked_mean(inputs[name].tokens, inputs[name].valid)))
        for name in names], axis=1)  # (B, M, width)
    present = jnp.stack([inputs[name].valid.any(axis=1) for name in names], axis=1)  # (B, M)
    query = self.param("query", nn.initializers.normal(1.0), (self.width,))
    out, weights = attention_pool(query.astype(features.dtype), features, present)
    self.sow("intermediates", "modality_weights", weights)
    return out.astype(jnp.float32)


class CrossAttentionBlock(nn.Module):
  """Pre-norm: queries' self-attention, cross-attention to the context, MLP; each with a
  residual. Padding is masked out as keys; a padded query's own output is computed and
  meant to be ignored. An example without any valid context token gets no
  cross-attention update (rather than a uniform average over padding)."""
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, x_valid: jax.Array, context: jax.Array,
               context_valid: jax.Array) -> jax.Array:
    attention = lambda name: nn.MultiHeadDotProductAttention(  # noqa: E731
        num_heads=self.num_heads, dtype=self.dtype, deterministic=True, name=name,
        kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.zeros)
    y = _layer_norm("norm_self", self.dtype)(x)
    x = x + attention("self_attention")(y, y, mask=x_valid[:, None, None, :])
    y = _layer_norm("norm_query", self.dtype)(x)
    c = _layer_norm("norm_context", self.dtype)(context)
    y = attention("cross_attention")(y, c, mask=context_valid[:, None, None, :])
    x = x + y * context_valid.any(axis=1)[:, None, None].astype(y.dtype)
    return x + MLPBlock(self.mlp_dim, dtype=self.dtype)(_layer_norm("norm_mlp", self.dtype)(x))


class CrossAttentionFusion(nn.Module):
  """Query tokens attend to context tokens through `depth` blocks; masked mean of the
  outputs at the valid query tokens.

  Attributes:
    width, depth, num_heads: the blocks' size; the MLP is `mlp_ratio` x width.
    query: the modality whose tokens are the queries ('text').
    context: the modalities whose tokens, concatenated, are the keys and values
      ('image',). The inputs must be exactly `query` and `context`.
  """
  width: int = 128
  depth: int = 2
  num_heads: int = 4
  mlp_ratio: int = 4
  query: str = "text"
  context: tuple[str, ...] = ("image",)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: Mapping[str, Tokens]) -> jax.Array:
    _check(inputs)
    expected = {self.query, *self.context}
    if set(inputs) != expected:
      raise ValueError(f"cross-attention fusion takes the modalities {sorted(expected)} "
                       f"(query {self.query!r}), got {sorted(inputs)}")
    project = lambda name: nn.Dense(self.width, dtype=self.dtype,  # noqa: E731
                                    name=f"project_{name}")(inputs[name].tokens)
    x, x_valid = project(self.query), inputs[self.query].valid  # (B, T_q, width)
    context = jnp.concatenate([project(name) for name in self.context], axis=1)
    context_valid = jnp.concatenate([inputs[name].valid for name in self.context], axis=1)
    for i in range(self.depth):
      x = CrossAttentionBlock(self.num_heads, self.mlp_ratio * self.width, dtype=self.dtype,
                              name=f"block_{i}")(x, x_valid, context, context_valid)
    x = _layer_norm("norm", self.dtype)(x)
    return masked_mean(x, x_valid).astype(jnp.float32)


@FUSIONS.register("concat", {"width": 128, "hidden": 256})
def _build_concat(block, dtype) -> ConcatFusion:
  return ConcatFusion(width=block["width"], hidden=block["hidden"], dtype=dtype)


@FUSIONS.register("attention_pool", {"width": 128})
def _build_attention_pool(block, dtype) -> AttentionPoolFusion:
  return AttentionPoolFusion(width=block["width"], dtype=dtype)


@FUSIONS.register("cross_attention", {"width": 128, "depth": 2, "num_heads": 4,
                                      "query": "text", "context": ("image",)})
def _build_cross_attention(block, dtype) -> CrossAttentionFusion:
  return CrossAttentionFusion(width=block["width"], depth=block["depth"],
                              num_heads=block["num_heads"], query=block["query"],
                              context=tuple(block["context"]), dtype=dtype)
