"""Gradient accumulation (GradCache): with K microbatches the loss and gradients are the
whole batch's, contrastive negatives and Sinkhorn marginals included; with BatchNorm,
statistics are per microbatch, and a step runs and stays close to the K = 1 step."""

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jejax import config as config_lib
from jejax import methods, parallel
from jejax.data import to_global_array
from jejax.methods import Setup
from jejax.models import MLP, SSLModel
from jejax.train import build
from jejax.train.step import (
    accumulated_loss_and_grads,
    init_state,
    loss_and_grads,
    make_step,
)

BATCH = 16


class _ConvBackbone(nn.Module):
  """Conv, ReLU, global average pooling: no BatchNorm, so every example's outputs depend
  on that example alone, and any resolution goes through (multi-crop)."""

  @nn.compact
  def __call__(self, x, train=True):
    return nn.relu(nn.Conv(8, (3, 3))(x)).mean(axis=(1, 2))  # (B, H, W, 1) -> (B, 8)


def _setup(make_method, num_prototypes=0, predictor=False):
  """`make_method(model)` on a BatchNorm-free model (its projector and predictor are
  single Dense layers), and its state; BYOL's target is made to differ from the online
  network. The views are made by the tests, so the method's own recipes are unused."""
  model = SSLModel(_ConvBackbone(), MLP((), 16), MLP((), 16) if predictor else None,
                   num_prototypes)
  method = make_method(model)
  state = init_state(method, optax.sgd(0.1), jax.random.key(0),
                     {"image": jnp.zeros((2, 8, 8, 1), jnp.uint8)})
  if method.needs_target:
    state = state.replace(target_params=jax.tree.map(lambda p: 0.5 * p, state.target_params))
  return method, state


def _views(shapes):
  keys = jax.random.split(jax.random.key(1), len(shapes))
  return tuple(jax.random.uniform(key, (BATCH, *shape)) for key, shape in zip(keys, shapes))


@functools.partial(jax.jit, static_argnames=("method", "k"))
def _loss_and_grads(state, views, *, method, k):
  if k == 1:
    return loss_and_grads(state, views, method=method)
  return accumulated_loss_and_grads(state, views, method=method, accumulation_steps=k)


def _assert_grads_close(actual, expected):
  # rtol 1e-5, with an absolute floor of 1e-6 of the largest gradient: entries that
  # cancel to about 0 keep float32 rounding of that size whatever the summation order.
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(expected))
  jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6 * scale),
               actual, expected)


TWO_VIEWS = ((8, 8, 1), (8, 8, 1))
MULTI_CROP = ((8, 8, 1), (8, 8, 1), (4, 4, 1), (4, 4, 1))
CASES = {
    "simclr": (lambda model: methods.SimCLR(model=model, views=(), temperature=0.5), {},
               TWO_VIEWS),
    "byol": (lambda model: methods.BYOL(model=model, views=(), total_steps=10),
             {"predictor": True}, TWO_VIEWS),
    # Sinkhorn's marginals span the batch; two resolutions take two forward calls.
    "swav_multi_crop": (lambda model: methods.SwAV(model=model, views=(), epsilon=0.5),
                        {"num_prototypes": 6}, MULTI_CROP),
}


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("case", sorted(CASES))
def test_accumulated_loss_and_grads_are_the_whole_batch_ones(case, k):
  make_method, model_kwargs, shapes = CASES[case]
  method, state = _setup(make_method, **model_kwargs)
  views = _views(shapes)
  full = _loss_and_grads(state, views, method=method, k=1)
  accumulated = _loss_and_grads(state, views, method=method, k=k)

  np.testing.assert_allclose(accumulated.loss, full.loss, rtol=1e-5)
  _assert_grads_close(accumulated.grads, full.grads)
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(full.grads)) > 1e-3
  # The outputs come back in batch order (the diagnostics and MoCo's queue see them).
  np.testing.assert_allclose(accumulated.embedding, full.embedding, rtol=1e-5, atol=1e-6)


def test_simclr_negatives_come_from_the_whole_batch():
  """Naive accumulation, the mean of K microbatch losses, gives each anchor only the
  2 B/K - 2 negatives of its microbatch: a different (lower) loss and other gradients."""
  make_method, model_kwargs, shapes = CASES["simclr"]
  method, state = _setup(make_method, **model_kwargs)
  views = _views(shapes)
  k = 2
  accumulated = _loss_and_grads(state, views, method=method, k=k)
  per_microbatch = [_loss_and_grads(state, tuple(v[j::k] for v in views), method=method, k=1)
                    for j in range(k)]
  naive_loss = np.mean([r.loss for r in per_microbatch])
  naive_grads = jax.tree.map(lambda *g: sum(g) / k, *[r.grads for r in per_microbatch])

  # log(2B - 1) vs log(2B/K - 1) for near-random embeddings: log(31/15) = 0.73 apart
  # at B = 16, K = 2 (measured 3.44 vs 2.71); the gradients differ by 14% of their norm.
  assert float(accumulated.loss) - naive_loss > 0.5
  difference = optax.tree.norm(jax.tree.map(jnp.subtract, accumulated.grads, naive_grads))
  assert float(difference) > 0.05 * float(optax.tree.norm(accumulated.grads))


def _bn_run(tiny_config, method, k):
  """One train step of the method's tiny (BatchNorm) config with K microbatches."""
  c = tiny_config(method, BATCH)
  c.accumulation_steps = k
  for op in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    c.augment[op] = 0.0  # left out at trace time: the test is about the step; compiles fast
  config_lib.validate(c)
  mesh = parallel.make_mesh(c.num_devices)
  images = np.random.default_rng(0).integers(0, 256, (BATCH, 16, 16, 1), np.uint8)
  example = {"image": images[:2]}
  meth = build.build_method(c, Setup(10, 5, example))
  optimizer, _ = build.build_optimizer(c, total_steps=10, steps_per_epoch=5)
  state = parallel.replicate(init_state(meth, optimizer, jax.random.key(0), example), mesh)
  step = make_step(mesh, method=meth, optimizer=optimizer,
                   accumulation_steps=c.accumulation_steps)
  batch = to_global_array({"image": images}, parallel.data_sharding(mesh))
  return step(state, batch, jax.random.key(1))


def test_batchnorm_step_runs_and_is_close_to_the_whole_batch_step(tiny_config):
  """SimCLR's tiny config (BatchNorm in backbone and projector) on 2 devices, K = 2."""
  state1, metrics1 = _bn_run(tiny_config, "simclr", 1)
  state2, metrics2 = _bn_run(tiny_config, "simclr", 2)
  # BatchNorm over 8 examples instead of 16 normalises with noisier statistics, which
  # shifts the loss a little but not systematically. Measured on this config: 0.06% at
  # K = 2 (0.3% for SwAV's), 3.6% at K = 4 (2.5%); 5% leaves room without hiding a wrong
  # loss (naive accumulation is 21% off on the BatchNorm-free model above).
  np.testing.assert_allclose(metrics2["loss"], metrics1["loss"], rtol=0.05)
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state2))
  # The first BatchNorm sees conv outputs that no BatchNorm has touched: the average of
  # the microbatch means is the batch mean, so its running mean moves as with K = 1, and
  # its running variance towards the mean within-microbatch variance, which the law of
  # total variance puts below the batch variance.
  stats1 = state1.batch_stats["backbone"]["BatchNorm_0"]
  stats2 = state2.batch_stats["backbone"]["BatchNorm_0"]
  np.testing.assert_allclose(stats2["mean"], stats1["mean"], rtol=1e-5, atol=1e-7)
  assert np.all(np.asarray(stats2["var"]) <= np.asarray(stats1["var"]) + 1e-6)
  assert int(state2.step) == 1


def test_batch_that_does_not_split_raises():
  make_method, model_kwargs, shapes = CASES["simclr"]
  method, state = _setup(make_method, **model_kwargs)
  with pytest.raises(ValueError, match="accumulation_steps=3"):
    accumulated_loss_and_grads(state, _views(shapes), method=method, accumulation_steps=3)


@pytest.mark.parametrize("num_devices, k, message", [
    (2, 3, "accumulation_steps x num_devices = 3 x 2 = 6"),
    (2, 16, "accumulation_steps x num_devices = 16 x 2 = 32"),
    (0, 0, "config.accumulation_steps=0: must be >= 1"),
])
def test_config_batch_must_split_into_microbatches_on_every_device(tiny_config, num_devices,
                                                                   k, message):
  c = tiny_config("simclr", BATCH)
  c.num_devices, c.accumulation_steps = num_devices, k
  with pytest.raises(ValueError, match=re.escape(message)):
    config_lib.validate(c)
