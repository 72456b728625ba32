"""Memory-bounded InfoNCE (ring over 8 devices, row chunks on one): the same loss and
gradients as the dense losses and a float64 NumPy reference; argument errors; a SimCLR step
with loss_impl='ring' equal to 'dense'; the ring's gradient memory below the dense one."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax import config, losses, methods, parallel
from jejax.data import to_global_array
from jejax.train import build
from jejax.train.step import init_state, make_step

N, D = 16, 6  # 2 pairs per device on 8 devices


def _log_softmax_of_positive(logits, positive):
  """float64: -log softmax(logits)[positive] per row, -inf logits left out."""
  m = logits.max(axis=1, keepdims=True)
  lse = m[:, 0] + np.log(np.sum(np.exp(logits - m), axis=1))
  return lse - logits[np.arange(len(logits)), positive]


def _normalize(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def _nt_xent_reference(z1, z2, temperature):
  """Chen et al. 2020, eq. 1, mean over the 2N anchors, float64."""
  z = _normalize(np.concatenate([z1, z2]))
  n = len(z1)
  logits = z @ z.T / temperature
  np.fill_diagonal(logits, -np.inf)
  positive = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
  return np.mean(_log_softmax_of_positive(logits, positive))


def _clip_reference(a, b, temperature):
  """Radford et al. 2021, Figure 3: (CE over rows + CE over columns) / 2, float64."""
  logits = _normalize(a) @ _normalize(b).T / temperature
  diagonal = np.arange(len(a))
  return (np.mean(_log_softmax_of_positive(logits, diagonal)) +
          np.mean(_log_softmax_of_positive(logits.T, diagonal))) / 2


def _pairs(case, seed=0):
  """(N, D) float32 pairs: 'plain' (positives near their anchor), or 'uneven' (row norms
  from 1e-3 to 1e3 and tight clusters, so that at low temperature logits reach +-1/tau and
  a logsumexp without its running max overflows float32)."""
  rng = np.random.default_rng(seed)
  if case == "plain":
    x = rng.normal(size=(N, D))
    return x.astype(np.float32), (x + 0.5 * rng.normal(size=(N, D))).astype(np.float32)
  centers = rng.normal(size=(4, D))
  x = centers[rng.integers(0, 4, N)] + 0.05 * rng.normal(size=(N, D))
  y = x + 0.05 * rng.normal(size=(N, D))
  scales = lambda: 10.0 ** rng.uniform(-3, 3, size=(N, 1))
  return (x * scales()).astype(np.float32), (y * scales()).astype(np.float32)


def _value_and_grads(loss_fn, x, y):
  return jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))(x, y)


def _assert_same(got, want, rtol=1e-5):
  """Loss to rtol; gradients to rtol of their largest entry (small entries are sums of
  cancelling terms, so their own relative error is meaningless)."""
  (value, grads), (want_value, want_grads) = got, want
  np.testing.assert_allclose(value, want_value, rtol=rtol)
  for g, w in zip(grads, want_grads):
    np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * np.abs(w).max())


@pytest.fixture(scope="module")
def mesh():
  return parallel.make_mesh(8)


# `mesh` is static for jit: the closures below are jitted per call, one compile each.
CASES = [("plain", 0.5, None), ("uneven", 0.05, None), ("uneven", 0.01, 2)]


@pytest.mark.parametrize("case, temperature, chunk_size", CASES)
def test_ring_nt_xent_matches_dense_and_float64(mesh, case, temperature, chunk_size):
  z1, z2 = _pairs(case)
  sharding = parallel.data_sharding(mesh)
  got = _value_and_grads(
      lambda a, b: losses.ring_nt_xent(a, b, temperature=temperature, mesh=mesh,
                                       chunk_size=chunk_size),
      jax.device_put(z1, sharding), jax.device_put(z2, sharding))
  want = _value_and_grads(lambda a, b: losses.nt_xent(a, b, temperature=temperature), z1, z2)
  assert np.isfinite(got[0]) and all(np.all(np.isfinite(g)) for g in got[1])
  _assert_same(got, want)
  np.testing.assert_allclose(got[0], _nt_xent_reference(z1, z2, temperature), rtol=1e-5)


@pytest.mark.parametrize("case, temperature, chunk_size", CASES[:2])
def test_ring_clip_loss_matches_dense_and_float64(mesh, case, temperature, chunk_size):
  a, b = _pairs(case, seed=1)
  got = _value_and_grads(
      lambda a, b: losses.ring_clip_loss(a, b, temperature=temperature, mesh=mesh,
                                         chunk_size=chunk_size), a, b)
  want = _value_and_grads(lambda a, b: losses.clip_loss(a, b, temperature=temperature), a, b)
  _assert_same(got, want)
  np.testing.assert_allclose(got[0], _clip_reference(a, b, temperature), rtol=1e-5)


def test_clip_loss_hand_value():
  # a = b = I_2, tau = 1: each row and column has its pair at logit 1 and one other at 0.
  z = jnp.eye(2)
  np.testing.assert_allclose(losses.clip_loss(z, z, temperature=1.0),
                             np.log(1 + np.exp(-1.0)), rtol=1e-6)


@pytest.mark.parametrize("ring, dense", [("ring_clip_loss", "clip_loss"),
                                         ("ring_nt_xent", "nt_xent")])
def test_learnable_temperature_gets_the_dense_gradient(mesh, ring, dense):
  # CLIP learns its temperature: the custom VJP must return d loss / d tau too.
  a, b = _pairs("plain", seed=2)
  ring, dense = getattr(losses, ring), getattr(losses, dense)
  got = jax.jit(jax.grad(lambda t: ring(a, b, temperature=t, mesh=mesh)))(0.2)
  want = jax.jit(jax.grad(lambda t: dense(a, b, temperature=t)))(0.2)
  np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 4, 32])
def test_chunked_nt_xent_matches_dense(chunk_size):
  z1, z2 = _pairs("uneven", seed=3)
  got = _value_and_grads(lambda a, b: losses.chunked_nt_xent(
      a, b, temperature=0.05, chunk_size=chunk_size), z1, z2)
  want = _value_and_grads(lambda a, b: losses.nt_xent(a, b, temperature=0.05), z1, z2)
  _assert_same(got, want)
  np.testing.assert_allclose(got[0], _nt_xent_reference(z1, z2, 0.05), rtol=1e-5)


@pytest.mark.parametrize("chunk_size", [0, 5, 64])
def test_chunk_size_not_dividing_the_anchors_raises(mesh, chunk_size):
  z = np.ones((N, D), np.float32)
  with pytest.raises(ValueError, match=f"chunk_size={chunk_size} must be positive and divide"):
    losses.chunked_nt_xent(z, z, temperature=0.1, chunk_size=chunk_size)
  if chunk_size:  # the ring's tiles split each device's 2N/8 = 4 anchors
    with pytest.raises(ValueError, match="anchors of one device"):
      losses.ring_nt_xent(z, z, temperature=0.1, mesh=mesh, chunk_size=chunk_size)


@pytest.mark.parametrize("loss", ["ring_nt_xent", "ring_clip_loss"])
def test_bad_shapes_raise(mesh, loss):
  ring = getattr(losses, loss)
  z = np.ones((N, D), np.float32)
  with pytest.raises(ValueError, match="same shape"):
    ring(z, z[:, :4], temperature=0.1, mesh=mesh)
  with pytest.raises(ValueError, match="same shape"):
    ring(z[0], z[0], temperature=0.1, mesh=mesh)
  with pytest.raises(ValueError, match="does not split over the 8 devices"):
    ring(z[:12], z[:12], temperature=0.1, mesh=mesh)
  with pytest.raises(ValueError, match="not an axis of the mesh"):
    ring(z, z, temperature=0.1, mesh=mesh, axis_name="model")


def test_ring_gradient_memory_is_a_fraction_of_dense(mesh):
  # Measured, not assumed: per-device temporaries of the compiled loss + gradient. With
  # autodiff through the ring (no custom VJP) every key block would be a residual; dense
  # keeps (2N/8, 2N) logits or more per device, the ring one (2N/8, 2N/8) tile.
  n = 512
  z = jax.ShapeDtypeStruct((n, 64), jnp.float32, sharding=parallel.data_sharding(mesh))

  def temp_bytes(loss_fn):
    grad = jax.jit(jax.grad(lambda a, b: loss_fn(a, b), argnums=(0, 1)))
    return grad.lower(z, z).compile().memory_analysis().temp_size_in_bytes

  dense = temp_bytes(lambda a, b: losses.nt_xent(a, b, temperature=0.1))
  ring = temp_bytes(lambda a, b: losses.ring_nt_xent(a, b, temperature=0.1, mesh=mesh))
  tile = (2 * n // 8) ** 2 * 4
  assert ring < 8 * tile < dense / 2, (ring, tile, dense)


def test_simclr_ring_takes_the_mesh_it_holds_or_the_context_mesh(mesh):
  z1, z2 = _pairs("plain", seed=4)
  online = [{"embedding": z1}, {"embedding": z2}]
  want = losses.nt_xent(z1, z2, temperature=0.1)
  loss = lambda method: jax.jit(lambda o: method.loss(o, None, None, None)[0])(online)
  no_model = {"model": None, "views": ()}
  np.testing.assert_allclose(loss(methods.SimCLR(**no_model, loss_impl="ring", mesh=mesh)),
                             want, rtol=1e-5)
  with pytest.raises(ValueError, match="needs a mesh"):
    loss(methods.SimCLR(**no_model, loss_impl="ring"))
  with jax.set_mesh(mesh):
    np.testing.assert_allclose(loss(methods.SimCLR(**no_model, loss_impl="ring")), want,
                               rtol=1e-5)
  with pytest.raises(ValueError, match="loss_impl='flash': unknown"):
    methods.SimCLR(**no_model, loss_impl="flash")


IMAGE_SHAPE = (16, 16, 1)


def _train(c, mesh, images):
  example = {"image": images[0, :2]}
  method = build.build_method(c, methods.Setup(10, 5, example, mesh))
  optimizer, _ = build.build_optimizer(c, total_steps=10, steps_per_epoch=5)
  state = init_state(method, optimizer, jax.random.key(0), example)
  state = parallel.replicate(jax.device_get(state), mesh)
  step = make_step(mesh, method=method, optimizer=optimizer)
  losses_ = []
  for batch in images:
    state, metrics = step(state, to_global_array({"image": batch},
                                                 parallel.data_sharding(mesh)),
                          jax.random.key(1))
    losses_.append(float(metrics["loss"]))
  return jax.device_get(state.params), losses_


def test_simclr_step_ring_equals_dense(tiny_config):
  images = np.random.default_rng(0).integers(0, 256, (2, 16, *IMAGE_SHAPE), np.uint8)
  results = {}
  for impl in ("dense", "ring"):
    c = tiny_config("simclr", 16)
    c.num_devices = 4  # several devices, fewer threads to wait for than 8
    c.optim.warmup_epochs = 0.0  # the first step already moves the params
    c.simclr.loss_impl = impl
    config.validate(c)
    results[impl] = _train(c, parallel.make_mesh(c.num_devices), images)
  (dense_params, dense_losses), (ring_params, ring_losses) = results["dense"], results["ring"]
  np.testing.assert_allclose(ring_losses, dense_losses, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(ring_params), jax.tree.leaves(dense_params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl, chunk_size, message", [
    ("flash", 0, "config.simclr.loss_impl='flash'"),
    ("chunked", 0, "config.simclr.chunk_size=0"),
    ("chunked", 24, "config.simclr.chunk_size=24"),  # 2 x 256 anchors
    ("ring", 3, "config.simclr.chunk_size=3"),
])
def test_config_validates_loss_impl_and_chunk_size(impl, chunk_size, message):
  c = config.base_config()
  c.simclr.loss_impl, c.simclr.chunk_size = impl, chunk_size
  with pytest.raises(ValueError, match=re.escape(message)):
    config.validate(c)
  c.simclr.chunk_size = 128
  if impl != "flash":
    config.validate(c)
