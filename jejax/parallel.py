"""Device mesh and shardings.

Every array that training touches lives on one `Mesh` with a single data-parallel axis,
also on one device, so the same jitted step serves a laptop CPU and a pod.

The mesh axes are `AxisType.Auto`: under `jax.jit` the program is written for the global
batch and XLA's partitioner inserts the collectives (all-gathers for the contrastive
similarity matrix, all-reduces for batch statistics). With Explicit axes, the default of
`jax.make_mesh` in recent JAX, `z1 @ z2.T` on two batch-sharded arrays is a sharding type
error; Auto keeps losses written as plain global-batch math, which is what the tests check
against one-device references.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D data-parallel mesh over the first `num_devices` devices (all by default)."""
  devices = jax.devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devices):
      raise ValueError(f"num_devices={num_devices}, but {len(devices)} devices are visible")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the data axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (params, optimizer state, method state)."""
  return NamedSharding(mesh, P())


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places every leaf of `tree` on every device of `mesh`."""
  return jax.device_put(tree, replicated(mesh))


def check_batch_divisible(global_batch_size: int, mesh: Mesh) -> None:
  """The global batch must split evenly over the data axis."""
  n = mesh.shape[DATA_AXIS]
  if global_batch_size % n:
    raise ValueError(
        f"global batch size {global_batch_size} is not divisible by the {n} devices of the "
        "data axis; choose a multiple")
