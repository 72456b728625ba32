"""SimCLR (Chen et al. 2020): NT-Xent over the global batch of two views."""

from __future__ import annotations

import dataclasses

import jax
from jax.sharding import Mesh

from jejax import losses
from jejax.checks import require, require_temperature
from jejax.methods.base import register_method
from jejax.methods.views import ViewMethod

LOSS_IMPLS = ("dense", "chunked", "ring")


@register_method("simclr", {"temperature": 0.1, "loss_impl": "dense", "chunk_size": 0})
@dataclasses.dataclass(frozen=True, kw_only=True)
class SimCLR(ViewMethod):
  """SimCLR's loss, computed one of three ways that give the same value and gradient:

  'dense'    the (2B, 2B) logits at once (`losses.nt_xent`);
  'chunked'  `chunk_size` anchors at a time (`losses.chunked_nt_xent`), for one big device;
  'ring'     each device's rows against key blocks passed round `mesh`'s data axis
             (`losses.ring_nt_xent`), tiled by `chunk_size` rows if it is set.

  The ring is a `shard_map`, which needs the mesh at trace time. Under `jax.jit` over
  Auto-axis `NamedSharding`s no mesh is in context (`get_abstract_mesh()` is empty unless
  the caller wraps the step in `jax.set_mesh`), so the method carries it, the same mesh
  the step is jitted over; without one it falls back to the context mesh.
  """
  temperature: float = 0.1
  loss_impl: str = "dense"
  chunk_size: int | None = None
  mesh: Mesh | None = None

  def __post_init__(self):
    if self.loss_impl not in LOSS_IMPLS:
      raise ValueError(f"loss_impl={self.loss_impl!r}: unknown; known: {LOSS_IMPLS}")
    if self.loss_impl == "chunked" and not self.chunk_size:
      raise ValueError("loss_impl='chunked' needs a chunk_size")

  @classmethod
  def validate(cls, c):
    super().validate(c)
    s = c.simclr
    require_temperature(s, "simclr", "temperature")
    require(s.loss_impl in LOSS_IMPLS, "simclr.loss_impl", s.loss_impl,
            f"unknown loss implementation; known: {LOSS_IMPLS}")
    if s.loss_impl != "dense":
      ring = s.loss_impl == "ring"
      anchors = 2 * c.batch_size // (max(c.num_devices, 1) if ring else 1)
      require((ring and s.chunk_size == 0) or (s.chunk_size > 0 and anchors % s.chunk_size == 0),
              "simclr.chunk_size", s.chunk_size,
              f"must divide the {anchors} anchors of {'a device' if ring else 'the batch'}")

  @classmethod
  def hyperparameters(cls, block, c, setup):
    # The ring's shard_map runs over the mesh the step is jitted over.
    return {**block, "chunk_size": block["chunk_size"] or None,
            "mesh": setup.mesh if block["loss_impl"] == "ring" else None}

  def loss(self, outputs, target, inputs, state):
    z1, z2 = outputs[0]["embedding"], outputs[1]["embedding"]
    if self.loss_impl == "chunked":
      loss = losses.chunked_nt_xent(z1, z2, temperature=self.temperature,
                                    chunk_size=self.chunk_size)
    elif self.loss_impl == "ring":
      loss = losses.ring_nt_xent(z1, z2, temperature=self.temperature, mesh=self._ring_mesh(),
                                 chunk_size=self.chunk_size)
    else:
      loss = losses.nt_xent(z1, z2, temperature=self.temperature)
    return loss, {}, None

  def _ring_mesh(self):
    mesh = self.mesh if self.mesh is not None else jax.sharding.get_abstract_mesh()
    if mesh.empty:
      raise ValueError("loss_impl='ring' needs a mesh: SimCLR(mesh=...) or jax.set_mesh")
    return mesh
