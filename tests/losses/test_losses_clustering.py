"""Sinkhorn-Knopp and SwAV's swapped prediction against the paper's algorithm in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jejax import losses, parallel

sinkhorn_knopp = jax.jit(losses.sinkhorn_knopp, static_argnames="num_iters")
swav_loss = jax.jit(losses.swav_loss, static_argnames=("num_iters", "num_assigned"))


def _sinkhorn_reference(scores, epsilon, num_iters):
  """Algorithm 1 of SwAV (Caron et al. 2020), in exp space and float64."""
  q = np.exp(np.asarray(scores, np.float64) / epsilon).T  # (K, B)
  k, b = q.shape
  q /= q.sum()
  for _ in range(num_iters):
    q /= q.sum(axis=1, keepdims=True)  # each prototype ...
    q /= k                             # ... gets mass 1/K
    q /= q.sum(axis=0, keepdims=True)  # each sample ...
    q /= b                             # ... gets mass 1/B
  q *= b
  return q.T  # (B, K)


def _log_softmax(x):
  x = x - x.max(axis=1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _cross_entropy(q, s, temperature):
  """-mean_b sum_k q log softmax(s / T)."""
  return -np.mean(np.sum(q * _log_softmax(np.asarray(s, np.float64) / temperature), axis=1))


def _scores(shape, seed):
  """Cosine-like scores in [-1, 1]: exp(1 / 0.05) stays finite in float64."""
  return np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(16, 8), (6, 12)])
@pytest.mark.parametrize("epsilon", [0.05, 0.5])
def test_sinkhorn_matches_paper_algorithm(shape, epsilon):
  scores = _scores(shape, seed=shape[0])
  got = sinkhorn_knopp(scores, epsilon=epsilon, num_iters=3)
  assert got.shape == shape
  np.testing.assert_allclose(got, _sinkhorn_reference(scores, epsilon, 3), rtol=1e-4,
                             atol=1e-6)


def test_sinkhorn_rows_sum_to_one_and_columns_converge_to_b_over_k():
  b, k = 16, 8
  scores = _scores((b, k), seed=1)
  # After the paper's 3 rounds the rows sum to 1 (the last step normalises them) but the
  # columns are still far from the marginal B/K = 2 at epsilon 0.05.
  codes3 = np.asarray(sinkhorn_knopp(scores, epsilon=0.05, num_iters=3))
  np.testing.assert_allclose(codes3.sum(axis=1), 1.0, atol=1e-5)
  assert np.abs(codes3.sum(axis=0) - b / k).max() > 0.1
  # Run eagerly: the 200 rounds are not unrolled into one XLA program.
  codes = np.asarray(losses.sinkhorn_knopp(scores, epsilon=0.05, num_iters=200))
  np.testing.assert_allclose(codes.sum(axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(codes.sum(axis=0), b / k, atol=1e-4)  # 16 / 8 = 2
  assert np.all(codes >= 0)


def test_sinkhorn_is_not_differentiated():
  scores = jnp.asarray(_scores((6, 4), seed=2))
  weights = jnp.asarray(_scores((6, 4), seed=3))
  grad = jax.jit(jax.grad(
      lambda s: jnp.sum(losses.sinkhorn_knopp(s, epsilon=0.5) * weights)))(scores)
  np.testing.assert_array_equal(grad, 0.0)


def test_sinkhorn_sharded_batch_uses_global_column_sums():
  mesh = parallel.make_mesh(8)
  scores = _scores((16, 8), seed=4)
  sharded = jax.device_put(scores, NamedSharding(mesh, P(parallel.DATA_AXIS)))
  got = jax.jit(lambda s: losses.sinkhorn_knopp(s, epsilon=0.05, num_iters=3))(sharded)
  np.testing.assert_allclose(got, _sinkhorn_reference(scores, 0.05, 3), rtol=1e-4, atol=1e-6)


def test_swav_loss_two_views_matches_reference():
  t, eps = 0.1, 0.05
  s1, s2 = _scores((16, 8), seed=5), _scores((16, 8), seed=6)
  q1, q2 = _sinkhorn_reference(s1, eps, 3), _sinkhorn_reference(s2, eps, 3)
  # Swapped prediction (Caron et al. 2020, eq. 1): each view's code from the other's scores.
  expected = 0.5 * (_cross_entropy(q1, s2, t) + _cross_entropy(q2, s1, t))
  got = swav_loss([s1, s2], temperature=t, epsilon=eps, num_iters=3, num_assigned=2)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_swav_loss_three_views_averages_the_four_pairs():
  t, eps = 0.2, 0.5
  s = [_scores((6, 12), seed=7 + i) for i in range(3)]
  q = [_sinkhorn_reference(s[i], eps, 3) for i in range(2)]
  # Codes of views 0 and 1 only; pairs (q0, s1), (q0, s2), (q1, s0), (q1, s2).
  expected = (_cross_entropy(q[0], s[1], t) + _cross_entropy(q[0], s[2], t) +
              _cross_entropy(q[1], s[0], t) + _cross_entropy(q[1], s[2], t)) / 4
  got = swav_loss(s, temperature=t, epsilon=eps, num_iters=3, num_assigned=2)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # num_assigned=1: only view 0 is coded, predicted from views 1 and 2.
  expected1 = (_cross_entropy(q[0], s[1], t) + _cross_entropy(q[0], s[2], t)) / 2
  got1 = swav_loss(s, temperature=t, epsilon=eps, num_iters=3, num_assigned=1)
  np.testing.assert_allclose(got1, expected1, rtol=1e-5)


def test_swav_loss_gradient_holds_codes_constant():
  t, eps = 0.1, 0.05
  s = [jnp.asarray(_scores((16, 8), seed=10 + i)) for i in range(3)]
  q = [jnp.asarray(_sinkhorn_reference(np.asarray(s[i]), eps, 3), jnp.float32)
       for i in range(2)]

  def constant_codes_loss(scores):
    pairs = [(0, 1), (0, 2), (1, 0), (1, 2)]
    return sum(-jnp.mean(jnp.sum(q[i] * jax.nn.log_softmax(scores[j] / t), axis=1))
               for i, j in pairs) / len(pairs)

  got = jax.jit(jax.grad(lambda x: losses.swav_loss(x, temperature=t, epsilon=eps,
                                                    num_iters=3, num_assigned=2)))(s)
  expected = jax.jit(jax.grad(constant_codes_loss))(s)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)
  # Closed form: d CE(q_i, softmax(s_j / T)) / d s_j = (softmax(s_j / T) - q_i) / (T B),
  # averaged over the 4 pairs. View 2 predicts both codes; it has no code of its own.
  b = 16
  p2 = np.exp(_log_softmax(np.asarray(s[2], np.float64) / t))
  expected2 = ((p2 - np.asarray(q[0])) + (p2 - np.asarray(q[1]))) / (t * b * 4)
  assert np.abs(expected2).max() > 1e-3
  np.testing.assert_allclose(got[2], expected2, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("num_views, num_assigned", [(1, 1), (2, 0), (2, 3)])
def test_swav_loss_rejects_bad_arguments(num_views, num_assigned):
  s = [_scores((4, 3), seed=i) for i in range(num_views)]
  with pytest.raises(ValueError):
    losses.swav_loss(s, num_assigned=num_assigned)
