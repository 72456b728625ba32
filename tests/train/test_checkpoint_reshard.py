"""Checkpoints written from one mesh restore onto a mesh of another size: a run saved on 8
devices resumes on 4 and on 1 and continues as the unbroken 8-device run does, and a
state whose large leaves are sharded along the data axis (as FSDP would shard params)
round-trips 8 -> 4 -> 1 devices bitwise."""

import shutil

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jejax import parallel
from jejax.methods import Setup
from jejax.train import build, checkpoint, loop
from jejax.train.step import init_state

STOP = 2  # the 8-device run's checkpoint that the smaller meshes resume from
STEPS = 3


def reshard_config(tiny_config):
  c = tiny_config("byol", batch_size=16)  # 2 examples per device on 8
  c.num_devices = 8
  c.num_steps = 10
  c.optim.name = "lars"  # as in test_step_equivalence: every step moves the params
  c.optim.learning_rate = 0.5
  c.optim.warmup_epochs = 0.0
  c.byol.base_momentum = 0.9
  c.checkpoint.every_steps = 1
  c.checkpoint.keep = STEPS
  return c


def resumable_copy(unbroken_dir, workdir):
  """`unbroken_dir` as it was after step STOP: its files, and checkpoints up to STOP
  (metrics.jsonl is cut back to STOP by the resumed run itself)."""
  shutil.copytree(unbroken_dir, workdir)
  for step_dir in (workdir / "checkpoints").iterdir():
    if step_dir.name.isdigit() and int(step_dir.name) > STOP:
      shutil.rmtree(step_dir)


def assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_run_saved_on_8_devices_resumes_on_4_and_on_1(tmp_path, tiny_config):
  c = reshard_config(tiny_config)
  _, unbroken, unbroken_records = loop.train(c, tmp_path / "unbroken", stop_at_step=STEPS)
  host = jax.device_get(unbroken)

  for num_devices in (4, 1):
    resumed_dir = tmp_path / f"resumed_on_{num_devices}"
    resumable_copy(tmp_path / "unbroken", resumed_dir)
    # The restore alone: the state of step STOP, bitwise, replicated on the new mesh.
    mesh = parallel.make_mesh(num_devices)
    checkpointer = checkpoint.Checkpointer(resumed_dir / "checkpoints", every_steps=1,
                                           keep=STEPS)
    restored = checkpointer.restore_latest(parallel.replicate(host, mesh))
    at_stop = checkpointer.restore_latest(parallel.replicate(host, parallel.make_mesh(8)))
    assert int(restored.step) == STOP
    for leaf in jax.tree.leaves(restored):
      assert leaf.sharding.is_equivalent_to(parallel.replicated(mesh), leaf.ndim)
    assert_trees_equal(jax.device_get(restored), jax.device_get(at_stop))

    c.num_devices = num_devices  # a layout change, allowed on resume
    _, resumed, resumed_records = loop.train(c, resumed_dir, stop_at_step=STEPS)
    assert int(resumed.step) == STEPS
    assert [r["step"] for r in resumed_records] == list(range(1, STEPS + 1))
    # Steps 1..STOP ran on 8 devices in both; step STOP + 1 on `num_devices` here, which
    # orders the float32 reductions over the global batch differently: the tolerance of
    # test_step_equivalence (1 vs 8 devices).
    np.testing.assert_allclose([r["loss"] for r in resumed_records],
                               [r["loss"] for r in unbroken_records], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(jax.device_get(resumed)), jax.tree.leaves(host)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # ... while step STOP + 1 moved the params by far more than that.
    moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(
        jax.tree.leaves(host.params), jax.tree.leaves(jax.device_get(at_stop.params))))
    assert moved > 1e-3


def fsdp_shardings(tree, mesh):
  """A NamedSharding per leaf: along the data axis for leaves of at least 256 elements
  whose leading axis splits evenly over the mesh, as FSDP shards large params;
  replicated for the rest."""
  n = mesh.shape[parallel.DATA_AXIS]

  def sharding(x):
    large = x.ndim > 0 and x.size >= 256 and x.shape[0] % n == 0
    return NamedSharding(mesh, P(parallel.DATA_AXIS) if large else P())
  return jax.tree.map(sharding, tree)


def abstract_like(tree, shardings):
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      tree, shardings)


def test_sharded_state_round_trips_8_to_4_to_1_devices_bitwise(tmp_path, tiny_config):
  c = tiny_config("byol", batch_size=16)
  example = {"image": np.zeros((2, 28, 28, 1), np.uint8)}
  method = build.build_method(c, Setup(10, 5, example))
  optimizer, _ = build.build_optimizer(c, 10, 5)
  state = jax.device_get(init_state(method, optimizer, jax.random.key(0), example))
  # Distinct values in every leaf (Adam's moments start at zero).
  leaves, treedef = jax.tree.flatten(state)
  rng = np.random.default_rng(0)
  state = jax.tree.unflatten(treedef, [
      (rng.standard_normal(x.shape) * 3).astype(x.dtype) if np.issubdtype(x.dtype, np.floating)
      else np.full(x.shape, 7, x.dtype) for x in leaves])

  # Save from 8 devices; then restore onto 4 and save from there; then restore onto 1.
  directory = tmp_path / "from_8"
  shardings = fsdp_shardings(state, parallel.make_mesh(8))
  assert sum(s.spec != P() for s in jax.tree.leaves(shardings)) >= 4
  placed = jax.device_put(state, shardings)
  save(placed, directory)
  for num_devices in (4, 1):
    mesh = parallel.make_mesh(num_devices)
    if num_devices > 1:
      shardings = fsdp_shardings(state, mesh)
      assert sum(s.spec != P() for s in jax.tree.leaves(shardings)) >= 4  # dense kernels, moments
    else:  # the sharded leaves come back whole
      shardings = jax.tree.map(lambda _, m=mesh: parallel.replicated(m), state)
    # The previous mesh's checkpoint, read straight into this mesh's shardings.
    checkpointer = checkpoint.Checkpointer(directory, every_steps=1, keep=1)
    placed = checkpointer.restore_latest(abstract_like(state, shardings))
    for leaf, sharding in zip(jax.tree.leaves(placed), jax.tree.leaves(shardings)):
      assert leaf.sharding == sharding
    assert_trees_equal(jax.device_get(placed), state)
    directory = tmp_path / f"from_{num_devices}"
    save(placed, directory)


def save(tree, directory):
  checkpointer = checkpoint.Checkpointer(directory, every_steps=1, keep=1)
  checkpointer.save(tree, step=1, force=True)
  checkpointer.wait_until_finished()
