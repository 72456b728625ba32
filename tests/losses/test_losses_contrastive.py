"""NT-Xent (SimCLR): hand values, a float64 NumPy reference, invariances, jit/grad, sharding."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jejax import losses, parallel

# One compile per shape instead of one per eager op (much faster on a busy CPU).
nt_xent = jax.jit(losses.nt_xent)


def _nt_xent_reference(z1, z2, temperature):
  """Chen et al. 2020, eq. 1, averaged over the 2N anchors, in float64."""
  z = np.concatenate([z1, z2], 0).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n2 = len(z)
  n = n2 // 2
  total = 0.0
  for a in range(n2):
    positive = (a + n) % n2
    logits = np.array([z[a] @ z[b] / temperature for b in range(n2) if b != a])
    m = logits.max()
    log_denominator = m + np.log(np.sum(np.exp(logits - m)))
    total += log_denominator - z[a] @ z[positive] / temperature
  return total / n2


@pytest.mark.parametrize("n", [2, 4])
def test_identity_embeddings_hand_value(n):
  # z1 = z2 = I_n, tau = 1: every anchor has its positive at cos 1 (logit 1) and 2n - 2
  # negatives at cos 0 (logit 0): loss = log(e + (2n - 2)) - 1.
  # n = 2: log(2.71828 + 2) - 1 = 1.55144 - 1 = 0.55144.
  z = jnp.eye(n)
  expected = math.log(math.e + 2 * n - 2) - 1.0
  if n == 2:
    assert expected == pytest.approx(0.55144, abs=1e-5)
  np.testing.assert_allclose(nt_xent(z, z, temperature=1.0), expected, rtol=1e-6)


def test_positive_is_the_other_view_not_any_row():
  # z1 = I_2, z2 = I_2 with its rows swapped: anchor e1 (view 1) now has the positive e2
  # (logit 0) and negatives e2 (0) and e1 (1): -log(1 / (1 + 1 + e)) = log(2 + e) = 1.55144.
  z1 = jnp.eye(2)
  z2 = jnp.eye(2)[::-1]
  np.testing.assert_allclose(nt_xent(z1, z2, temperature=1.0),
                             math.log(2.0 + math.e), rtol=1e-6)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_matches_float64_reference(temperature):
  rng = np.random.default_rng(0)
  z1 = rng.normal(size=(8, 5)).astype(np.float32)
  z2 = (z1 + 0.5 * rng.normal(size=(8, 5))).astype(np.float32)
  got = nt_xent(z1, z2, temperature=temperature)
  np.testing.assert_allclose(got, _nt_xent_reference(z1, z2, temperature), rtol=1e-5)


def test_invariant_to_row_scales_and_view_swap():
  rng = np.random.default_rng(1)
  z1 = rng.normal(size=(8, 5)).astype(np.float32)
  z2 = rng.normal(size=(8, 5)).astype(np.float32)
  s1 = rng.uniform(0.1, 10.0, size=(8, 1)).astype(np.float32)
  s2 = rng.uniform(0.1, 10.0, size=(8, 1)).astype(np.float32)
  base = nt_xent(z1, z2, temperature=0.5)
  np.testing.assert_allclose(nt_xent(z1 * s1, z2 * s2, temperature=0.5), base,
                             rtol=1e-5)
  # The 2N anchors are symmetric in the two views.
  np.testing.assert_allclose(nt_xent(z2, z1, temperature=0.5), base, rtol=1e-5)


def test_jit_and_grad_finite_and_radial_gradient_zero():
  rng = np.random.default_rng(2)
  z1 = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
  z2 = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
  loss_fn = lambda a, b: losses.nt_xent(a, b, temperature=0.1)
  value, (g1, g2) = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))(z1, z2)
  np.testing.assert_allclose(value, _nt_xent_reference(np.asarray(z1), np.asarray(z2), 0.1),
                             rtol=1e-5)
  assert np.all(np.isfinite(g1)) and np.all(np.isfinite(g2))
  assert np.abs(g1).max() > 1e-3
  # The loss depends only on directions, so each row's gradient is orthogonal to the row.
  radial = np.sum(np.asarray(g1) * np.asarray(z1), axis=1) / np.abs(g1).max()
  np.testing.assert_allclose(radial, 0.0, atol=1e-5)


def test_sharded_global_batch_matches_one_device():
  # The negatives span the global batch, also when it is split over 8 devices.
  mesh = parallel.make_mesh(8)
  rng = np.random.default_rng(3)
  z1 = rng.normal(size=(16, 6)).astype(np.float32)
  z2 = rng.normal(size=(16, 6)).astype(np.float32)
  sharding = NamedSharding(mesh, P(parallel.DATA_AXIS))
  got = nt_xent(
      jax.device_put(z1, sharding), jax.device_put(z2, sharding), temperature=0.5)
  np.testing.assert_allclose(got, _nt_xent_reference(z1, z2, 0.5), rtol=1e-5)
