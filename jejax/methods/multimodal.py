"""What the multimodal methods share (CLIP, SigLIP, ImageBind-style binding): towers into
one embedding space (`jejax.models.MultimodalModel`), inputs made on the device, the
learnable logit parameters as outputs, and their clamp after each update.

The step's contract asks every output to have the batch as its leading axis (gradient
accumulation splits and merges there), so the model's scalar logit parameters leave
`forward` broadcast to (B,) and the loss reads their mean: the value is the scalar's, and
each copy gets 1/B of its gradient, which sums back to the scalar's gradient however the
batch is split.

Config: `config.model.backbone` (the image tower) and its block, `config.model.text` and
`config.model.audio` (the other towers), `config.model.embed_dim` (the joint space), and
the method's block: `loss_impl` ('dense', or 'ring': the global batch's negatives one
device's block at a time, `jejax.losses.blockwise`; `chunk_size` rows per tile) and
`max_logit_scale` (100: open_clip clamps t' to [0, log 100] after every step).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jejax import audio, losses
from jejax.checks import require
from jejax.methods.base import Method, config_block
from jejax.methods.views import backbone_from_config
from jejax.models import TOWERS, MultimodalModel
from jejax.models.base import compute_dtype

LOSS_IMPLS = ("dense", "ring")


def tower_from_config(c: ml_collections.ConfigDict, name: str):
  """The registered tower `name` ('text', 'audio') with its block, in `model.dtype`."""
  return TOWERS.get(name).value(c.model[name].to_dict(), compute_dtype(c.model.dtype))


def images_to_float(images: jax.Array) -> jax.Array:
  """uint8 (B, H, W, C) -> float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def spectrogram_inputs(waveforms: jax.Array, lengths: jax.Array) -> dict[str, jax.Array]:
  """(B, T) 16 kHz waveforms and (B,) lengths of their sound -> 'audio' (B, frames, 64)
  log-mel and 'audio_valid' (B, frames) bool (`jejax.audio`)."""
  log_mel = audio.log_mel_spectrogram(waveforms)
  return {"audio": log_mel, "audio_valid": audio.valid_frames(lengths, log_mel.shape[1])}


def require_batch_keys(c: ml_collections.ConfigDict, method: str, wanted: tuple[str, ...],
                       example_batch: dict[str, Any]) -> None:
  """Raises ValueError naming the data set when its batches lack a key `method` reads."""
  missing = [k for k in wanted if k not in example_batch]
  if missing:
    raise ValueError(
        f"{method} trains on batches with {list(wanted)}; the batches of "
        f"config.data.name={c.data.name!r} lack {missing} (they hold "
        f"{sorted(example_batch)}); use 'fashion_mnist_captions' or "
        "'fashion_mnist_binding', or pass a source with those keys")


def broadcast_scalars(scalars: dict[str, jax.Array], batch_size: int) -> dict[str, jax.Array]:
  """Each () scalar as (B,) copies: outputs are batch-leading (module docstring)."""
  return {name: jnp.broadcast_to(value, (batch_size,)) for name, value in scalars.items()}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TowerMethod(Method):
  """A method on paired modalities. Attributes:
    model: the towers, projections and logit parameters (`MultimodalModel`).
    loss_impl: 'dense' or 'ring' (the same loss and gradient, the ring memory-bounded).
    chunk_size: rows per tile of the ring; None: a device's rows at once.
    mesh: the mesh of the ring's `shard_map` (the one the step is jitted over).
    max_logit_scale: the logit scales are clamped to [1, max_logit_scale] after updates.
  """
  model: MultimodalModel
  loss_impl: str = "dense"
  chunk_size: int | None = None
  mesh: Mesh | None = None
  max_logit_scale: float = 100.0
  # Whether the method runs frozen towers as such (inference mode, no gradient computed);
  # a method that does not would let a frozen tower's BatchNorm statistics drift.
  handles_frozen: ClassVar[bool] = False

  @classmethod
  def validate(cls, c):
    super().validate(c)
    b = c[cls.name]
    if not cls.handles_frozen:
      require(not c.optim.frozen, "optim.frozen", tuple(c.optim.frozen),
              f"{cls.name} trains every tower; freezing pretrained towers is what the "
              "binding method (imagebind) does")
    require(b.loss_impl in LOSS_IMPLS, f"{cls.name}.loss_impl", b.loss_impl,
            f"unknown loss implementation; known: {LOSS_IMPLS}")
    require(b.max_logit_scale >= 1, f"{cls.name}.max_logit_scale", b.max_logit_scale,
            "must be >= 1 (the clamp keeps log scales in [0, log max])")
    if b.loss_impl == "ring" and b.chunk_size:
      rows = c.batch_size // max(c.num_devices, 1)
      require(rows % b.chunk_size == 0, f"{cls.name}.chunk_size", b.chunk_size,
              f"must divide the {rows} pairs of a device")
    require(c.model.embed_dim > 0, "model.embed_dim", c.model.embed_dim, "must be positive")

  @classmethod
  def from_config(cls, c, setup):
    block = config_block(c, cls.name)
    require_batch_keys(c, cls.name, cls.batch_keys(block), setup.example_batch)
    model = MultimodalModel(image_tower=backbone_from_config(c),
                            text_tower=tower_from_config(c, "text"),
                            embed_dim=c.model.embed_dim, **cls.model_arguments(c, block))
    return cls(model=model, loss_impl=block["loss_impl"],
               chunk_size=block["chunk_size"] or None,
               mesh=setup.mesh if block["loss_impl"] == "ring" else None,
               max_logit_scale=block["max_logit_scale"], **cls.hyperparameters(c, block))

  @classmethod
  def batch_keys(cls, block: dict[str, Any]) -> tuple[str, ...]:
    """What a training batch must hold."""
    return ("image", "text", "text_mask")

  @classmethod
  def modalities(cls, c: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The modalities the model of config `c` embeds (what a command may ask of it)."""
    return ("image", "text")

  @classmethod
  def model_arguments(cls, c: ml_collections.ConfigDict, block: dict[str, Any]
                      ) -> dict[str, Any]:
    """`MultimodalModel` fields beyond the image and text towers."""
    raise NotImplementedError

  @classmethod
  def hyperparameters(cls, c: ml_collections.ConfigDict, block: dict[str, Any]
                      ) -> dict[str, Any]:
    """The dataclass fields beyond those of `TowerMethod`."""
    return {}

  def init_args(self, batch):
    inputs = self.prepare(jax.random.key(0), batch)
    return {"images": inputs["image"], "tokens": inputs["text"], "mask": inputs["text_mask"],
            "log_mel": inputs.get("audio"), "valid": inputs.get("audio_valid"),
            "train": True}

  def prepare(self, rng, batch):
    return {"image": images_to_float(batch["image"]), "text": batch["text"],
            "text_mask": batch["text_mask"]}

  def forward(self, params, batch_stats, inputs):
    outputs, mutated = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, inputs, method=self.embed,
        mutable=["batch_stats"])
    return outputs, mutated.get("batch_stats", batch_stats)

  def embed(self, model: MultimodalModel, inputs: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Inside `model.apply`: the outputs of `forward` (embeddings and broadcast logit
    parameters). Default: the image and text of each pair."""
    outputs = {"image": model.embed_image(inputs["image"], train=True),
               "text": model.embed_text(inputs["text"], inputs["text_mask"])}
    return {**outputs, **broadcast_scalars(model.logit_parameters(),
                                           inputs["image"].shape[0])}

  def infonce(self, a: jax.Array, b: jax.Array, log_scale: jax.Array) -> jax.Array:
    """CLIP's symmetric InfoNCE of the pairs (a_i, b_i) at scale exp(log_scale)."""
    temperature = jnp.exp(-log_scale)
    if self.loss_impl == "ring":
      return losses.ring_clip_loss(a, b, temperature=temperature, mesh=self.ring_mesh(),
                                   chunk_size=self.chunk_size)
    return losses.clip_loss(a, b, temperature=temperature)

  def ring_mesh(self):
    mesh = self.mesh if self.mesh is not None else jax.sharding.get_abstract_mesh()
    if mesh.empty:
      raise ValueError(f"{self.name}: loss_impl='ring' needs a mesh (mesh=... or jax.set_mesh)")
    return mesh

  def update(self, state, aux):
    # open_clip: logit_scale.clamp_(0, log(100)) after every optimizer step, so the scale
    # can always come back down (a clamp inside the loss would stop its gradient).
    top = float(np.log(self.max_logit_scale))
    params = {**state.params, **{name: jnp.clip(state.params[name], 0.0, top)
                                 for name in ("logit_scale", "audio_logit_scale")
                                 if name in state.params}}
    return state.replace(params=params)

  def embedding(self, outputs):
    return outputs["image"]

  def features(self, variables, images):
    return self.model.apply(variables, images, method="image_features")


def mean_scalar(outputs: dict[str, jax.Array], name: str) -> jax.Array:
  """The () logit parameter `name` of the outputs (broadcast to (B,) by `forward`)."""
  return jnp.mean(outputs[name])
