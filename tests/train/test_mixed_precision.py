"""Mixed precision, `model.dtype='bfloat16'`: activations in bfloat16; params, optimizer
state, BatchNorm statistics, model outputs and so every loss in float32. A bfloat16 step
stays close to the float32 one, and a float32 config has no other float dtype anywhere."""

import dataclasses
import functools
import re

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jejax import config as config_lib
from jejax.methods import Setup
from jejax.methods.views import ssl_model
from jejax.train import build
from jejax.train.step import init_state, loss_and_grads, train_step

IMAGE_SHAPE = (16, 16, 1)
BATCH = 16
F32, BF16 = jnp.dtype("float32"), jnp.dtype("bfloat16")  # dtypes, to compare in sets


def _recording(method, seen: list):
  """`method` whose loss first notes the dtype of every array it is given."""
  class Recording(type(method)):
    def loss(self, outputs, target, inputs, state):
      seen.extend(leaf.dtype for leaf in jax.tree.leaves((outputs, target)))
      return super().loss(outputs, target, inputs, state)
  return Recording(**{f.name: getattr(method, f.name) for f in dataclasses.fields(method)})


def _parts(tiny_config, method: str, dtype: str, seen: list):
  """Model, (recording) method, optimizer (plain SGD: the update is the gradient times
  the learning rate) and initial state of the method's tiny config."""
  c = tiny_config(method, BATCH)
  c.model.dtype = dtype
  c.optim.name, c.optim.warmup_epochs = "sgd", 0.0
  for op in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    c.augment[op] = 0.0  # left out at trace time: random crops and flips only; fast compiles
  config_lib.validate(c)
  example = _batch()
  meth = _recording(build.build_method(c, Setup(10, 5, example)), seen)
  optimizer, _ = build.build_optimizer(c, total_steps=10, steps_per_epoch=5)
  state = init_state(meth, optimizer, jax.random.key(0), example)
  return meth.model, meth, optimizer, state


def _step(method, optimizer):
  return jax.jit(functools.partial(train_step, method=method, optimizer=optimizer))


def _batch(seed=0):
  images = np.random.default_rng(seed).integers(0, 256, (BATCH, *IMAGE_SHAPE), np.uint8)
  return {"image": jnp.asarray(images)}


def _distance(a, b) -> float:
  return float(optax.tree.norm(jax.tree.map(jnp.subtract, a, b)))


def _equations(jaxpr):
  """Every equation of `jaxpr` and of the jaxprs nested in it (jit, scan, cond, ...)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          yield from _equations(sub.jaxpr)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          yield from _equations(sub)


def _float_dtypes(eqns) -> set:
  return {v.aval.dtype for eqn in eqns for v in eqn.outvars
          if jnp.issubdtype(v.aval.dtype, jnp.floating)}


def _float_leaves_dtypes(tree) -> set:
  return {leaf.dtype for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.floating)}


# Tolerances. bfloat16 keeps 8 significant bits: each rounding has a relative error of up
# to u = 2^-8 = 3.9e-3. The forward pass rounds ~7 times (conv, BN, conv, BN, dense, BN,
# dense), independent errors that add up like a random walk to ~sqrt(7) u = 1e-2 on the
# embeddings; the losses are smooth in the embeddings with O(1) relative sensitivity, so
# the loss is held to 2e-2, twice that estimate. Measured (one augmented step / the fixed
# views below): SimCLR 2e-4 / 6e-4, BYOL 1.5e-4 / 1e-5, SwAV 5e-4 / 3.7e-3, VICReg 1e-3 /
# 6e-4, Barlow Twins 6.4e-3 / 1.07e-2 (its squared correlations are the most sensitive).
LOSS_RTOL = 2e-2
# The backward pass rounds each cotangent to bfloat16 (2^-8 of it), and BatchNorm's
# backward then subtracts the cotangent's mean and its projection on the normalised input,
# leaving a residual much smaller than the cotangent: the rounding becomes 1-30% of the
# gradient of the layers below, the more so the deeper (flax normalises in float32, so
# this is the cotangent's rounding, not the arithmetic's). Measured on the whole gradient:
# 5-14% of its norm after one augmented step, 8.5-17.5% on the fixed views (Barlow Twins
# the largest), 6-17% of the distance to another batch's gradient. Held to 30% of the norm
# and 30% of the other batch's distance.
GRAD_RTOL = 0.3


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_state(tiny_config):
  """BYOL (predictor, EMA target): one bfloat16 step against one float32 step."""
  seen = []
  model, method, optimizer, state = _parts(tiny_config, "byol", "bfloat16", seen)
  # Every conv, dense and BatchNorm output is bfloat16; the model's outputs are float32.
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  out, captured = jax.jit(functools.partial(
      model.apply, train=True, capture_intermediates=True,
      mutable=["batch_stats", "intermediates"]))(variables, jnp.ones((4, *IMAGE_SHAPE)))
  captured = jax.tree_util.tree_leaves_with_path(captured["intermediates"])
  layers = {name: leaf.dtype for path, leaf in captured
            if re.search(r"(Conv|Dense|BatchNorm)_\d+/__call__", name := jax.tree_util.keystr(
                path, simple=True, separator="/"))}
  assert len(layers) == 10  # 2 convs, 2 + 2 (projector, predictor) dense, 4 BatchNorms
  assert set(layers.values()) == {BF16}, layers
  assert _float_leaves_dtypes(out) == {F32}

  step = _step(method, optimizer)
  new_state, metrics = step(state, _batch(), jax.random.key(1))
  # Online and target outputs reach the loss in float32.
  assert seen and set(seen) == {F32}
  for name in ("params", "batch_stats", "target_params", "target_batch_stats", "opt_state"):
    assert _float_leaves_dtypes(getattr(new_state, name)) == {F32}, name
  # Forward and backward, every convolution of the step runs in bfloat16.
  jaxpr = jax.make_jaxpr(step)(state, _batch(), jax.random.key(1)).jaxpr
  convs = [eqn for eqn in _equations(jaxpr) if eqn.primitive.name == "conv_general_dilated"]
  # 2 online and 2 target forward, 3 backward (the first conv's input needs no gradient).
  assert len(convs) == 7
  assert _float_dtypes(convs) == {BF16}

  # The same step in float32, from the same params (the compute dtype does not touch
  # them), on the same views: the same loss and, within rounding, the same update.
  _, method32, optimizer32, state32 = _parts(tiny_config, "byol", "float32", [])
  jax.tree.map(np.testing.assert_array_equal, state.params, state32.params)
  new32, metrics32 = _step(method32, optimizer32)(state32, _batch(), jax.random.key(1))
  np.testing.assert_allclose(metrics["loss"], metrics32["loss"], rtol=LOSS_RTOL)
  update = jax.tree.map(jnp.subtract, new_state.params, state.params)
  update32 = jax.tree.map(jnp.subtract, new32.params, state32.params)
  assert _distance(update, update32) < GRAD_RTOL * float(optax.tree.norm(update32))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0.1, atol=1e-6),
               new_state.target_params, new32.target_params)


def test_float32_step_has_no_other_float_dtype(tiny_config):
  _, method, optimizer, state = _parts(tiny_config, "swav", "float32", [])
  jaxpr = jax.make_jaxpr(_step(method, optimizer))(
      state, _batch(), jax.random.key(1)).jaxpr
  assert _float_dtypes(_equations(jaxpr)) == {F32}


# Contrastive logits, Sinkhorn, and a covariance loss (Barlow Twins, the most sensitive);
# BYOL is compared in the test above, VICReg measured 1e-3 when all five ran.
@pytest.mark.parametrize("method", ["simclr", "swav", "barlow_twins"])
def test_bfloat16_loss_and_gradients_are_close_to_float32(tiny_config, method):
  """On the same params and views; with SGD, the update is the gradient times the lr."""
  def loss_and_grads_fn(dtype, seen):
    _, meth, _, state = _parts(tiny_config, method, dtype, seen)
    return functools.partial(jax.jit(functools.partial(loss_and_grads, method=meth)), state)

  seen = []
  full32 = loss_and_grads_fn("float32", [])
  full, other = full32(_views(1)), full32(_views(2))
  half = loss_and_grads_fn("bfloat16", seen)(_views(1))
  assert set(seen) == {F32}

  np.testing.assert_allclose(half.loss, full.loss, rtol=LOSS_RTOL)
  norm = float(optax.tree.norm(full.grads))
  assert norm > 1e-3
  assert _distance(half.grads, full.grads) < GRAD_RTOL * norm
  # Another batch moves the float32 gradient far more than bfloat16 rounding does.
  assert _distance(half.grads, full.grads) < 0.3 * _distance(other.grads, full.grads)


def _views(seed):
  """Two views: an image batch and a noisy copy, float32 in [0, 1]."""
  x = jax.random.uniform(jax.random.key(seed), (BATCH, *IMAGE_SHAPE))
  noise = 0.1 * jax.random.normal(jax.random.key(seed + 100), x.shape)
  return x, jnp.clip(x + noise, 0.0, 1.0)


def test_unknown_dtype_raises_naming_the_field():
  c = config_lib.base_config()
  c.model.dtype = "float16"
  with pytest.raises(ValueError, match=re.escape("config.model.dtype='float16'")):
    config_lib.validate(c)
  with pytest.raises(ValueError, match="model.dtype"):
    ssl_model(c)
