"""A run stopped after N steps and resumed for N more ends bitwise where an unbroken 2N-step
run ends: params, batch stats, optimizer state, EMA target, method state and step."""

import jax
import numpy as np
import pytest

from jejax.config import base_config
from jejax.train import checkpoint, loop

N = 3


def tiny_config(method: str):
  c = base_config()
  c.method = method
  c.num_steps = 2 * N
  c.batch_size = 32
  c.model.widths = (8, 16)
  c.model.projector_hidden = (32,)
  c.model.embed_dim = 16
  if method == "byol":
    c.augment.recipe = "byol"
    c.model.predictor_hidden = (32,)
  if method == "swav":
    c.model.num_prototypes = 12
    c.swav.freeze_prototypes_epochs = 0.001  # frozen for the first step only
  c.optim.warmup_epochs = 0.0
  c.eval.every_epochs = 0.0
  c.checkpoint.every_steps = 100  # only the stop and the end save
  c.log_every_steps = 1
  c.progress_bar = False
  return c


def assert_trees_equal(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("method", ["byol", "swav"])
def test_resume_is_bitwise(method, tmp_path):
  c = tiny_config(method)
  _, unbroken, unbroken_records = loop.train(c, tmp_path / "unbroken")

  _, first_half, _ = loop.train(c, tmp_path / "resumed", stop_at_step=N)
  assert int(first_half.step) == N
  _, resumed, resumed_records = loop.train(c, tmp_path / "resumed")

  assert int(resumed.step) == int(unbroken.step) == 2 * N
  assert_trees_equal(jax.device_get(resumed), jax.device_get(unbroken))
  if method == "byol":  # the EMA target is in the state and has moved off the online net
    assert not np.allclose(jax.tree.leaves(resumed.target_params)[0],
                           jax.tree.leaves(resumed.params)[0])
  # The metrics log of the resumed run has each step once, with the unbroken run's losses.
  assert [r["step"] for r in resumed_records] == list(range(1, 2 * N + 1))
  np.testing.assert_array_equal([r["loss"] for r in resumed_records],
                                [r["loss"] for r in unbroken_records])


def test_interrupt_saves_the_steps_already_done(tmp_path, monkeypatch):
  real_make_step = loop.make_step

  def make_step_interrupted_at_third_call(mesh, **kwargs):
    step = real_make_step(mesh, **kwargs)
    calls = []

    def interrupted(state, batch, rng):
      calls.append(None)
      if len(calls) == 3:
        raise KeyboardInterrupt  # as Ctrl-C, or SIGTERM through jejax.main
      return step(state, batch, rng)
    return interrupted

  monkeypatch.setattr(loop, "make_step", make_step_interrupted_at_third_call)
  with pytest.raises(KeyboardInterrupt):
    loop.train(tiny_config("simclr"), tmp_path)
  checkpointer = checkpoint.Checkpointer(tmp_path / "checkpoints", every_steps=100, keep=2)
  assert checkpointer.latest_step() == 2  # checkpoint.every_steps is 100: only the interrupt saved


def test_resuming_with_other_training_settings_is_refused(tmp_path):
  c = tiny_config("simclr")
  loop.train(c, tmp_path, stop_at_step=1)
  c.num_steps = 4 * N  # would stretch the learning-rate schedule mid-run
  with pytest.raises(ValueError, match="num_steps"):
    loop.train(c, tmp_path)
  c.num_steps = 2 * N
  c.eval.knn_k = 5  # evaluation settings may change
  _, state, _ = loop.train(c, tmp_path, stop_at_step=2)
  assert int(state.step) == 2
