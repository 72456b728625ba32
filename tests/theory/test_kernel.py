"""Kernel-regime joint embedding (Kiani et al. 2022, arXiv 2209.14884) in float64.

The closed forms (K6) and (K9) of `jejax.theory.kernel` against optax training of the same
kernel model (coefficients alpha, f(X) = K alpha) from several random starts, their
constraints and reported minima, the RBF kernel against numpy, and hand cases with an
identity kernel.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax import theory
from tests.theory.lbfgs import minimise

vicreg_closed_form = jax.jit(theory.kernel_vicreg_closed_form, static_argnames="k")
contrastive_closed_form = jax.jit(theory.kernel_contrastive_closed_form, static_argnames="k")


@pytest.fixture(autouse=True)
def x64():
  # Scoped so that the rest of the suite keeps float32.
  with jax.enable_x64(True):
    yield


def _problem(seed, kernel="rbf", groups=10, views=3, d=5):
  """(x, groups, K, A): `views` noisy views of `groups` random points, N = 30."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(groups, d))
  group_of = np.repeat(np.arange(groups), views)
  x = centres[group_of] + 0.4 * rng.normal(size=(groups * views, d))
  if kernel == "rbf":
    kmat = theory.rbf_kernel(x, x, bandwidth=2.0)
  else:  # rank d < N: exercises the cut of kernel_basis
    kmat = x @ x.T
  return x, group_of, kmat, theory.augmentation_graph(group_of)


def _vicreg_loss(alpha, kmat, graph, reg):
  # The constrained problem (K4), through the whitening reparametrisation.
  return theory.kernel_vicreg_objective(theory.whiten_coefficients(alpha, kmat), kmat, graph,
                                        reg=reg)


def _contrastive_loss(alpha, kmat, graph, reg):
  return theory.kernel_contrastive_objective(alpha, kmat, graph, reg=reg)


def _trained_losses(loss, kmat, graph, reg, k, num_starts=3, steps=1000):
  """The losses L-BFGS reaches on `loss` from `num_starts` random alphas (N, k)."""
  train = _train(loss, steps)
  keys = jax.random.split(jax.random.key(0), num_starts)
  return [float(train(0.1 * jax.random.normal(key, (kmat.shape[0], k), jnp.float64), kmat,
                      graph, reg)) for key in keys]


@functools.cache
def _train(loss, steps):
  # One compilation per loss and shape: the problem is an argument, not a constant.
  def train(alpha, kmat, graph, reg):
    objective = functools.partial(loss, kmat=kmat, graph=graph, reg=reg)
    return objective(minimise(objective, alpha, steps))
  return jax.jit(train)


# Closed forms against gradient descent on the same model and loss.

@pytest.mark.parametrize("kernel,seed,reg", [("rbf", 0, 1e-2), ("rbf", 1, 1e-3),
                                            ("linear", 2, 1e-2)])
def test_vicreg_closed_form_beats_gradient_descent(kernel, seed, reg):
  _, _, kmat, graph = _problem(seed, kernel)
  k = 3
  solution = vicreg_closed_form(kmat, graph, k=k, reg=reg)
  assert solution.spectrum[k - 1] > 1.01 * solution.spectrum[k]  # unique optimum

  np.testing.assert_allclose(theory.embedding_covariance(solution.coefficients, kmat),
                             np.eye(k), atol=1e-9)
  np.testing.assert_allclose(solution.embeddings, kmat @ solution.coefficients, atol=1e-9)
  closed = float(theory.kernel_vicreg_objective(solution.coefficients, kmat, graph, reg=reg))
  assert float(solution.objective) == pytest.approx(closed, rel=1e-9)

  trained = _trained_losses(_vicreg_loss, kmat, graph, reg, k)
  for value in trained:
    assert closed <= value + 1e-9 * abs(value)
  # Descent does reach the closed form, so it is the minimum and not only a feasible point.
  assert min(trained) == pytest.approx(closed, rel=1e-4)


@pytest.mark.parametrize("kernel,seed,reg", [("rbf", 0, 1e-3), ("rbf", 1, 1e-2),
                                            ("linear", 2, 1e-3)])
def test_contrastive_closed_form_beats_gradient_descent(kernel, seed, reg):
  _, _, kmat, graph = _problem(seed, kernel)
  k = 3
  solution = contrastive_closed_form(kmat, graph, k=k, reg=reg)
  assert solution.spectrum[k - 1] > 1.01 * max(float(solution.spectrum[k]), 0.0)

  np.testing.assert_allclose(solution.embeddings, kmat @ solution.coefficients, atol=1e-9)
  closed = float(theory.kernel_contrastive_objective(solution.coefficients, kmat, graph,
                                                     reg=reg))
  assert float(solution.objective) == pytest.approx(closed, rel=1e-9)

  trained = _trained_losses(_contrastive_loss, kmat, graph, reg, k)
  for value in trained:
    assert closed <= value + 1e-9 * abs(value)
  assert min(trained) == pytest.approx(closed, rel=1e-4)


def test_shared_and_truncated_bases():
  _, _, kmat, graph = _problem(3)
  basis = theory.kernel_basis(kmat)
  for solve in (vicreg_closed_form, contrastive_closed_form):
    full = float(solve(kmat, graph, k=3, reg=1e-2).objective)
    assert float(solve(basis, graph, k=3, reg=1e-2).objective) == pytest.approx(full, rel=1e-12)
    # A rank cut restricts the model: never a lower minimum.
    truncated = float(solve(theory.kernel_basis(kmat, rank=10), graph, k=3, reg=1e-2).objective)
    assert full <= truncated
  # A rank-5 kernel loses nothing to a rank-5 cut.
  _, _, kmat, graph = _problem(3, kernel="linear")
  for solve in (vicreg_closed_form, contrastive_closed_form):
    np.testing.assert_allclose(solve(theory.kernel_basis(kmat, rank=5), graph, k=3,
                                     reg=1e-2).objective,
                               solve(kmat, graph, k=3, reg=1e-2).objective, rtol=1e-9)


# The RBF kernel and the graph.

def test_rbf_kernel_matches_numpy():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(7, 4)), 3.0 * rng.normal(size=(5, 4))
  reference = np.exp(-((x[:, None] - y[None]) ** 2).sum(-1) / (2 * 1.7 ** 2))
  np.testing.assert_allclose(theory.rbf_kernel(x, y, 1.7), reference, rtol=1e-12, atol=1e-300)
  gram = theory.rbf_kernel(x, x, 1.7)
  np.testing.assert_allclose(np.diag(gram), np.ones(7), rtol=1e-15)
  np.testing.assert_allclose(gram, gram.T, rtol=1e-15)
  assert theory.rbf_kernel(x, y, 1.7).dtype == jnp.float64


def test_augmentation_graph():
  expected = np.array([[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 1],
                       [0, 0, 1, 1, 1]])
  np.testing.assert_array_equal(theory.augmentation_graph([0, 0, 1, 1, 1]), expected)
  np.testing.assert_array_equal(theory.augmentation_graph([0, 0, 1, 1, 1], self_loops=False),
                                expected - np.eye(5))


# Hand cases: K = I, n groups of V views, so Psi = I and every matrix is block structured.

def test_identity_kernel_vicreg_is_constant_per_group():
  groups, views, k, reg = 6, 3, 4, 1e-2
  n = groups * views
  group_of = np.repeat(np.arange(groups), views)
  graph = theory.augmentation_graph(group_of)
  solution = vicreg_closed_form(jnp.eye(n), graph, k=k, reg=reg)
  # Between-group centred directions: rho = (1/N) / reg; within-group ones:
  # (1/N) / (V/N + reg); the constant one: 0.
  np.testing.assert_allclose(solution.spectrum[:groups - 1], 1 / (n * reg), rtol=1e-10)
  np.testing.assert_allclose(solution.spectrum[groups - 1:n - 1], 1 / (views + n * reg),
                             rtol=1e-10)
  assert float(solution.objective) == pytest.approx(k * n * reg, rel=1e-10)
  z = np.asarray(solution.embeddings).reshape(groups, views, k)
  np.testing.assert_allclose(z, np.repeat(z[:, :1], views, axis=1), atol=1e-10)
  np.testing.assert_allclose(theory.embedding_covariance(solution.coefficients, jnp.eye(n)),
                             np.eye(k), atol=1e-10)


def test_identity_kernel_contrastive_induces_the_graph():
  groups, views, reg = 5, 2, 1e-3
  n = groups * views
  graph = theory.augmentation_graph(np.repeat(np.arange(groups), views))
  solution = contrastive_closed_form(jnp.eye(n), graph, k=groups, reg=reg)
  shrink = 1 - reg * n ** 2 / (2 * views)  # tau = V - reg N^2 / 2 on each group indicator
  np.testing.assert_allclose(solution.spectrum[:groups], views * shrink, rtol=1e-10)
  # Views of one image are correlated, different images orthogonal.
  z = solution.embeddings
  np.testing.assert_allclose(z @ z.T, shrink * graph, atol=1e-10)
  expected = (groups * views ** 2 - groups * (views * shrink) ** 2) / n ** 2
  assert float(solution.objective) == pytest.approx(expected, rel=1e-10)


# New points.

def test_embed_and_induced_kernel_extend_the_training_embeddings():
  x, _, kmat, graph = _problem(4)
  solution = contrastive_closed_form(kmat, graph, k=3, reg=1e-3)
  np.testing.assert_allclose(
      theory.kernel_embed(solution.coefficients, x, x, bandwidth=2.0), solution.embeddings,
      atol=1e-9)
  z = solution.embeddings
  np.testing.assert_allclose(
      theory.induced_kernel(solution.coefficients, x, x[:4], x, bandwidth=2.0), z[:4] @ z.T,
      atol=1e-9)
  new = x[:3] + 0.01
  assert theory.kernel_embed(solution.coefficients, x, new, bandwidth=2.0).shape == (3, 3)
