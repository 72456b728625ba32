"""The image-text losses with learnable parameters: CLIP's logit scale gets the float64
reference gradient; SigLIP's sigmoid loss against a float64 NumPy reference and hand
values, with the gradients of its learnable scale and bias, its ring / chunked version
equal to the dense one on 8 devices in loss and every gradient, and the ring's memory
growing linearly with the batch. (CLIP's ring against dense: test_losses_blockwise.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax import losses, parallel

N, D = 16, 6  # 2 pairs per device on 8 devices


def _normalize(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def _siglip_reference(a, b, scale, bias):
  """Zhai et al. 2023, Algorithm 1, float64: loss, and d loss / d scale, d loss / d bias."""
  cosines = _normalize(a) @ _normalize(b).T
  signs = 2 * np.eye(len(a)) - 1
  x = scale * cosines + bias
  loss = -np.sum(_log_sigmoid(signs * x)) / len(a)
  # d/dx -log sigmoid(z x) = -z sigmoid(-z x)
  dx = -signs / (1 + np.exp(signs * x)) / len(a)
  return loss, np.sum(dx * cosines), np.sum(dx)


def _pairs(seed, scale=1.0):
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(N, D))
  b = a + 0.7 * rng.normal(size=(N, D))
  norms = 10.0 ** rng.uniform(-2, 2, size=(N, 1))  # the loss must not see row norms
  return (a * norms * scale).astype(np.float32), (b * scale).astype(np.float32)


def _clip_reference(a, b, scale):
  """Radford et al. 2021, Figure 3, float64, logits scale * cos: loss and d loss / d scale."""
  cosines = _normalize(a) @ _normalize(b).T
  n = len(a)

  def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

  def lse(x):
    return x.max(axis=1) + np.log(np.sum(np.exp(x - x.max(axis=1, keepdims=True)), axis=1))

  x = scale * cosines
  loss = (np.mean(lse(x) - np.diag(x)) + np.mean(lse(x.T) - np.diag(x))) / 2
  # d lse_i / d scale = sum_j softmax_ij cos_ij; the positive contributes cos_ii.
  rows = np.sum(softmax(x) * cosines, axis=1) - np.diag(cosines)
  columns = np.sum(softmax(x.T) * cosines.T, axis=1) - np.diag(cosines)
  return loss, (rows.sum() + columns.sum()) / (2 * n)


@pytest.mark.parametrize("log_scale", [np.log(1 / 0.07), np.log(100.0), 0.0])
def test_clip_logit_scale_gets_the_float64_gradient(log_scale):
  # CLIP's temperature is 1 / exp(logit_scale), learnt from log(1 / 0.07).
  a, b = _pairs(3)
  loss, grad = jax.jit(jax.value_and_grad(
      lambda s: losses.clip_loss(a, b, temperature=1.0 / jnp.exp(s))))(log_scale)
  want, want_dscale = _clip_reference(a, b, np.exp(log_scale))
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  # d loss / d log_scale = scale * d loss / d scale
  np.testing.assert_allclose(grad, np.exp(log_scale) * want_dscale, rtol=1e-4, atol=1e-6)
  assert abs(float(grad)) > 1e-4


@pytest.fixture(scope="module")
def mesh():
  return parallel.make_mesh(8)


def test_hand_value():
  # a = b = I_2, t = 1, b = 0: each row has its pair at logit 1 and one negative at 0.
  z = jnp.eye(2)
  np.testing.assert_allclose(losses.siglip_loss(z, z, scale=1.0, bias=0.0),
                             np.log(1 + np.exp(-1.0)) + np.log(2.0), rtol=1e-6)
  # At the paper's initialisation (t = 10, b = -10) orthogonal negatives cost ~ e^-10 each
  # and a perfect positive log 2.
  np.testing.assert_allclose(losses.siglip_loss(z, z, scale=10.0, bias=-10.0),
                             np.log(2.0) + np.log1p(np.exp(-10.0)), rtol=1e-6)


@pytest.mark.parametrize("scale, bias", [(10.0, -10.0), (1.0, 0.0), (50.0, -3.0)])
def test_matches_float64_reference_with_scale_and_bias_gradients(scale, bias):
  a, b = _pairs(0)
  loss, (dscale, dbias) = jax.jit(jax.value_and_grad(
      lambda t, c: losses.siglip_loss(a, b, scale=t, bias=c), argnums=(0, 1)))(scale, bias)
  want, want_dscale, want_dbias = _siglip_reference(a, b, scale, bias)
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  np.testing.assert_allclose(dscale, want_dscale, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(dbias, want_dbias, rtol=1e-4, atol=1e-6)
  # The learnable parameters do move: a non-zero gradient for both.
  assert abs(float(dscale)) > 1e-4 and abs(float(dbias)) > 1e-4


def test_positives_are_the_diagonal_not_any_row():
  a, b = _pairs(1)
  perm = np.roll(np.arange(N), 1)
  aligned = losses.siglip_loss(a, b, scale=10.0, bias=-5.0)
  # Permuting both keeps the pairs (same loss); permuting one breaks them (higher loss).
  np.testing.assert_allclose(losses.siglip_loss(a[perm], b[perm], scale=10.0, bias=-5.0),
                             aligned, rtol=1e-5)
  assert float(losses.siglip_loss(a, b[perm], scale=10.0, bias=-5.0)) > float(aligned) + 1.0


@pytest.mark.parametrize("chunk_size", [None, 1])
def test_ring_matches_dense_in_loss_and_every_gradient(mesh, chunk_size):
  a, b = _pairs(2)
  sharding = parallel.data_sharding(mesh)

  def value_and_grads(loss_fn, a, b):
    return jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1, 2, 3)))(
        a, b, jnp.float32(10.0), jnp.float32(-10.0))

  got_value, got = value_and_grads(
      lambda a, b, t, c: losses.ring_siglip_loss(a, b, scale=t, bias=c, mesh=mesh,
                                                 chunk_size=chunk_size),
      jax.device_put(a, sharding), jax.device_put(b, sharding))
  want_value, want = value_and_grads(
      lambda a, b, t, c: losses.siglip_loss(a, b, scale=t, bias=c), a, b)
  np.testing.assert_allclose(got_value, want_value, rtol=1e-5)
  np.testing.assert_allclose(got_value, _siglip_reference(a, b, 10.0, -10.0)[0], rtol=1e-5)
  for g, w in zip(got, want):  # d/da, d/db, d/dscale, d/dbias
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * np.abs(w).max())


def test_ring_refuses_a_chunk_that_does_not_divide_a_device_rows(mesh):
  z = np.ones((N, D), np.float32)
  with pytest.raises(ValueError, match="chunk_size=3 must be positive and divide N/P = 2"):
    losses.ring_siglip_loss(z, z, scale=10.0, bias=-10.0, mesh=mesh, chunk_size=3)


def test_ring_memory_grows_linearly_with_the_batch(mesh):
  # Per-device temporaries of the compiled loss + gradient at N and 2N, D = 64: dense
  # holds (N/8, N) logits (4x per doubling); the tiled ring (N/8 rows in tiles of 16)
  # holds one (16, N/8) tile and the key block of every ring step (2x per doubling).
  def temp_bytes(loss_fn, n):
    z = jax.ShapeDtypeStruct((n, 64), jnp.float32, sharding=parallel.data_sharding(mesh))
    grad = jax.jit(jax.grad(loss_fn, argnums=(0, 1)))
    return grad.lower(z, z).compile().memory_analysis().temp_size_in_bytes

  def dense(a, b):
    return losses.siglip_loss(a, b, scale=10.0, bias=-10.0)

  def ring(a, b):
    return losses.ring_siglip_loss(a, b, scale=10.0, bias=-10.0, mesh=mesh, chunk_size=16)

  sizes = (1024, 2048)
  dense_bytes = [temp_bytes(dense, n) for n in sizes]
  ring_bytes = [temp_bytes(ring, n) for n in sizes]
  assert ring_bytes[1] / ring_bytes[0] < 2.5, ring_bytes
  assert dense_bytes[1] / dense_bytes[0] > 3.0, dense_bytes
  assert ring_bytes[1] < dense_bytes[1] / 2, (ring_bytes, dense_bytes)
