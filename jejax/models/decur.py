"""DeCUR's network (Wang et al. 2024, "Decoupling Common and Unique Representations for
Multimodal Self-supervised Learning"): an encoder per modality, each followed by a
projector of its own into one D-d space whose first K dimensions the loss makes common
to the modalities and the rest unique to each (`jejax.losses.decur_loss`).

The image encoder is any registered backbone, the other a registered tower (text or
audio, `jejax.models.text`, `jejax.models.audio`). The projectors are Barlow Twins' MLP
(Linear-BN-ReLU hidden layers, then linear; the authors' is 8192-8192-8192). The
authors' code builds its two projectors from one list of layers, so both modalities
share one projector; here each has its own, as the paper describes.

Parameter names: `image_tower/...`, `image_projector/...`, and `text_tower/...`,
`text_projector/...` or `audio_tower/...`, `audio_projector/...`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jejax.models.heads import MLP


class DecurModel(nn.Module):
  """Attributes:
    image_tower: (B, H, W, C) images in [0, 1] -> (B, F); `train` selects BatchNorm's
      batch or running statistics where it has any.
    text_tower: (tokens (B, L), mask (B, L)) -> (B, F_t), or None.
    audio_tower: (log-mel (B, T, M), valid frames (B, T)) -> (B, F_a), or None; exactly
      one of text_tower and audio_tower is set.
    projector_hidden, embed_dim: every projector's hidden widths and output width D.
    dtype: the projectors' compute dtype (outputs are returned float32).
  """
  image_tower: nn.Module
  text_tower: nn.Module | None = None
  audio_tower: nn.Module | None = None
  projector_hidden: tuple[int, ...] = (512,)
  embed_dim: int = 512
  dtype: Any = jnp.float32

  def setup(self):
    if (self.text_tower is None) == (self.audio_tower is None):
      raise ValueError("DecurModel pairs images with one other modality: give text_tower "
                       "or audio_tower")
    projector = lambda name: MLP(self.projector_hidden, self.embed_dim,  # noqa: E731
                                 dtype=self.dtype, name=name)
    self.image_projector = projector("image_projector")
    if self.text_tower is not None:
      self.text_projector = projector("text_projector")
    else:
      self.audio_projector = projector("audio_projector")

  def image_features(self, images: jax.Array, train: bool = False) -> jax.Array:
    """(B, H, W, C) -> (B, F) float32 image-tower features (what kNN and probes read)."""
    return self.image_tower(images, train).astype(jnp.float32)

  def embed_image(self, images: jax.Array, train: bool = False) -> jax.Array:
    """(B, H, W, C) -> (B, D) float32 projector output."""
    return self.image_projector(self.image_features(images, train), train).astype(jnp.float32)

  def embed_text(self, tokens: jax.Array, mask: jax.Array, train: bool = False) -> jax.Array:
    """(B, L) tokens and mask -> (B, D) float32."""
    features = self.text_tower(tokens, mask).astype(jnp.float32)
    return self.text_projector(features, train).astype(jnp.float32)

  def embed_audio(self, log_mel: jax.Array, valid: jax.Array, train: bool = False) -> jax.Array:
    """(B, T, M) log-mel and (B, T) valid frames -> (B, D) float32."""
    features = self.audio_tower(log_mel, valid).astype(jnp.float32)
    return self.audio_projector(features, train).astype(jnp.float32)

  def __call__(self, images: jax.Array, tokens: jax.Array | None = None,
               mask: jax.Array | None = None, log_mel: jax.Array | None = None,
               valid: jax.Array | None = None, train: bool = True) -> dict[str, jax.Array]:
    """The embeddings of the inputs given (what `init` needs)."""
    out = {"image": self.embed_image(images, train)}
    if self.text_tower is not None:
      out["text"] = self.embed_text(tokens, mask, train)
    else:
      out["audio"] = self.embed_audio(log_mel, valid, train)
    return out
