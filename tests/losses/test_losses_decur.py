"""DeCUR's loss against a float64 NumPy reference written element by element from the
paper's definitions and the authors' weighting (not the vectorised code under test), hand
values on orthogonal embeddings, and the global batch's statistics on 8 devices."""

import jax
import numpy as np
import pytest
import scipy.linalg
from jax.sharding import NamedSharding, PartitionSpec as P

from jejax import parallel
from jejax.losses import decur_loss

decur = jax.jit(decur_loss, static_argnames=("common_dim", "off_diagonal_weight", "eps"))


def standardized(z, eps):
  """Each column minus its mean, over sqrt(biased variance + eps) (BatchNorm, no affine)."""
  n, d = z.shape
  out = np.zeros((n, d))
  for j in range(d):
    mean = sum(z[k, j] for k in range(n)) / n
    var = sum((z[k, j] - mean) ** 2 for k in range(n)) / n
    for k in range(n):
      out[k, j] = (z[k, j] - mean) / np.sqrt(var + eps)
  return out


def correlation(za, zb, eps):
  """C_ij = sum_k a_ki b_kj / N of the standardised embeddings."""
  a, b = standardized(np.float64(za), eps), standardized(np.float64(zb), eps)
  n, d = a.shape
  return np.array([[sum(a[k, i] * b[k, j] for k in range(n)) / n for j in range(d)]
                   for i in range(d)])


def block_terms(c, dims, diagonal_target, lam):
  """sum over i in dims of (target - C_ii)^2 + lam * sum over i != j in dims of C_ij^2."""
  total = 0.0
  for i in dims:
    for j in dims:
      total += (diagonal_target - c[i, j]) ** 2 if i == j else lam * c[i, j] ** 2
  return total


def decur_reference(z1, z1_view, z2, z2_view, common_dim, lam=0.0051, eps=1e-5):
  d = z1.shape[1]
  common_dims, unique_dims = range(common_dim), range(common_dim, d)
  cross = correlation(z1, z2, eps)
  common = block_terms(cross, common_dims, 1.0, lam)  # C_c -> I
  unique = block_terms(cross, unique_dims, 0.0, lam)  # diag(C_u) -> 0
  intra_1 = block_terms(correlation(z1, z1_view, eps), range(d), 1.0, lam)
  intra_2 = block_terms(correlation(z2, z2_view, eps), range(d), 1.0, lam)
  # The authors' weighting: loss12 = (common + unique) / 2; (loss1 + loss2 + loss12) / 3.
  loss = ((common + unique) / 2 + intra_1 + intra_2) / 3
  return loss, {"common": common, "unique": unique, "intra_1": intra_1, "intra_2": intra_2}


def orthogonal_embeddings():
  """(8, 7): Hadamard columns 1-7, +-1 with zero mean and unit variance, orthogonal, so
  the standardised cross-correlation of z with itself is exactly I (with eps = 0)."""
  return np.float32(scipy.linalg.hadamard(8)[:, 1:])


@pytest.mark.parametrize("common_dim", [0, 4, 7])
def test_identical_decorrelated_embeddings_leave_only_the_unique_diagonal(common_dim):
  # C = I: the common block is already I (loss 0), each of the 7 - K unique dims has
  # C_ii = 1 where DeCUR wants 0, so unique = 7 - K; the intra terms are 0.
  # loss = ((0 + (7 - K)) / 2 + 0 + 0) / 3.
  z = orthogonal_embeddings()
  loss, metrics = decur(z, z, z, z, common_dim=common_dim, eps=0.0)
  assert float(metrics["common"]) == pytest.approx(0.0, abs=1e-6)
  assert float(metrics["unique"]) == pytest.approx(7 - common_dim, rel=1e-6)
  assert float(metrics["intra_1"]) == pytest.approx(0.0, abs=1e-6)
  assert float(loss) == pytest.approx((7 - common_dim) / 6, rel=1e-6)


def test_unique_dimensions_swapped_across_modalities():
  # Modality 2's unique dims are modality 1's in a cycle (4 -> 5 -> 6 -> 4): the unique
  # block is a permutation matrix with a zero diagonal, so unique = lambda * 3 (three
  # off-diagonal ones), and the common block is still I.
  z1 = orthogonal_embeddings()
  z2 = z1[:, [0, 1, 2, 3, 5, 6, 4]]
  lam = 0.25
  loss, metrics = decur(z1, z1, z2, z2, common_dim=4, off_diagonal_weight=lam, eps=0.0)
  assert float(metrics["common"]) == pytest.approx(0.0, abs=1e-6)
  assert float(metrics["unique_on_diagonal"]) == pytest.approx(0.0, abs=1e-6)
  assert float(metrics["unique"]) == pytest.approx(3 * lam, rel=1e-6)
  assert float(loss) == pytest.approx(3 * lam / 2 / 3, rel=1e-6)


def random_embeddings(seed, n=24, d=6):
  """Two modalities sharing 3 latent factors, two noisy views each."""
  rng = np.random.default_rng(seed)
  shared = rng.normal(size=(n, 3))
  z1 = np.concatenate([shared, rng.normal(size=(n, d - 3))], 1) @ rng.normal(size=(d, d))
  z2 = np.concatenate([shared, rng.normal(size=(n, d - 3))], 1) @ rng.normal(size=(d, d))
  views = [z + 0.5 * rng.normal(size=z.shape) for z in (z1, z2)]
  return [np.float32(z) for z in (z1, views[0], z2, views[1])]


@pytest.mark.parametrize("seed, common_dim, lam", [(0, 3, 0.0051), (1, 5, 0.0051),
                                                   (2, 0, 1.0), (3, 6, 0.5)])
def test_matches_float64_reference(seed, common_dim, lam):
  z = random_embeddings(seed)
  loss, metrics = decur(*z, common_dim=common_dim, off_diagonal_weight=lam)
  ref, parts = decur_reference(*z, common_dim=common_dim, lam=lam)
  assert float(loss) == pytest.approx(ref, rel=1e-5)
  for name, value in parts.items():
    assert float(metrics[name]) == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_gradient_matches_finite_differences_of_the_reference():
  # The directional derivative along a random direction of every input, against central
  # differences of the float64 reference: gradients reach all four views, and no term
  # is behind a stop-gradient.
  z = random_embeddings(6)
  directions = [np.random.default_rng(7 + i).normal(size=x.shape) for i, x in enumerate(z)]
  grads = jax.jit(jax.grad(lambda *a: decur_loss(*a, common_dim=4)[0], argnums=(0, 1, 2, 3)))(*z)
  h = 1e-4
  for i in range(4):
    plus = [np.float64(x) + (h * directions[i] if j == i else 0) for j, x in enumerate(z)]
    minus = [np.float64(x) - (h * directions[i] if j == i else 0) for j, x in enumerate(z)]
    numeric = (decur_reference(*plus, common_dim=4)[0] -
               decur_reference(*minus, common_dim=4)[0]) / (2 * h)
    analytic = float(np.sum(np.asarray(grads[i], np.float64) * directions[i]))
    assert analytic == pytest.approx(numeric, rel=2e-3, abs=1e-5), i


def test_sharded_batch_uses_global_statistics():
  # 8 devices, 3 rows each: the loss of the sharded global batch is the reference's on the
  # whole batch, and not the mean of per-device losses (per-device statistics).
  mesh = parallel.make_mesh(8)
  z = random_embeddings(4)
  sharded = [jax.device_put(x, NamedSharding(mesh, P(parallel.DATA_AXIS))) for x in z]
  loss, _ = decur(*sharded, common_dim=4)
  ref, _ = decur_reference(*z, common_dim=4)
  assert float(loss) == pytest.approx(ref, rel=1e-5)
  per_device = np.mean([decur_reference(*(x[i * 3:(i + 1) * 3] for x in z), common_dim=4)[0]
                        for i in range(8)])
  assert abs(per_device - ref) > 0.1 * ref


def test_rejects_unpaired_dimensions_and_a_common_dim_out_of_range():
  z1, z1_view, z2, z2_view = random_embeddings(5)
  with pytest.raises(ValueError, match="dimension by dimension"):
    decur_loss(z1, z1_view, z2[:, :5], z2_view[:, :5], common_dim=2)
  with pytest.raises(ValueError, match=r"common_dim=7 must lie in \[0, 6\]"):
    decur_loss(z1, z1_view, z2, z2_view, common_dim=7)
