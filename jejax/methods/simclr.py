"""SimCLR (Chen et al. 2020): NT-Xent over the global batch of two views."""

from __future__ import annotations

import dataclasses

import jax
from jax.sharding import Mesh

from jejax import losses
from jejax.methods.base import Method

LOSS_IMPLS = ("dense", "chunked", "ring")


@dataclasses.dataclass(frozen=True)
class SimCLR(Method):
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

  def loss(self, online, target, state):
    z1, z2 = online[0]["embedding"], online[1]["embedding"]
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
