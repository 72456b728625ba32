"""I-JEPA's latent regression loss and MAE's pixel loss against float64 NumPy references
written from the papers' code (I-JEPA: `F.smooth_l1_loss` on layer-normed targets; MAE:
`patchify` and `forward_loss`), hand-computed values, and negative controls (padding and
visible patches must not count)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax.losses import ijepa_loss, mae_loss, normalize_patches, patchify, smooth_l1

# Jitted once per input shape: cheaper on a CPU than compiling every op eagerly.
ijepa = jax.jit(ijepa_loss, static_argnames="regression")
mae = jax.jit(mae_loss, static_argnames="norm_pix")
normalize = jax.jit(normalize_patches)


def smooth_l1_reference(x, beta=1.0):
  """PyTorch's `smooth_l1_loss` elementwise: 0.5 x^2 / beta if |x| < beta else |x| - beta/2."""
  x = np.abs(np.float64(x))
  return np.where(x < beta, 0.5 * x ** 2 / beta, x - 0.5 * beta)


def ijepa_reference(pred, target, valid=None, regression="smooth_l1"):
  """Mean over valid tokens and all channels (every token has D channels)."""
  d = np.float64(pred) - np.float64(target)
  per_element = smooth_l1_reference(d) if regression == "smooth_l1" else d ** 2
  if valid is None:
    return per_element.mean()
  return per_element[np.asarray(valid, bool)].mean()


def patchify_reference(images_nhwc, p):
  """MAE's `patchify` (models_mae.py) on the NCHW layout it is written for."""
  imgs = np.transpose(np.float64(images_nhwc), (0, 3, 1, 2))  # NCHW
  n, c = imgs.shape[:2]
  h, w = imgs.shape[2] // p, imgs.shape[3] // p
  x = imgs.reshape(n, c, h, p, w, p)
  x = np.einsum("nchpwq->nhwpqc", x)
  return x.reshape(n, h * w, p * p * c)


def mae_loss_reference(pred, imgs_nhwc, mask, p, norm_pix):
  """MAE's `forward_loss`, line by line."""
  target = patchify_reference(imgs_nhwc, p)
  if norm_pix:
    mean = target.mean(axis=-1, keepdims=True)
    var = target.var(axis=-1, keepdims=True, ddof=1)  # torch.var: unbiased
    target = (target - mean) / (var + 1.e-6) ** .5
  loss = ((np.float64(pred) - target) ** 2).mean(axis=-1)
  mask = np.float64(mask)
  return (loss * mask).sum() / mask.sum()


def test_smooth_l1_matches_pytorch_definition():
  x = np.array([-3.0, -1.0, -0.999, -0.5, 0.0, 0.25, 0.999, 1.0, 1.5, 7.0], np.float32)
  np.testing.assert_allclose(jax.jit(smooth_l1)(x), smooth_l1_reference(x), rtol=1e-6)
  # By hand: 0.5 * 0.25^2 = 0.03125; |1.5| - 0.5 = 1.0; at the joint both pieces give 0.5.
  np.testing.assert_allclose(smooth_l1(np.float32([0.25, 1.5, 1.0])), [0.03125, 1.0, 0.5])


def test_ijepa_loss_hand_values():
  # Differences 0.5 and 2 (both channels of one token): smooth L1 0.125 and 1.5, mean
  # 0.8125; squared 0.25 and 4, mean 2.125.
  pred = jnp.array([[[0.5, 2.0]]])
  zero = jnp.zeros_like(pred)
  assert float(ijepa(pred, zero)) == pytest.approx(0.8125)
  assert float(ijepa(pred, zero, regression="l2")) == pytest.approx(2.125)
  assert float(ijepa(jnp.ones((2, 3, 4)), jnp.zeros((2, 3, 4)))) == pytest.approx(0.5)


@pytest.mark.parametrize("regression", ["smooth_l1", "l2"])
def test_ijepa_loss_matches_float64_reference(regression):
  rng = np.random.default_rng(0)
  pred = rng.normal(size=(2, 3, 5, 6)) * 1.5  # (B, M, Kt, D): both sides of |x| = 1
  target = rng.normal(size=(2, 3, 5, 6))
  valid = rng.uniform(size=(2, 3, 5)) < 0.6
  got = ijepa(np.float32(pred), np.float32(target), regression=regression)
  assert float(got) == pytest.approx(ijepa_reference(pred, target, None, regression), rel=1e-5)
  got = ijepa(np.float32(pred), np.float32(target), valid, regression=regression)
  assert float(got) == pytest.approx(ijepa_reference(pred, target, valid, regression), rel=1e-5)
  # The masked mean differs from the plain one here, so the mask is doing something.
  assert abs(ijepa_reference(pred, target, valid, regression)
             - ijepa_reference(pred, target, None, regression)) > 1e-3


def test_ijepa_loss_ignores_padding_slots():
  rng = np.random.default_rng(1)
  pred = np.float32(rng.normal(size=(2, 4, 3)))
  target = np.float32(rng.normal(size=(2, 4, 3)))
  valid = np.array([[True, True, False, False], [True, False, True, False]])
  changed_pred, changed_target = pred.copy(), target.copy()
  changed_pred[~valid] += 100.0
  changed_target[~valid] -= 50.0
  base = float(ijepa(pred, target, valid))
  assert float(ijepa(changed_pred, changed_target, valid)) == pytest.approx(base, rel=1e-6)
  # Negative control: the same change at a valid slot moves the loss.
  changed_pred = pred.copy()
  changed_pred[0, 0] += 100.0
  assert abs(float(ijepa(changed_pred, target, valid)) - base) > 1.0


def test_ijepa_loss_gradients_stop_at_the_targets():
  rng = np.random.default_rng(2)
  pred = np.float32(rng.normal(size=(3, 4)) * 2)
  target = np.float32(rng.normal(size=(3, 4)))
  valid = np.array([True, False, True])
  grad_pred, grad_target = jax.jit(jax.grad(ijepa_loss, argnums=(0, 1)))(
      pred, target, valid)
  np.testing.assert_array_equal(grad_target, 0.0)
  # d/dx of smooth L1 is clip(x, -1, 1); the loss is the mean over 2 valid tokens x 4 channels.
  expected = np.clip(np.float64(pred) - target, -1, 1) / 8 * valid[:, None]
  np.testing.assert_allclose(grad_pred, expected, rtol=1e-5, atol=1e-7)
  assert np.abs(grad_pred).max() > 0.01


def test_ijepa_loss_unknown_regression_raises():
  with pytest.raises(ValueError):
    ijepa_loss(jnp.zeros((1, 2)), jnp.zeros((1, 2)), regression="l1")


def test_patchify_matches_mae_reference_and_hand_order():
  images = np.random.default_rng(3).uniform(size=(2, 8, 12, 3)).astype(np.float32)
  np.testing.assert_array_equal(patchify(images, 4), patchify_reference(images, 4))
  # One 4 x 4 channel-last image of pixel values 0..15 (row-major), 2 px patches: patch 1
  # is the top right block (rows 0-1, columns 2-3), flattened row by row.
  image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
  np.testing.assert_array_equal(patchify(image, 2)[0], [[0, 1, 4, 5], [2, 3, 6, 7],
                                                         [8, 9, 12, 13], [10, 11, 14, 15]])
  # Two channels: within a patch the channel varies fastest, (row, column, channel).
  image = np.stack([np.arange(4.0).reshape(2, 2), -np.arange(4.0).reshape(2, 2)], -1)[None]
  np.testing.assert_array_equal(patchify(image, 2)[0, 0], [0, -0, 1, -1, 2, -2, 3, -3])
  with pytest.raises(ValueError):
    patchify(np.zeros((1, 6, 8, 1)), 4)


def test_normalize_patches_uses_unbiased_variance():
  # Patch [0, 2]: mean 1, unbiased variance ((-1)^2 + 1^2) / (2 - 1) = 2 (the biased one,
  # 1, would give +-1): (+-1) / sqrt(2 + 1e-6).
  out = np.asarray(normalize(np.float32([[0.0, 2.0]])))
  np.testing.assert_allclose(out, [[-1 / np.sqrt(2 + 1e-6), 1 / np.sqrt(2 + 1e-6)]], rtol=1e-6)
  # A constant patch: 0 / sqrt(0 + 1e-6) = 0, not NaN.
  np.testing.assert_array_equal(normalize(np.full((1, 4), 0.3, np.float32)), 0.0)
  x = np.random.default_rng(4).uniform(size=(3, 5, 12))
  expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True, ddof=1) + 1e-6)
  np.testing.assert_allclose(normalize(np.float32(x)), expected, rtol=1e-5, atol=1e-5)


def test_mae_loss_hand_values():
  # Raw pixels: patch 0 removed, error 1 on each pixel; patch 1 visible: 1.0.
  assert float(mae(jnp.zeros((1, 2, 4)), jnp.ones((1, 2, 4)), jnp.array([[1.0, 0.0]]),
                        norm_pix=False)) == pytest.approx(1.0)
  # Normalised: the patch [0, 2] becomes (+-1) / sqrt(2 + 1e-6); predicting 0 costs
  # 1 / (2 + 1e-6) on each pixel. The visible patch would cost far more and must not count.
  patches = jnp.array([[[0.0, 2.0], [5.0, -5.0]]])
  loss = mae(jnp.array([[[0.0, 0.0], [100.0, 100.0]]]), patches, jnp.array([[1.0, 0.0]]))
  assert float(loss) == pytest.approx(1 / (2 + 1e-6), rel=1e-6)


@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_loss_matches_forward_loss_reference(norm_pix):
  rng = np.random.default_rng(5)
  images = rng.uniform(size=(2, 8, 8, 3))
  pred = rng.normal(size=(2, 4, 48))
  mask = np.zeros((2, 4))
  mask[0, [0, 2, 3]] = 1
  mask[1, [1, 3]] = 1
  patches = patchify(np.float32(images), 4)
  got = mae(np.float32(pred), patches, np.float32(mask), norm_pix=norm_pix)
  expected = mae_loss_reference(pred, images, mask, 4, norm_pix)
  assert float(got) == pytest.approx(expected, rel=1e-5)
  # Only removed patches count: changing a visible patch's prediction changes nothing,
  # changing a removed one does (the negative control).
  visible = pred.copy()
  visible[0, 1] += 10.0
  assert float(mae(np.float32(visible), patches, np.float32(mask), norm_pix=norm_pix)) == \
      pytest.approx(float(got), rel=1e-6)
  removed = pred.copy()
  removed[0, 0] += 10.0
  assert abs(float(mae(np.float32(removed), patches, np.float32(mask),
                        norm_pix=norm_pix)) - float(got)) > 1.0
