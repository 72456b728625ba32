"""Closed-form linear SSL (Van Assel et al. 2025, arXiv 2505.12477) in float64.

Theorems 3.1 and 3.2 against optax training of the same linear models, the closed-form
expectations against sampled views, PCA special cases by hand, and the alignment thresholds
of Propositions 4.3 and 4.4 against alpha sweeps on the data model of Section 4.1.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax import theory
from tests.theory.lbfgs import minimise

reconstruction_closed_form = jax.jit(theory.reconstruction_closed_form, static_argnames="k")
joint_embedding_closed_form = jax.jit(theory.joint_embedding_closed_form, static_argnames="k")

# Section 4.1 data models with d = 6, k = 2 and the same important components: c = (4, 2),
# lambda^Theta = 1 on them, so delta = 2/3, eta^2 = 4/3 and the regime boundary
# eta^2 / delta of Corollary 4.5 is 2 (the weakest component's c).
SIGNAL_VAR = np.array([4.0, 2.0])
REGIMES = {
  # Noise variances below 2: alpha_JE = 2/3 > alpha_RC = 0.543.
  "weak": {"noise_var": np.array([1.8, 1.0, 0.5, 1.2]),
           "aug_var": np.array([1.0, 1.0, 0.1, 0.1, 0.1, 0.1])},
  # Noise variances above 2: alpha_JE = 0.689 < alpha_RC = 5.383.
  "strong": {"noise_var": np.array([10.0, 20.0, 30.0, 40.0]), "aug_var": np.ones(6)},
}


@pytest.fixture(autouse=True)
def x64():
  # Scoped so that the rest of the suite keeps float32.
  with jax.enable_x64(True):
    yield


def _orthogonal(d, seed):
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
  return q


def _data_with_covariance(eigvals, basis, n=50, seed=0):
  """(n, d) data with x^T x / n = basis diag(eigvals) basis^T exactly."""
  left = _orthogonal(n, seed)[:, :len(eigvals)]
  return (left * np.sqrt(n * np.asarray(eigvals))) @ basis.T


def _random_problem(seed, n=40, d=8):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)) * rng.uniform(0.3, 3.0, size=d)  # anisotropic data
  a = rng.normal(size=(d, d))
  return x, a @ a.T / d  # augmentation of the same order as the data


def _largest_angle(a, b):
  return float(theory.principal_angles(a, b)[-1])


# (a) Theorems 3.1 and 3.2 against training.

@pytest.mark.parametrize("seed,k", [(0, 2), (1, 3)])
def test_reconstruction_closed_form_matches_training(seed, k):
  x, aug_cov = _random_problem(seed)
  d = x.shape[1]
  solution = reconstruction_closed_form(x, aug_cov, k=k)
  assert solution.singular_values[k - 1] > 1.01 * solution.singular_values[k]  # unique optimum

  def loss(params):
    return theory.reconstruction_objective(params["encoder"], params["decoder"], x, aug_cov)

  keys = jax.random.split(jax.random.key(seed))
  init = {"encoder": 0.1 * jax.random.normal(keys[0], (k, d), jnp.float64),
          "decoder": 0.1 * jax.random.normal(keys[1], (d, k), jnp.float64)}
  trained = jax.jit(lambda p: minimise(loss, p, steps=200))(init)

  assert float(loss(trained)) == pytest.approx(float(solution.objective), rel=1e-6)
  assert float(solution.objective) == pytest.approx(
      float(loss({"encoder": solution.encoder, "decoder": solution.decoder})), rel=1e-12)
  assert _largest_angle(trained["encoder"].T, solution.encoder.T) < 1e-4
  # D E is unique even though (E, D) is only unique up to an invertible T.
  np.testing.assert_allclose(trained["decoder"] @ trained["encoder"],
                             solution.decoder @ solution.encoder, atol=1e-5)


@pytest.mark.parametrize("seed,k", [(0, 2), (1, 3)])
def test_joint_embedding_closed_form_matches_training(seed, k):
  x, aug_cov = _random_problem(seed)
  d = x.shape[1]
  solution = joint_embedding_closed_form(x, aug_cov, k=k)
  assert solution.eigenvalues[k - 1] > 1.01 * solution.eigenvalues[k]  # unique optimum
  second_moment = x.T @ x / len(x) + aug_cov  # S of Theorem 3.2

  def whiten(z):
    # W = L^{-1} Z with L L^T = Z S Z^T meets W S W^T = I_k exactly, and every feasible W
    # is reached (Z = W gives L = I), so training Z is training W under the constraint:
    # the symmetric-whitening layer of W-MSE-style methods, in Cholesky form.
    chol = jnp.linalg.cholesky(z @ second_moment @ z.T)
    return jax.scipy.linalg.solve_triangular(chol, z, lower=True)

  def loss(z):
    return theory.joint_embedding_objective(whiten(z), aug_cov)

  init = jax.random.normal(jax.random.key(seed), (k, d), jnp.float64)
  encoder = whiten(jax.jit(lambda z: minimise(loss, z, steps=200))(init))

  np.testing.assert_allclose(theory.embedding_second_moment(encoder, x, aug_cov), np.eye(k),
                             atol=1e-10)
  np.testing.assert_allclose(
      theory.embedding_second_moment(solution.encoder, x, aug_cov), np.eye(k), atol=1e-10)
  objective = theory.joint_embedding_objective(encoder, aug_cov)
  assert float(objective) == pytest.approx(float(solution.objective), rel=1e-6)
  assert float(solution.objective) == pytest.approx(
      float(theory.joint_embedding_objective(solution.encoder, aug_cov)), rel=1e-12)
  assert _largest_angle(encoder.T, solution.encoder.T) < 1e-4
  # W is unique up to a rotation U, so W^T W is unique.
  np.testing.assert_allclose(encoder.T @ encoder, solution.encoder.T @ solution.encoder,
                             atol=1e-5)


def _exact_moment_views(x, aug_cov, views, draws, seed):
  """(views, n * draws, d) views x + xi whose noise has mean 0 and covariance aug_cov
  exactly, with zero cross-covariance between views: both objectives are quadratic in
  the views, so these samples reproduce the expectations up to rounding."""
  n, d = x.shape
  z = np.random.default_rng(seed).normal(size=(n * draws, views * d))
  z -= z.mean(0)
  z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / len(z))).T  # z^T z / m = I exactly
  noise = z.reshape(-1, views, d) @ np.linalg.cholesky(aug_cov).T  # (m, views, d)
  return np.repeat(x, draws, axis=0)[None] + noise.transpose(1, 0, 2)


def test_objectives_are_the_expectations_over_views():
  x, aug_cov = _random_problem(2, n=10, d=5)
  rng = np.random.default_rng(3)
  encoder, decoder = rng.normal(size=(2, 5)), rng.normal(size=(5, 2))
  targets = np.repeat(x, 400, axis=0)

  # Each sample's views must have mean x_i, so match moments per sample, then stack.
  views = np.concatenate(
      [_exact_moment_views(x[i:i + 1], aug_cov, 2, 400, seed=i) for i in range(len(x))], 1)
  sampled_rc = np.mean(np.sum((targets - views[0] @ encoder.T @ decoder.T) ** 2, -1))
  sampled_je = np.mean(np.sum(((views[0] - views[1]) @ encoder.T) ** 2, -1))
  embeddings = views[0] @ encoder.T
  sampled_moment = embeddings.T @ embeddings / len(embeddings)

  assert float(theory.reconstruction_objective(encoder, decoder, x, aug_cov)) == pytest.approx(
      sampled_rc, rel=1e-10)
  assert float(theory.joint_embedding_objective(encoder, aug_cov)) == pytest.approx(
      sampled_je, rel=1e-10)
  np.testing.assert_allclose(theory.embedding_second_moment(encoder, x, aug_cov),
                             sampled_moment, rtol=1e-10)


# (c) Hand-checkable cases.

def test_zero_augmentation_reconstruction_is_pca():
  eigvals, basis = np.array([5.0, 3.0, 2.0, 1.0, 0.5]), _orthogonal(5, 0)
  x = _data_with_covariance(eigvals, basis)
  solution = reconstruction_closed_form(x, np.zeros((5, 5)), k=2)
  # C A^{-1/2} = C^{1/2}: phi = sqrt(eigvals); D E projects onto the top-2 eigenvectors and
  # leaves the tail variance 2 + 1 + 0.5 unexplained.
  np.testing.assert_allclose(solution.singular_values, np.sqrt(eigvals), rtol=1e-12)
  np.testing.assert_allclose(solution.decoder @ solution.encoder,
                             basis[:, :2] @ basis[:, :2].T, atol=1e-12)
  assert float(solution.objective) == pytest.approx(3.5, rel=1e-12)


def test_zero_augmentation_joint_embedding_is_degenerate():
  # S = G: every whitened W is invariant, omega = 1 everywhere and the minimum is 0.
  x = _data_with_covariance([5.0, 3.0, 2.0], _orthogonal(3, 1))
  solution = joint_embedding_closed_form(x, np.zeros((3, 3)), k=2)
  np.testing.assert_allclose(solution.eigenvalues, np.ones(3), atol=1e-12)
  assert abs(float(solution.objective)) < 1e-12


def test_isotropic_augmentation_by_hand():
  # C = diag(4, 1), aug_cov = I, k = 1.
  # RC: M = m e1 e1^T costs 4 (1 - m)^2 + 1 + m^2 -> m = 0.8, minimum 1.8; or by eq. 19:
  #     Tr(C) - phi_1^2 = 5 - (4 / sqrt(5))^2.
  # JE: omega = (4/5, 1/2), W = e1^T / sqrt(5), minimum 2 (1 - 4/5) = 0.4.
  x = _data_with_covariance([4.0, 1.0], np.eye(2))
  rc = reconstruction_closed_form(x, np.eye(2), k=1)
  je = joint_embedding_closed_form(x, np.eye(2), k=1)
  assert float(rc.objective) == pytest.approx(1.8, rel=1e-12)
  np.testing.assert_allclose(rc.decoder @ rc.encoder, [[0.8, 0.0], [0.0, 0.0]], atol=1e-12)
  assert float(je.objective) == pytest.approx(0.4, rel=1e-12)
  np.testing.assert_allclose(je.eigenvalues, [0.8, 0.5], rtol=1e-12)
  np.testing.assert_allclose(np.abs(je.encoder), [[1 / np.sqrt(5), 0.0]], atol=1e-12)


def test_isotropic_data_keeps_the_least_augmented_directions():
  # C = 2 I: omega_i = 2 / (2 + s_i) and phi_i = 2 / sqrt(2 + s_i) both decrease with the
  # augmentation variance s_i, so both methods keep its k smallest directions.
  basis = _orthogonal(4, 2)
  aug_var = np.array([3.0, 0.5, 2.0, 0.1])
  x = _data_with_covariance(2.0 * np.ones(4), basis)
  aug_cov = (basis * aug_var) @ basis.T
  keep = basis[:, [3, 1]]
  rc = reconstruction_closed_form(x, aug_cov, k=2)
  je = joint_embedding_closed_form(x, aug_cov, k=2)
  np.testing.assert_allclose(je.eigenvalues, 2 / (2 + np.sort(aug_var)), rtol=1e-12)
  np.testing.assert_allclose(rc.singular_values, 2 / np.sqrt(2 + np.sort(aug_var)), rtol=1e-12)
  assert _largest_angle(rc.encoder.T, keep) < 1e-10
  assert _largest_angle(je.encoder.T, keep) < 1e-10


def test_principal_angles_by_hand():
  e = np.eye(3)
  tilted = np.array([[1.0], [0.0], [np.tan(0.3)]])  # 0.3 rad from e1, out of the e1-e2 plane
  np.testing.assert_allclose(theory.principal_angles(e[:, :2], tilted), [0.3], rtol=1e-12)
  np.testing.assert_allclose(theory.principal_angles(e[:, :2], e[:, 1:]), [0.0, np.pi / 2],
                             atol=1e-12)
  assert float(theory.principal_angles(e[:, :1], e[:, :1] + 1e-9 * e[:, 1:2])[0]) == (
      pytest.approx(1e-9, rel=1e-6))  # arccos alone would return 0 or 2e-8 here
  # In the metric diag(1, 4) the unit vectors e1 and e1 + e2 are at arccos(1 / sqrt(5)).
  np.testing.assert_allclose(
      theory.principal_angles(e[:2, :1], np.array([[1.0], [1.0]]), metric=np.diag([1.0, 4.0])),
      [np.arccos(1 / np.sqrt(5))], rtol=1e-12)


# (b) Propositions 4.3, 4.4 and Corollary 4.5.

def test_thresholds_by_hand_and_corollary_4_5():
  weak, strong = REGIMES["weak"], REGIMES["strong"]
  assert float(theory.noise_regime_boundary(SIGNAL_VAR, weak["aug_var"])) == pytest.approx(2.0)
  # weak: alpha_JE^2 = (1 - 2/3) / (2/3) - 0.1 / 1.8 and
  #       alpha_RC^2 = 1.8 / (4/3) - 0.1 / 1.8 - 1, both from the noise variance 1.8.
  assert float(theory.alpha_je(SIGNAL_VAR, **weak)) == pytest.approx(2 / 3, rel=1e-12)
  assert float(theory.alpha_rc(SIGNAL_VAR, **weak)) == pytest.approx(
      np.sqrt(1.35 - 1 / 18 - 1), rel=1e-12)
  # strong: both from the noise variance 40.
  assert float(theory.alpha_je(SIGNAL_VAR, **strong)) == pytest.approx(
      np.sqrt(0.5 - 1 / 40), rel=1e-12)
  assert float(theory.alpha_rc(SIGNAL_VAR, **strong)) == pytest.approx(
      np.sqrt(30 - 1 / 40 - 1), rel=1e-12)
  assert theory.alpha_rc(SIGNAL_VAR, **weak) < theory.alpha_je(SIGNAL_VAR, **weak)
  assert theory.alpha_je(SIGNAL_VAR, **strong) < theory.alpha_rc(SIGNAL_VAR, **strong)
  # Augmentations already strong on every noise component: no alignment needed.
  assert float(theory.alpha_je(SIGNAL_VAR, weak["noise_var"], 10 * np.ones(6))) == 0.0


def test_data_model_moments():
  basis = _orthogonal(6, 3)
  noise_var = REGIMES["strong"]["noise_var"]
  clean, corrupted = jax.jit(theory.sample_data_model, static_argnums=1)(
      jax.random.key(0), 20_000, SIGNAL_VAR, noise_var, basis)
  # The clean part has the model's SVD exactly; the noise only on average.
  np.testing.assert_allclose(clean.T @ clean / 20_000,
                             (basis[:, :2] * SIGNAL_VAR) @ basis[:, :2].T, atol=1e-12)
  noise = corrupted - clean
  np.testing.assert_allclose(noise @ basis[:, :2], 0.0, atol=1e-10)
  np.testing.assert_allclose(np.var(noise @ basis[:, 2:], axis=0), noise_var, rtol=0.05)
  cov = theory.augmentation_cov(2.0, noise_var, np.ones(6), basis)
  np.testing.assert_allclose(basis.T @ cov @ basis,
                             np.diag(np.r_[1.0, 1.0, 1.0 + 4.0 * noise_var]), atol=1e-10)


@pytest.mark.parametrize("regime", ["weak", "strong"])
def test_alpha_sweep_finds_the_predicted_thresholds(regime):
  noise_var, aug_var = REGIMES[regime]["noise_var"], REGIMES[regime]["aug_var"]
  basis = _orthogonal(6, 4)
  _, corrupted = theory.sample_data_model(jax.random.key(5), 100_000, SIGNAL_VAR, noise_var,
                                          basis)
  predicted = {"je": float(theory.alpha_je(SIGNAL_VAR, noise_var, aug_var)),
               "rc": float(theory.alpha_rc(SIGNAL_VAR, noise_var, aug_var))}
  alphas = np.linspace(0.0, 2.0 * max(predicted.values()), 801)

  @jax.jit
  def recovered(alpha):
    aug_cov = theory.augmentation_cov(alpha, noise_var, aug_var, basis)
    encoders = {"rc": reconstruction_closed_form(corrupted, aug_cov, k=2).encoder,
                "je": joint_embedding_closed_form(corrupted, aug_cov, k=2).encoder}
    return {name: theory.recovers_clean_solution(e, basis[:, :2], corrupted, aug_cov)
            for name, e in encoders.items()}

  flags = jax.lax.map(recovered, alphas)
  for name, ok in flags.items():
    ok = np.asarray(ok)
    assert not ok[0] and ok[-1], name
    empirical = alphas[np.nonzero(~ok)[0][-1] + 1]  # smallest alpha from which it recovers
    assert empirical == pytest.approx(predicted[name], rel=0.1), name


def test_large_alignment_recovers_at_small_n():
  # First bullet of Propositions 4.3 and 4.4: alpha -> infinity at fixed n, here n = 30 in
  # the strong regime, where alpha = 0 fails for both methods.
  noise_var, aug_var = REGIMES["strong"]["noise_var"], REGIMES["strong"]["aug_var"]
  basis = _orthogonal(6, 5)
  _, corrupted = theory.sample_data_model(jax.random.key(6), 30, SIGNAL_VAR, noise_var, basis)
  for alpha, recovers in [(0.0, False), (1e4, True)]:
    aug_cov = theory.augmentation_cov(alpha, noise_var, aug_var, basis)
    for solve in (reconstruction_closed_form, joint_embedding_closed_form):
      encoder = solve(corrupted, aug_cov, k=2).encoder
      angle = float(theory.recovery_angle(encoder, basis[:, :2], corrupted, aug_cov))
      assert (angle < 1e-3) if recovers else (angle > np.pi / 4), (alpha, solve)
