"""I-JEPA and MAE as methods of the one step: the target encoder gets no gradient, its EMA
follows the linear momentum, the configs are checked, evaluation reads the encoder the
config names."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jejax import config as config_lib
from jejax import losses
from jejax.methods import Setup
from jejax.train import build
from jejax.train.step import init_state, loss_and_grads

IMAGES = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 1), np.uint8)


@functools.lru_cache(maxsize=None)
def _built(tiny_config, name):
  """(config, method, state, inputs) of the method's tiny config, built once per module."""
  c = tiny_config(name, batch_size=4)
  config_lib.validate(c)
  example = {"image": IMAGES[:2]}
  method = build.build_method(c, Setup(total_steps=10, steps_per_epoch=5, example_batch=example))
  # Jitted: op by op, the ViT's many small ops take far longer to run than to compile.
  state = jax.jit(init_state, static_argnums=(0, 1))(method, optax.sgd(0.1), jax.random.key(0),
                                                      example)
  inputs = jax.jit(method.prepare)(jax.random.key(1), {"image": jnp.asarray(IMAGES)})
  return c, method, state, inputs


@pytest.fixture(scope="module")
def parts(tiny_config):
  return lambda name: _built(tiny_config, name)


@pytest.fixture(scope="module")
def ijepa(parts):
  _, method, state, inputs = parts("ijepa")
  # A target encoder that differs from the online one, as after some training.
  state = state.replace(target_params=jax.tree.map(lambda p: 0.9 * p + 0.01,
                                                   state.target_params))
  return method, state, inputs


def test_ijepa_target_encoder_gets_no_gradient(ijepa):
  method, state, inputs = ijepa

  def step_loss(params, target_params):
    return loss_and_grads(state.replace(params=params, target_params=target_params), inputs,
                          method=method).loss

  online_grads, target_grads = jax.jit(jax.grad(step_loss, argnums=(0, 1)))(
      state.params, state.target_params)
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(target_grads))
  # The online encoder and the predictor do learn.
  for part in ("encoder", "predictor"):
    assert float(optax.tree.norm(online_grads[part])) > 1e-6, part

  # Negative control: the same loss with the target not stopped does move the target.
  def unstopped_loss(target_params):
    outputs, _ = method.forward(state.params, {}, inputs)
    target = method.model.apply({"params": target_params}, inputs["image"], inputs["targets"],
                                method="target")
    diff = outputs["prediction"] - target
    return jnp.mean(losses.smooth_l1(diff) * inputs["targets_valid"][..., None])

  assert float(optax.tree.norm(jax.jit(jax.grad(unstopped_loss))(state.target_params))) > 1e-6


def test_ijepa_target_starts_as_a_copy_of_the_encoder_only(parts):
  _, method, state, _ = parts("ijepa")
  assert set(state.target_params) == {"encoder"}
  jax.tree.map(np.testing.assert_array_equal, state.target_params["encoder"],
               state.params["encoder"])
  assert state.target_batch_stats == {} and state.method_state == {}


def test_ijepa_ema_momentum_rises_linearly_to_one(ijepa):
  method, state, _ = ijepa
  online = jax.tree.map(jnp.ones_like, state.params)
  target = {"encoder": jax.tree.map(jnp.zeros_like, state.params["encoder"])}
  # After update k (state.step = k), momentum m(k - 1) = 0.996 + 0.004 (k - 1) / 10.
  for k in (1, 6, 11):
    new = method.update(state.replace(step=jnp.asarray(k), params=online,
                                      target_params=target), None)
    m = 0.996 + 0.004 * min((k - 1) / 10, 1.0)
    for leaf in jax.tree.leaves(new.target_params):
      np.testing.assert_allclose(leaf, 1 - m, rtol=1e-5, atol=1e-7)


def test_ijepa_context_budget_and_target_slots(parts):
  c, method, _, inputs = parts("ijepa")
  grid = 16 // c.model.vit.patch_size
  assert method.context_tokens == round(c.ijepa.context_fraction * grid * grid)
  assert inputs["context"].shape == (4, method.context_tokens)
  assert inputs["targets"].shape[:2] == (4, c.ijepa.num_targets)
  assert inputs["image"].shape == (4, 16, 16, 1) and inputs["image"].dtype == jnp.float32


def test_mae_removes_three_quarters_and_evaluates_the_class_token(parts):
  c, method, state, inputs = parts("mae")
  n = (16 // c.model.vit.patch_size) ** 2
  assert inputs["keep"].shape == (4, int(n * 0.25))
  np.testing.assert_array_equal(inputs["mask"].sum(axis=1), n - int(n * 0.25))
  outputs, _ = jax.jit(method.forward)(state.params, {}, inputs)
  assert outputs["prediction"].shape == (4, n, c.model.vit.patch_size ** 2)
  # The class token's output of the whole, unmasked image.
  images = jnp.asarray(IMAGES, jnp.float32) / 255
  features = jax.jit(method.features)({"params": state.params}, images)
  encoder = method.model.encoder

  @jax.jit
  def encode_whole(params, images):
    tokens = encoder.apply({"params": params}, images, method="embed")
    return encoder.apply({"params": params}, tokens, method="transform")

  whole = encode_whole(state.params["encoder"], images)
  np.testing.assert_allclose(features, whole[:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method, field, value, message", [
    ("ijepa", "model.backbone", "convnet", "ViT"),
    ("ijepa", "model.vit.class_token", True, "no class token"),
    ("ijepa", "ijepa.target_scale", (0.3, 0.2), "0 < a <= b <= 1"),
    ("ijepa", "ijepa.predictor_width", 50, "divisible by 4"),
    ("ijepa", "ijepa.regression", "l1", "known"),
    ("mae", "model.vit.class_token", False, "class token"),
    ("mae", "mae.mask_ratio", 1.0, "(0, 1)"),
    ("mae", "mae.decoder_width", 30, "divisible"),
    ("simclr", "eval.encoder", "target", "no target network"),
])
def test_configs_are_checked_naming_the_field(tiny_config, method, field, value, message):
  c = tiny_config(method)
  *parents, name = field.split(".")
  block = c
  for parent in parents:
    block = block[parent]
  block[name] = value
  with pytest.raises(ValueError, match=f"config.{field}=.*{re.escape(message)}"):
    config_lib.validate(c)
