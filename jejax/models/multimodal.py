"""Several towers into one embedding space, with the loss's learnable parameters.

The model of CLIP (Radford et al. 2021), SigLIP (Zhai et al. 2023) and ImageBind-style
binding (Girdhar et al. 2023): an image tower (any registered backbone), a text tower
and optionally an audio tower, each followed by a linear projection without bias into
the joint `embed_dim`-d space (CLIP's W_i, W_t). The logit scale (and SigLIP's bias) are
parameters of the model, as in big_vision's two-tower model (`t`, `b`) and open_clip's
`logit_scale`, so they train with the towers; `jejax.train.optim` keeps weight decay off
them by name.

Parameter names: `image_tower/...` (a frozen image tower is `optim.frozen=("^image_tower/",)`),
`text_tower/...`, `audio_tower/...`, `*_projection/kernel`, `logit_scale` (log of the
scale, CLIP's t'), `logit_bias` (SigLIP), `audio_logit_scale` (binding's audio-image pair;
ImageBind keeps it fixed at 20).

Embeddings are returned unnormalised and float32; the losses and zero-shot evaluation
normalise them.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class MultimodalModel(nn.Module):
  """Attributes:
    image_tower: (B, H, W, C) images in [0, 1] -> (B, F) features; `train` selects
      BatchNorm's batch or running statistics where it has any.
    text_tower: (tokens (B, L), mask (B, L)) -> (B, F_t).
    audio_tower: (log-mel (B, T, M), valid frames (B, T)) -> (B, F_a), or None.
    embed_dim: the joint embedding's width.
    logit_scale_init: initial t' (the scale is exp t'): log(1 / 0.07) for CLIP, log 10 for
      SigLIP.
    logit_bias_init: SigLIP's initial bias (-10); None: no bias.
    audio_logit_scale_init: initial t' of the audio pair (log 20 in ImageBind); used
      when there is an audio tower.
  """
  image_tower: nn.Module
  text_tower: nn.Module
  audio_tower: nn.Module | None = None
  embed_dim: int = 128
  logit_scale_init: float = float(np.log(1 / 0.07))
  logit_bias_init: float | None = None
  audio_logit_scale_init: float = float(np.log(20.0))

  def setup(self):
    dense = lambda name: nn.Dense(self.embed_dim, use_bias=False, name=name)  # noqa: E731
    self.image_projection = dense("image_projection")
    self.text_projection = dense("text_projection")
    scalar = lambda value: nn.initializers.constant(value)  # noqa: E731
    self.logit_scale = self.param("logit_scale", scalar(self.logit_scale_init), ())
    if self.logit_bias_init is not None:
      self.logit_bias = self.param("logit_bias", scalar(self.logit_bias_init), ())
    if self.audio_tower is not None:
      self.audio_projection = dense("audio_projection")
      self.audio_logit_scale = self.param("audio_logit_scale",
                                          scalar(self.audio_logit_scale_init), ())

  def image_features(self, images: jax.Array, train: bool = False) -> jax.Array:
    """(B, H, W, C) -> (B, F) float32 image-tower features (what kNN and probes read)."""
    return self.image_tower(images, train).astype(jnp.float32)

  def embed_image(self, images: jax.Array, train: bool = False) -> jax.Array:
    """(B, H, W, C) -> (B, embed_dim) float32."""
    return self.image_projection(self.image_features(images, train))

  def embed_text(self, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    """(B, L) tokens and mask -> (B, embed_dim) float32."""
    return self.text_projection(self.text_tower(tokens, mask).astype(jnp.float32))

  def embed_audio(self, log_mel: jax.Array, valid: jax.Array) -> jax.Array:
    """(B, T, M) log-mel and (B, T) valid frames -> (B, embed_dim) float32."""
    return self.audio_projection(self.audio_tower(log_mel, valid).astype(jnp.float32))

  def logit_parameters(self) -> dict[str, jax.Array]:
    """The loss's scalars: 'logit_scale' (t'), and 'logit_bias', 'audio_logit_scale'
    where the model has them."""
    out = {"logit_scale": self.logit_scale}
    if self.logit_bias_init is not None:
      out["logit_bias"] = self.logit_bias
    if self.audio_tower is not None:
      out["audio_logit_scale"] = self.audio_logit_scale
    return out

  def __call__(self, images: jax.Array, tokens: jax.Array, mask: jax.Array,
               log_mel: jax.Array | None = None, valid: jax.Array | None = None,
               train: bool = True) -> dict[str, jax.Array]:
    """Every embedding of the inputs given, and the logit parameters (what `init` needs)."""
    out = {"image": self.embed_image(images, train), "text": self.embed_text(tokens, mask),
           **self.logit_parameters()}
    if self.audio_tower is not None and log_mel is not None:
      out["audio"] = self.embed_audio(log_mel, valid)
    return out
