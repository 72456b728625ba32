"""SimCLR (Chen et al. 2020): NT-Xent over the global batch of two views."""

from __future__ import annotations

import dataclasses

from jejax import losses
from jejax.methods.base import Method


@dataclasses.dataclass(frozen=True)
class SimCLR(Method):
  temperature: float = 0.1

  def loss(self, online, target, state):
    z1, z2 = online[0]["embedding"], online[1]["embedding"]
    return losses.nt_xent(z1, z2, temperature=self.temperature), {}, None
