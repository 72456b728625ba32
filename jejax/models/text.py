"""The text tower: a transformer over byte tokens (CLIP's text encoder, small).

Tokens are UTF-8 bytes plus pad, begin and end (`jejax.data.tokenizer`, 259 ids): the
machines that build jejax reach only package registries, so there is no BPE vocabulary
to download, and the captions and prompts are short ASCII, where a byte is a character
(ByT5, Xue et al. 2022, shows byte-level models hold up on short text). The cost of bytes,
longer sequences, is small at caption length.

The network (Radford et al. 2021, sec. 2.4, without the causal mask): a learned token
embedding plus fixed 1-D sin-cos positions, pre-norm blocks (the ViT's, `vit.Transformer`)
with the padding masked out of attention, a final LayerNorm, and the output at the end
token (CLIP's [EOS] features; 'end') or the mean over the real tokens ('mean'). Padding
never reaches a real token, so a caption's features do not depend on how much padding
follows it.

Example:
  >>> tokens, mask = tokenizer.encode(['a dark sandal'], max_length=72)
  >>> TextTransformer(vocab_size=259).init_with_output(key, tokens, mask)[0].shape
  (1, 128)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jejax.models.base import TOWERS
from jejax.models.vit import Transformer, masked_mean, sincos_1d

POOLS = ("end", "mean")


class TextTransformer(nn.Module):
  """Attributes:
    vocab_size: token ids lie in [0, vocab_size).
    width, depth, num_heads: the transformer's size; the MLP is `mlp_ratio` x width.
    pool: 'end' (the output at the last real token, CLIP's) or 'mean' (over real tokens).
    dtype: compute dtype; params stay float32.

  Input: tokens (B, L) int32 and mask (B, L) bool, True on real tokens (begin, bytes,
  end), which come first in each row. Output (B, width) float32.
  """
  vocab_size: int
  context_length: int = 72
  width: int = 128
  depth: int = 3
  num_heads: int = 4
  mlp_ratio: int = 4
  pool: str = "end"
  dtype: Any = jnp.float32

  def setup(self):
    if self.pool not in POOLS:
      raise ValueError(f"pool={self.pool!r}: one of {POOLS}")
    self.token_embed = nn.Embed(self.vocab_size, self.width,
                                embedding_init=nn.initializers.normal(0.02))
    self.encoder = Transformer(self.depth, self.num_heads, self.mlp_ratio * self.width,
                               dtype=self.dtype)

  def encode(self, tokens: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The token level (what a fusion module reads): (B, L) tokens and mask -> outputs
    (B, L', width) in `dtype` and their mask (B, L'), L' = min(L, context_length)."""
    tokens, mask = tokens[:, :self.context_length], mask[:, :self.context_length]
    length = tokens.shape[1]
    x = self.token_embed(tokens)  # (B, L, width)
    x = (x + sincos_1d(self.width, np.arange(length)).astype(np.float32)).astype(self.dtype)
    return self.encoder(x, mask), mask

  def __call__(self, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    x, mask = self.encode(tokens, mask)
    if self.pool == "mean":
      return masked_mean(x, mask).astype(jnp.float32)
    end = jnp.sum(mask, axis=1) - 1  # (B,) index of the end token
    return jnp.take_along_axis(x, end[:, None, None], axis=1)[:, 0].astype(jnp.float32)


# vocab_size: that of `jejax.data.tokenizer` (bytes, pad, begin, end); tested to agree.
@TOWERS.register("text", {"vocab_size": 259, "context_length": 72, "width": 128,
                          "depth": 3, "num_heads": 4, "pool": "end"})
def _build(block, dtype) -> TextTransformer:
  return TextTransformer(vocab_size=block["vocab_size"],
                         context_length=block["context_length"], width=block["width"],
                         depth=block["depth"], num_heads=block["num_heads"],
                         pool=block["pool"], dtype=dtype)
