"""Device mesh and shardings.

Every array that training touches lives on one `Mesh` with a single data-parallel axis,
also on one device, so the same jitted step serves a laptop CPU and a pod.

The mesh axes are `AxisType.Auto`: under `jax.jit` the program is written for the global
batch and XLA's partitioner inserts the collectives (all-gathers for the contrastive
similarity matrix, all-reduces for batch statistics). With Explicit axes, the default of
`jax.make_mesh` in recent JAX, `z1 @ z2.T` on two batch-sharded arrays is a sharding type
error; Auto keeps losses written as plain global-batch math, which is what the tests check
against one-device references.

Several processes (hosts of a TPU pod or GPU cluster, or processes on one machine) join
one run through `initialize_distributed`; after it, `jax.devices()` lists the devices of
every process, the mesh spans them all, and each process feeds and reads only its own
devices' shards (`jejax.data.process_rows`, `to_host`).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins this process to a multi-process run (`jax.distributed.initialize`).

  Must run in every process before anything touches a device (JAX fixes the device list
  when its backend starts). Arguments left None are detected by JAX from the environment:
  Cloud TPU pods, SLURM, Open MPI and Kubernetes jobs need none of them, and
  `JAX_COORDINATOR_ADDRESS` stands in for `coordinator_address`. Elsewhere all three are
  needed: the 'host:port' of process 0 (the port free on it and the same for all), the
  number of processes, and this process's id in [0, num_processes).

  Calling it again in an initialized process does nothing, so a program may train
  several times. On CPU, cross-process collectives go through gloo, the default of
  `jax_cpu_collectives_implementation` in jax >= 0.5; nothing needs setting.
  """
  if jax.distributed.is_initialized():
    return
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  except RuntimeError as e:
    raise RuntimeError(
        "jax.distributed.initialize failed; it must run before any JAX computation or "
        "device query in this process (call jejax.train.loop.train, or "
        f"jejax.parallel.initialize_distributed, first): {e}") from e
  except ValueError as e:
    layout = {"coordinator_address": coordinator_address, "num_processes": num_processes,
              "process_id": process_id}
    raise ValueError(
        f"jax.distributed.initialize refused the process layout {layout}: {e}. Where JAX "
        "cannot read it from the environment (Cloud TPU, SLURM, Open MPI, Kubernetes), "
        "set config.distributed.coordinator_address, num_processes and process_id") from e


def is_main_process() -> bool:
  """Process 0 alone writes files, logs and prints; every process computes."""
  return jax.process_index() == 0


def sync(name: str) -> None:
  """Waits until every process reaches the barrier `name`; free with one process."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def to_host(tree: Any) -> Any:
  """Every leaf of `tree` as a numpy array of its global value, on every process.

  Replicated and single-process arrays are copied from a local device; an array sharded
  over several processes is all-gathered, a collective every process must enter (in
  the same order), so call this on every process alike.
  """
  def fetch(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
      return multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(x)
  return jax.tree.map(fetch, tree)


def any_process(flag: bool) -> bool:
  """True on every process when `flag` is True on at least one (a collective)."""
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def make_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D data-parallel mesh over the first `num_devices` devices (all by default).

  With several processes the mesh spans every device of every process (`num_devices`
  None or all of them): a process without a device in the mesh could not run the step.
  """
  devices = jax.devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devices):
      raise ValueError(f"num_devices={num_devices}, but {len(devices)} devices are visible")
    if jax.process_count() > 1 and num_devices != len(devices):
      raise ValueError(
          f"num_devices={num_devices}: a run of {jax.process_count()} processes uses all "
          f"{len(devices)} of their devices; set num_devices=0")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the data axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (params, optimizer state, method state)."""
  return NamedSharding(mesh, P())


def state_shardings(tree: Any, mesh: Mesh, *, shard: bool, min_size: int = 2**14) -> Any:
  """A `NamedSharding` per leaf of a train state (arrays or `jax.ShapeDtypeStruct`s).

  Replicated, or with `shard` split over the data axis as ZeRO-3 / FSDP does: every array
  of at least `min_size` elements is split along its largest axis that the data axis
  divides (params, EMA target, optimizer moments, a MoCo queue); smaller or indivisible
  arrays (biases, norms, the step, scalars) stay replicated. Under `jax.jit` XLA gathers a
  sharded weight where the forward pass needs it whole and reduce-scatters its gradient,
  so the step's math is unchanged while each device holds ~1/P of the state.
  """
  n = mesh.shape[DATA_AXIS]

  def sharding(leaf):
    shape = tuple(leaf.shape)
    if not shard or n == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
      return NamedSharding(mesh, P())
    divisible = [axis for axis, size in enumerate(shape) if size % n == 0]
    if not divisible:
      return NamedSharding(mesh, P())
    axis = max(divisible, key=lambda a: shape[a])
    return NamedSharding(mesh, P(*([None] * axis), DATA_AXIS))
  return jax.tree.map(sharding, tree)


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
