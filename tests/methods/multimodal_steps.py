"""What the tests of the multimodal methods (CLIP, SigLIP, binding, DeCUR) share: the tiny
multimodal data's first batches, tiny towers, a few train steps on a mesh of 1 or 8
devices, and the check that a bad config value is refused by name. The data set is the
config's `data.name`, so one helper serves every pairing."""

import functools
import re

import jax
import numpy as np
import pytest

from jejax import config as config_lib
from jejax import data, parallel
from jejax.checks import ConfigError
from jejax.data import to_global_array
from jejax.methods import Setup
from jejax.train import build
from jejax.train.step import init_state, make_step

BATCH = 16  # 2 pairs per device on 8 devices
STEPS = 2


@functools.lru_cache(maxsize=None)
def batches(name: str) -> list[dict[str, np.ndarray]]:
  """The first `STEPS` batches of `BATCH` train pairs of the tiny build of `name`."""
  source = data.get_source(name, "train", multimodal_build="tiny")
  return [source.get_batch(np.arange(i * BATCH, (i + 1) * BATCH)) for i in range(STEPS)]


def tiny_multimodal_config(tiny_config, method: str):
  """`tiny_config(method)` on the tiny data with a 16-wide, 1-block text tower, a nano
  audio tower and LARS at a learning rate that moves every group in two steps; not yet
  validated, so a test can set its method's block first."""
  c = tiny_config(method, BATCH)
  c.data.multimodal_build = "tiny"
  c.model.text.width, c.model.text.depth, c.model.text.num_heads = 16, 1, 2
  c.model.audio.size = "nano"
  c.optim.name, c.optim.learning_rate, c.optim.warmup_epochs = "lars", 0.5, 0.0
  return c


def build_method(c, mesh=None):
  """`(method, optimizer, example)` for config `c`, the example two pairs of its data."""
  example = {k: v[:2] for k, v in batches(c.data.name)[0].items()}
  method = build.build_method(c, Setup(total_steps=10, steps_per_epoch=5,
                                       example_batch=example, mesh=mesh))
  optimizer, _ = build.build_optimizer(c, total_steps=10, steps_per_epoch=5)
  return method, optimizer, example


def run_steps(c, num_devices: int):
  """`(initial state, final state, per-step metrics)` of `STEPS` steps of `c` on
  `num_devices` devices, all on the host."""
  mesh = parallel.make_mesh(num_devices)
  method, optimizer, example = build_method(c, mesh)
  initial = jax.device_get(init_state(method, optimizer, jax.random.key(0), example))
  state = parallel.replicate(initial, mesh)
  step = make_step(mesh, method=method, optimizer=optimizer)
  metrics = []
  for batch in batches(c.data.name):
    state, m = step(state, to_global_array(batch, parallel.data_sharding(mesh)),
                    jax.random.key(1))
    metrics.append(jax.device_get(m))
  return initial, jax.device_get(state), metrics


def max_change(a, b) -> float:
  """The largest absolute difference between two pytrees of one structure."""
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def assert_config_error(c, field: str, value, message: str) -> None:
  """`config.validate` refuses `c` with `<block>.<name>` = `value`, naming the field and
  saying `message`."""
  parent, name = field.split(".")
  c[parent][name] = value
  with pytest.raises(ConfigError, match=re.escape(f"config.{field}=") + ".*" +
                     re.escape(message)):
    config_lib.validate(c)
