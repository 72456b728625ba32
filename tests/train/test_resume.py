"""A run stopped after N steps and resumed for N more ends bitwise where an unbroken 2N-step
run ends: params, batch stats, optimizer state, EMA target, method state and step."""

import jax
import numpy as np
import pytest

from jejax.train import checkpoint, loop
from jejax.train import run as run_module

N = 3


def resume_config(tiny_config, method: str):
  c = tiny_config(method, batch_size=32)
  c.num_steps = 2 * N
  c.optim.warmup_epochs = 0.0
  c.swav.freeze_prototypes_epochs = 0.001  # frozen for the first step only
  c.dino.freeze_last_layer_epochs = 0.001
  c.dino.warmup_teacher_temperature_epochs = 0.003  # the warmup spans the stop
  return c


def assert_trees_equal(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# BYOL: EMA target; MoCo v2: queue; DINO: teacher, center, prototypes, multi-crop (which
# covers what SwAV would add); I-JEPA: its EMA target encoder and the masks drawn from the
# step's key on either side of the stop.
@pytest.mark.parametrize("method", ["byol", "moco_v2", "dino", "ijepa"])
def test_resume_is_bitwise(method, tmp_path, tiny_config):
  c = resume_config(tiny_config, method)
  _, unbroken, unbroken_records = loop.train(c, tmp_path / "unbroken")

  _, first_half, _ = loop.train(c, tmp_path / "resumed", stop_at_step=N)
  assert int(first_half.step) == N
  _, resumed, resumed_records = loop.train(c, tmp_path / "resumed")

  assert int(resumed.step) == int(unbroken.step) == 2 * N
  assert_trees_equal(jax.device_get(resumed), jax.device_get(unbroken))
  if method in ("byol", "moco_v2", "dino", "ijepa"):  # the target has moved off the online net
    assert not np.allclose(jax.tree.leaves(resumed.target_params)[0],
                           jax.tree.leaves(resumed.params)[0])
  if method == "moco_v2":  # the queue holds keys of all six steps, pushed in order
    assert int(resumed.method_state["queue_position"]) == (2 * N * 32) % c.moco_v2.queue_size
  if method == "dino":  # the center has moved away from its initial zeros
    assert np.abs(np.asarray(resumed.method_state["center"])).max() > 1e-3
  # The metrics log of the resumed run has each step once, with the unbroken run's losses.
  assert [r["step"] for r in resumed_records] == list(range(1, 2 * N + 1))
  np.testing.assert_array_equal([r["loss"] for r in resumed_records],
                                [r["loss"] for r in unbroken_records])


def test_interrupt_saves_the_steps_already_done(tmp_path, monkeypatch, tiny_config):
  real_make_step = run_module.make_step

  def make_step_interrupted_at_third_call(mesh, **kwargs):
    step = real_make_step(mesh, **kwargs)
    calls = []

    def interrupted(state, batch, rng):
      calls.append(None)
      if len(calls) == 3:
        raise KeyboardInterrupt  # as Ctrl-C, or SIGTERM through jejax.main
      return step(state, batch, rng)
    return interrupted

  monkeypatch.setattr(run_module, "make_step", make_step_interrupted_at_third_call)
  with pytest.raises(KeyboardInterrupt):
    loop.train(resume_config(tiny_config, "simclr"), tmp_path)
  checkpointer = checkpoint.Checkpointer(tmp_path / "checkpoints", every_steps=100, keep=2)
  assert checkpointer.latest_step() == 2  # checkpoint.every_steps is 100: only the interrupt saved


def test_resuming_with_other_training_settings_is_refused(tmp_path, tiny_config):
  c = resume_config(tiny_config, "simclr")
  loop.train(c, tmp_path, stop_at_step=1)
  c.num_steps = 4 * N  # would stretch the learning-rate schedule mid-run
  with pytest.raises(ValueError, match="num_steps"):
    loop.train(c, tmp_path)
  c.num_steps = 2 * N
  c.eval.knn_k = 5  # evaluation settings may change
  c.data.workers = 1  # and the processes decoding the batches, which stay the same
  _, state, _ = loop.train(c, tmp_path, stop_at_step=2)
  assert int(state.step) == 2
