"""Collapse diagnostics: RankMe effective rank and the std of normalised embeddings."""

import math

import jax
import numpy as np
import pytest

from jejax.eval import diagnostics

effective_rank = jax.jit(diagnostics.effective_rank)
embedding_std = jax.jit(diagnostics.embedding_std)


def _orthogonal(n, seed):
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
  return q


@pytest.mark.parametrize("n", [3, 8])
def test_effective_rank_of_identity_is_n(n):
  # Singular values all 1: p_i = 1/n, entropy log n, exp(entropy) = n.
  np.testing.assert_allclose(effective_rank(np.eye(n, dtype=np.float32)), n, atol=1e-3)


def test_effective_rank_of_rank_one_matrix_is_one():
  rng = np.random.default_rng(0)
  z = np.outer(rng.normal(size=12), rng.normal(size=6)).astype(np.float32)
  np.testing.assert_allclose(effective_rank(z), 1.0, atol=1e-3)


def test_effective_rank_of_singular_values_three_and_one():
  # s = (3, 1): p = (0.75, 0.25),
  # H = -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.75 * 0.2876821 + 0.25 * 1.3862944 = 0.5623351,
  # exp(H) = 0.75**-0.75 * 0.25**-0.25 = 1.7547654.
  expected = 0.75**-0.75 * 0.25**-0.25
  assert expected == pytest.approx(math.exp(0.5623351), abs=1e-6)
  assert expected == pytest.approx(1.7547654, abs=1e-6)
  # A rotated, non-diagonal (5, 2) matrix with those singular values.
  u = _orthogonal(5, seed=1)[:, :2]
  v = _orthogonal(2, seed=2)
  z = (u @ np.diag([3.0, 1.0]) @ v.T).astype(np.float32)
  np.testing.assert_allclose(effective_rank(z), expected, atol=1e-4)
  # RankMe is scale-free.
  np.testing.assert_allclose(effective_rank(7.0 * z), expected, atol=1e-4)


def test_effective_rank_matches_float64_reference_and_bounds():
  z = np.random.default_rng(3).normal(size=(20, 6))
  s = np.linalg.svd(z, compute_uv=False)
  p = s / s.sum()
  expected = np.exp(-np.sum(p * np.log(p)))  # Garrido et al. 2023, eq. 1 (eps -> 0)
  got = float(effective_rank(z.astype(np.float32)))
  np.testing.assert_allclose(got, expected, rtol=1e-4)
  assert 1.0 < got < 6.0


def test_embedding_std_of_identical_rows_is_zero():
  z = np.tile(np.array([[1.0, -2.0, 3.0, 0.5]], np.float32), (6, 1))
  np.testing.assert_allclose(embedding_std(z), 0.0, atol=1e-6)


@pytest.mark.parametrize("d", [2, 4])
def test_embedding_std_of_scaled_identity_rows(d):
  # Rows of diag(1, ..., d) normalise to the rows of I_d. Each column holds one 1 and d - 1
  # zeros: mean 1/d, E[x^2] = 1/d, population std sqrt(1/d - 1/d^2).
  # d = 4: sqrt(0.25 - 0.0625) = sqrt(0.1875) = 0.4330127.
  expected = math.sqrt(1.0 / d - 1.0 / d**2)
  if d == 4:
    assert expected == pytest.approx(0.4330127, abs=1e-7)
  z = np.diag(np.arange(1.0, d + 1.0)).astype(np.float32)
  np.testing.assert_allclose(embedding_std(z), expected, rtol=1e-5)


def test_embedding_std_matches_float64_reference():
  z = np.random.default_rng(4).normal(size=(50, 8)) * np.arange(1.0, 51.0)[:, None]
  z_hat = z / np.linalg.norm(z, axis=1, keepdims=True)
  expected = np.mean(np.std(z_hat, axis=0))  # ddof=0, as SimSiam's monitor
  np.testing.assert_allclose(embedding_std(z.astype(np.float32)), expected, rtol=1e-5)


def test_singular_values_match_float64_svd():
  rng = np.random.default_rng(3)
  for shape in [(40, 7), (5, 9)]:  # tall (Z^T Z) and wide (Z Z^T)
    z = rng.normal(size=shape)
    reference = np.linalg.svd(z, compute_uv=False)  # float64, descending
    np.testing.assert_allclose(jax.jit(diagnostics.singular_values)(z.astype(np.float32)),
                               reference[:min(shape)], rtol=1e-4)
