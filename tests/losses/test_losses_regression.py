"""BYOL's normalised MSE: hand values, a float64 reference, and its stop-gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax import losses

normalized_mse = jax.jit(losses.normalized_mse)


@pytest.mark.parametrize("target, expected", [
    ([[0.0, 3.0]], 2.0),   # orthogonal: 2 - 2 * 0
    ([[5.0, 0.0]], 0.0),   # same direction, other norm: 2 - 2 * 1
    ([[-0.5, 0.0]], 4.0),  # opposite: 2 - 2 * (-1)
])
def test_hand_values(target, expected):
  prediction = jnp.array([[2.0, 0.0]])
  np.testing.assert_allclose(normalized_mse(prediction, jnp.array(target)), expected,
                             atol=1e-6)


def test_mean_over_pairs_hand_value():
  # Pairs at cos 1, 0, -1 and cos 60 deg = 0.5: (0 + 2 + 4 + 1) / 4 = 1.75.
  prediction = jnp.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
  target = jnp.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.5, np.sqrt(3) / 2]])
  np.testing.assert_allclose(normalized_mse(prediction, target), 1.75, atol=1e-6)


def test_matches_float64_reference_and_squared_distance():
  rng = np.random.default_rng(0)
  p = rng.normal(size=(10, 7))
  z = rng.normal(size=(10, 7))
  p_hat = p / np.linalg.norm(p, axis=1, keepdims=True)
  z_hat = z / np.linalg.norm(z, axis=1, keepdims=True)
  # Grill et al. 2020, eq. 2: || p_hat - z_hat ||^2, averaged over pairs.
  expected = np.mean(np.sum((p_hat - z_hat) ** 2, axis=1))
  got = normalized_mse(p.astype(np.float32), z.astype(np.float32))
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_gradient_only_reaches_the_prediction():
  rng = np.random.default_rng(1)
  p = rng.normal(size=(6, 4))
  z = rng.normal(size=(6, 4))
  g_target = jax.jit(jax.grad(losses.normalized_mse, argnums=1))(p.astype(np.float32),
                                                        z.astype(np.float32))
  np.testing.assert_array_equal(g_target, 0.0)
  g_prediction = jax.jit(jax.grad(losses.normalized_mse, argnums=0))(p.astype(np.float32),
                                                            z.astype(np.float32))
  # Closed form: d/dp (2 - 2 cos(p, z)) / N = -2 (z_hat - cos * p_hat) / (|p| N).
  norm_p = np.linalg.norm(p, axis=1, keepdims=True)
  p_hat = p / norm_p
  z_hat = z / np.linalg.norm(z, axis=1, keepdims=True)
  cos = np.sum(p_hat * z_hat, axis=1, keepdims=True)
  expected = -2.0 * (z_hat - cos * p_hat) / (norm_p * len(p))
  assert np.abs(expected).max() > 1e-2
  np.testing.assert_allclose(g_prediction, expected, rtol=1e-4, atol=1e-6)
