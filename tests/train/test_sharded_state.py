"""`shard_state`: params, EMA target and optimizer state split over the data axis
(ZeRO-3 / FSDP) give the same losses and updates as the replicated state, the state is
initialised where it lives, and checkpoints move across the switch and device counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jejax import data, parallel
from jejax.train import checkpoint
from jejax.train.run import Run
from jejax.types import path_name

IMAGES = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 1), np.uint8)
SOURCE = data.ArraySource(IMAGES, np.arange(64, dtype=np.int32) % 10, 10, "random")
STEPS = 2


def test_large_arrays_split_along_their_largest_divisible_axis():
  mesh = parallel.make_mesh(8)
  tree = {"kernel": jax.ShapeDtypeStruct((96, 4096), jnp.float32),  # split on 4096
          "odd": jax.ShapeDtypeStruct((4099, 9), jnp.float32),  # nothing divisible
          "tall": jax.ShapeDtypeStruct((4096, 96), jnp.float32),  # split on 4096
          "bias": jax.ShapeDtypeStruct((4096,), jnp.float32),  # below min_size
          "step": jax.ShapeDtypeStruct((), jnp.int32)}
  specs = {k: s.spec for k, s in parallel.state_shardings(tree, mesh, shard=True).items()}
  assert specs == {"kernel": P(None, "data"), "odd": P(), "tall": P("data"), "bias": P(),
                   "step": P()}
  replicated = parallel.state_shardings(tree, mesh, shard=False)
  assert all(s.spec == P() for s in jax.tree.leaves(replicated))


def _run(tiny_config, method, shard, num_devices, workdir):
  c = tiny_config(method, batch_size=16)
  c.num_devices, c.shard_state = num_devices, shard
  # LARS, as the 1-vs-8-device test: Adam would scale the float32 rounding of a gradient
  # that is zero in exact arithmetic (the bias before the predictor's BatchNorm) up to a
  # full-size step, whose sign then depends on the summation order.
  c.optim.name, c.optim.learning_rate, c.optim.warmup_epochs = "lars", 0.5, 0.0
  c.byol.base_momentum = 0.9
  c.model.projector_hidden = (1024,) * len(c.model.projector_hidden)  # big enough to split
  return Run(c, workdir, train_source=SOURCE, test_source=SOURCE)


def _train(run):
  state = run.initial_state()
  losses = []
  for i in range(STEPS):
    batch = data.to_global_array({"image": IMAGES[16 * i:16 * (i + 1)]},
                                 parallel.data_sharding(run.mesh))
    state, metrics = run.step_fn(state, batch, run.step_rng)
    losses.append(float(metrics["loss"]))
  return state, losses


@pytest.fixture(scope="module")
def sharded(tiny_config, tmp_path_factory):
  """BYOL (online and EMA target params, LARS momentum) with the state split over 8
  devices, and its state after two steps."""
  run = _run(tiny_config, "byol", True, 8, tmp_path_factory.mktemp("sharded"))
  return run, _train(run)


def test_sharded_state_gives_the_replicated_update(tiny_config, tmp_path, sharded):
  sharded_run, (state_after, sharded_losses) = sharded
  state = sharded_run.initial_state()
  # Really split: the 1024-wide projector kernels, their Adam moments and EMA copies.
  split = [leaf for leaf in jax.tree.leaves(state) if leaf.sharding.spec != P()]
  assert len(split) >= 6
  assert all(len(leaf.addressable_shards) == 8 and
             leaf.addressable_shards[0].data.size == leaf.size // 8 for leaf in split)
  replicated, replicated_losses = _train(_run(tiny_config, "byol", False, 8, tmp_path))
  one, one_losses = _train(_run(tiny_config, "byol", False, 1, tmp_path))
  np.testing.assert_allclose(sharded_losses, replicated_losses, rtol=1e-5)
  np.testing.assert_allclose(sharded_losses, one_losses, rtol=1e-5)
  for (path, a), b, c in zip(jax.tree_util.tree_leaves_with_path(jax.device_get(state_after)),
                             *(jax.tree.leaves(jax.device_get(s)) for s in (replicated, one))):
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6, err_msg=path_name(path) + " one")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=path_name(path))
  # The step keeps the state where it was.
  for leaf, sharding in zip(jax.tree.leaves(state_after),
                            jax.tree.leaves(sharded_run.state_shardings)):
    assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim)


def test_checkpoints_move_across_the_switch_and_device_counts(tiny_config, tmp_path, sharded):
  _, (state, _) = sharded
  saver = checkpoint.Checkpointer(tmp_path / "checkpoints", every_steps=1, keep=1)
  saver.save(state, STEPS, force=True)
  saver.wait_until_finished()
  expected = jax.device_get(state)
  for shard, num_devices in ((False, 8), (False, 1), (True, 4)):
    target = _run(tiny_config, "byol", shard, num_devices, tmp_path)
    restored = checkpoint.Checkpointer(tmp_path / "checkpoints", every_steps=1,
                                       keep=1).restore_latest(target.abstract_state)
    for leaf, sharding in zip(jax.tree.leaves(restored),
                              jax.tree.leaves(target.state_shardings)):
      assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim)
    for a, b in zip(jax.tree.leaves(jax.device_get(restored)), jax.tree.leaves(expected)):
      np.testing.assert_array_equal(a, b)
