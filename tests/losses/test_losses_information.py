"""VICReg, Barlow Twins and SimSiam's loss against float64 NumPy references of the papers'
formulas and hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax.losses import barlow_twins_loss, negative_cosine, vicreg_loss

vicreg = jax.jit(vicreg_loss)
barlow = jax.jit(barlow_twins_loss)


def vicreg_reference(z1, z2, lam=25.0, mu=25.0, nu=1.0, eps=1e-4):
  z1, z2 = np.float64(z1), np.float64(z2)
  n, d = z1.shape
  inv = np.mean((z1 - z2) ** 2)
  var = sum(np.mean(np.maximum(0, 1 - np.sqrt(z.var(0, ddof=1) + eps))) for z in (z1, z2)) / 2
  cov = 0.0
  for z in (z1, z2):
    c = np.cov(z, rowvar=False)  # unbiased, (D, D)
    cov += (np.sum(c ** 2) - np.sum(np.diag(c) ** 2)) / d
  return lam * inv + mu * var + nu * cov, inv, var, cov


def barlow_reference(z1, z2, lam=0.0051, eps=1e-5):
  z1, z2 = np.float64(z1), np.float64(z2)
  a = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + eps)
  b = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + eps)
  c = a.T @ b / len(z1)
  on = np.sum((1 - np.diag(c)) ** 2)
  off = np.sum(c ** 2) - np.sum(np.diag(c) ** 2)
  return on + lam * off, on, off


def test_vicreg_hand_computed():
  # z1 = z2 = [[1, 0], [-1, 0]]: no invariance term; dim 0 has unbiased var 2 (std > 1,
  # no hinge), dim 1 has var 0 so std = sqrt(1e-4) = 0.01 and hinge 0.99; the mean over
  # the 2 dims is 0.495 for each view. Cov = [[2, 0], [0, 0]] has no off-diagonal.
  # loss = 25 * 0.495 = 12.375
  z = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
  loss, metrics = vicreg(z, z)
  assert float(loss) == pytest.approx(12.375, rel=1e-6)
  assert float(metrics["invariance"]) == 0.0 and float(metrics["covariance"]) == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_vicreg_matches_float64_reference(seed):
  rng = np.random.default_rng(seed)
  z1 = rng.normal(size=(16, 6)) * rng.uniform(0.2, 2.0, size=6)  # some dims below std 1
  z2 = z1 + 0.3 * rng.normal(size=(16, 6))
  loss, metrics = vicreg(np.float32(z1), np.float32(z2))
  ref, inv, var, cov = vicreg_reference(z1, z2)
  assert float(loss) == pytest.approx(ref, rel=1e-5)
  np.testing.assert_allclose([metrics["invariance"], metrics["variance"],
                              metrics["covariance"]], [inv, var, cov], rtol=1e-5, atol=1e-7)


def test_barlow_twins_of_identical_decorrelated_views_is_zero():
  # Orthogonal, zero-mean columns: the standardised cross-correlation is the identity.
  z = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 8)))[0][:, :4]
  z = z - z.mean(0)
  z = np.linalg.qr(z)[0][:, :4]  # re-orthogonalise after centring
  loss, _ = barlow(np.float32(z), np.float32(z))
  assert float(loss) < 1e-3
  assert float(loss) == pytest.approx(barlow_reference(z, z)[0], abs=1e-4)


@pytest.mark.parametrize("lam", [0.0051, 1.0])
def test_barlow_twins_matches_float64_reference(lam):
  rng = np.random.default_rng(3)
  z1 = rng.normal(size=(32, 5))
  z2 = z1 @ rng.normal(size=(5, 5)) + rng.normal(size=(32, 5))
  loss, metrics = barlow_twins_loss(np.float32(z1), np.float32(z2), off_diagonal_weight=lam)
  ref, on, off = barlow_reference(z1, z2, lam=lam)
  assert float(loss) == pytest.approx(ref, rel=1e-5)
  np.testing.assert_allclose([metrics["on_diagonal"], metrics["off_diagonal"]], [on, off],
                             rtol=1e-5)


def test_negative_cosine_values_and_stop_gradient():
  p = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
  z = jnp.array([[3.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
  # cosines 1, 0, -1 -> mean 0 -> loss -0
  assert float(negative_cosine(p, z)) == pytest.approx(0.0, abs=1e-7)
  assert float(negative_cosine(p, p)) == pytest.approx(-1.0)
  grad_target = jax.grad(lambda t: negative_cosine(p, t))(z + 0.5)
  np.testing.assert_array_equal(grad_target, 0.0)
  grad_prediction = jax.grad(lambda q: negative_cosine(q, z))(p + 0.5)
  assert float(jnp.abs(grad_prediction).sum()) > 0
