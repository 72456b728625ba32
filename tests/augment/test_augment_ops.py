"""Per-image ops: determinism, shapes, identities, random-apply rates, NumPy references."""

import colorsys
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax import augment

SIZE = 16
NUM_DRAWS = 4000  # keys per statistical test


def _images(n, channels, size=SIZE, seed=0):
  """(n, size, size, channels) float32 noise in [0, 1]: asymmetric, non-constant, coloured."""
  return np.random.default_rng(seed).random((n, size, size, channels), dtype=np.float32)


def _keys(n, seed=0):
  return jax.random.split(jax.random.key(seed), n)


def _batched(op):
  """Jitted vmap over (keys, images), so each test compiles once."""
  return jax.jit(jax.vmap(op))


def _binomial_band(p, n):
  return 4.0 * math.sqrt(p * (1.0 - p) / n)


# Every op, with blur and jitter always applied so that their output varies with the key.
OPS = {
    "crop": functools.partial(augment.random_resized_crop, out_size=(12, 12)),
    "flip": functools.partial(augment.random_flip, prob=0.5),
    "jitter": functools.partial(augment.color_jitter, brightness=0.8, contrast=0.8,
                                saturation=0.8, hue=0.2, prob=1.0),
    "grayscale": functools.partial(augment.random_grayscale, prob=0.5),
    "blur": functools.partial(augment.gaussian_blur, prob=1.0, kernel_size=5),
    "solarize": functools.partial(augment.solarize, prob=0.5),
}
# Ops whose output varies continuously with the key; for C = 1 the chroma of the jitter
# is gone but brightness and contrast still vary.
CONTINUOUS = ("crop", "jitter", "blur")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list(OPS))
def test_op_is_a_function_of_the_key_and_keeps_shape_dtype_range(name, channels):
  op = _batched(OPS[name])
  images = _images(8, channels)
  out = op(_keys(8), images)
  expected_side = 12 if name == "crop" else SIZE
  chex.assert_shape(out, (8, expected_side, expected_side, channels))
  assert out.dtype == jnp.float32
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  np.testing.assert_array_equal(out, op(_keys(8), images))
  if name in CONTINUOUS:
    other = op(_keys(8, seed=1), images)
    assert not np.any(np.all(np.asarray(out) == np.asarray(other), axis=(1, 2, 3)))


@pytest.mark.parametrize("channels", [1, 3])
def test_zero_strength_and_zero_probability_are_the_identity(channels):
  images = _images(4, channels)
  # Every value of the draws, including those that would apply the op at prob > 0.
  uniforms = np.random.default_rng(1).random((4, augment.ops.MAX_UNIFORMS), dtype=np.float32)
  identities = [
      functools.partial(augment.color_jitter_from_uniforms, brightness=0.0, contrast=0.0,
                        saturation=0.0, hue=0.0, prob=1.0),
      functools.partial(augment.color_jitter_from_uniforms, brightness=0.8, contrast=0.8,
                        saturation=0.8, hue=0.2, prob=0.0),
      functools.partial(augment.random_flip_from_uniforms, prob=0.0),
      functools.partial(augment.random_grayscale_from_uniforms, prob=0.0),
      functools.partial(augment.gaussian_blur_from_uniforms, prob=0.0, kernel_size=5),
      functools.partial(augment.solarize_from_uniforms, prob=0.0),
  ]

  @jax.jit
  def apply_all(uniforms, images):
    return [jax.vmap(op)(uniforms, images) for op in identities]

  for out in apply_all(uniforms, images):
    np.testing.assert_array_equal(out, images)


def test_vmapped_jitter_equals_per_image_jitter_at_small_batch_sizes():
  # Regression test: with jax 0.10.2, XLA:CPU miscompiled a vmapped `lax.switch` over
  # these adjustments at batch sizes below 8 (whole images wrong). Per-image results must
  # not depend on the batch they are in.
  jitter = functools.partial(augment.color_jitter_from_uniforms, brightness=0.8,
                             contrast=0.8, saturation=0.8, hue=0.5, prob=1.0)
  images = _images(3, 3)
  uniforms = np.random.default_rng(2).random((3, augment.ops.JITTER_UNIFORMS),
                                             dtype=np.float32)
  per_image = np.stack([jax.jit(jitter)(u, x) for u, x in zip(uniforms, images)])
  for batch in (2, 3):
    np.testing.assert_allclose(_batched(jitter)(uniforms[:batch], images[:batch]),
                               per_image[:batch], atol=1e-5, rtol=0)


def test_full_crop_is_the_identity():
  crop = _batched(functools.partial(augment.random_resized_crop, out_size=(SIZE, SIZE),
                                    scale=(1.0, 1.0), ratio=(1.0, 1.0)))
  images = _images(4, 3)
  np.testing.assert_allclose(crop(_keys(4), images), images, atol=1e-6, rtol=0)


def test_whole_image_fallback_when_no_candidate_fits():
  # Area 1 with an aspect ratio other than the image's never fits: whole-image fallback.
  box = augment.sample_crop_box(jax.random.key(0), 10, 20, scale=(1.0, 1.0), ratio=(1.0, 1.0))
  np.testing.assert_array_equal(box, [0, 0, 10, 20])


def _reference_crop_area_fractions(rng, n, height, width, scale, ratio, tries=10):
  """torchvision's RandomResizedCrop box sampling, written out in NumPy."""
  fractions = np.ones(n)
  for i in range(n):
    for _ in range(tries):
      area = height * width * rng.uniform(*scale)
      aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
      w = round(math.sqrt(area * aspect))
      h = round(math.sqrt(area / aspect))
      if 0 < w <= width and 0 < h <= height:
        fractions[i] = h * w / (height * width)
        break
  return fractions


@pytest.mark.parametrize("scale, height, width", [((0.2, 0.75), 64, 64), ((0.08, 1.0), 64, 48)])
def test_crop_area_fraction_matches_the_scale_range(scale, height, width):
  ratio = (3 / 4, 4 / 3)
  boxes = jax.jit(jax.vmap(functools.partial(
      augment.sample_crop_box, height=height, width=width, scale=scale,
      ratio=ratio)))(_keys(NUM_DRAWS))
  top, left, crop_h, crop_w = np.asarray(boxes).T
  assert np.all((top >= 0) & (left >= 0) & (crop_h >= 1) & (crop_w >= 1))
  assert np.all((top + crop_h <= height) & (left + crop_w <= width))
  fractions = crop_h * crop_w / (height * width)
  reference = _reference_crop_area_fractions(
      np.random.default_rng(0), NUM_DRAWS, height, width, scale, ratio)
  # 4 standard errors of the difference of two independent sample means.
  tolerance = 4 * math.sqrt((fractions.var() + reference.var()) / NUM_DRAWS)
  assert abs(fractions.mean() - reference.mean()) < tolerance
  if scale == (0.2, 0.75):
    # On a square image every candidate fits (area * ratio <= 1), so the mean is that of
    # U(scale).
    assert abs(fractions.mean() - sum(scale) / 2) < 4 * fractions.std() / math.sqrt(NUM_DRAWS)


def test_random_apply_rates_match_their_probabilities():
  # One 8x8 colour noise image: every op changes it when applied. Sigma >= 0.5 so that a
  # blur always moves some pixel by more than float32 rounding.
  image = _images(1, 3, size=8)[0]
  ops = {
      (name, p): functools.partial(op, prob=p)
      for p in (0.2, 0.5)
      for name, op in [
          ("flip", augment.random_flip),
          ("solarize", augment.solarize),
          ("grayscale", augment.random_grayscale),
          ("blur", functools.partial(augment.gaussian_blur, sigma=(0.5, 2.0), kernel_size=3)),
      ]
  }

  @jax.jit
  def applied_fractions(keys):
    return {name_p: jnp.mean(jnp.any(jax.vmap(op, in_axes=(0, None))(keys, image) != image,
                                     axis=(1, 2, 3)))
            for name_p, op in ops.items()}

  for (name, p), fraction in applied_fractions(_keys(NUM_DRAWS)).items():
    assert abs(float(fraction) - p) < _binomial_band(p, NUM_DRAWS), (name, p)


# --- independent references --------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_flip_solarize_grayscale_match_numpy(channels):
  images = _images(4, channels)
  keys = _keys(4)
  flipped = _batched(functools.partial(augment.random_flip, prob=1.0))(keys, images)
  np.testing.assert_array_equal(flipped, images[:, :, ::-1])
  solarized = _batched(functools.partial(augment.solarize, prob=1.0, threshold=0.4))(
      keys, images)
  np.testing.assert_array_equal(solarized, np.where(images >= 0.4, 1 - images, images))
  gray = _batched(functools.partial(augment.random_grayscale, prob=1.0))(keys, images)
  if channels == 3:
    luma = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    expected = np.repeat(luma[..., None], 3, axis=-1)
  else:
    expected = images
  np.testing.assert_allclose(gray, expected, atol=1e-6, rtol=0)


def _numpy_blur(image, sigma, kernel_size):
  radius = kernel_size // 2
  offsets = np.arange(-radius, radius + 1, dtype=np.float64)
  weights = np.exp(-offsets**2 / (2 * sigma**2))
  weights /= weights.sum()
  image = image.astype(np.float64)
  padded = np.pad(image, ((radius, radius), (0, 0), (0, 0)), mode="reflect")
  image = sum(w * padded[t:t + image.shape[0]] for t, w in enumerate(weights))
  padded = np.pad(image, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
  return sum(w * padded[:, t:t + image.shape[1]] for t, w in enumerate(weights))


@pytest.mark.parametrize("channels", [1, 3])
def test_blur_matches_a_float64_numpy_reference(channels):
  image = _images(1, channels)[0]
  blur = jax.jit(augment.blur_with_sigma, static_argnums=2)
  for sigma, kernel_size in [(0.7, 3), (1.3, 5), (2.0, 7)]:
    np.testing.assert_allclose(blur(image, sigma, kernel_size),
                               _numpy_blur(image, sigma, kernel_size), atol=1e-6, rtol=0)
  constant = np.full((SIZE, SIZE, channels), 0.37, np.float32)
  np.testing.assert_allclose(blur(constant, 1.5, 7), constant, atol=1e-6, rtol=0)


def test_blur_kernel_size_follows_simclr():
  assert [augment.blur_kernel_size(s) for s in (16, 28, 32, 96, 224)] == [3, 3, 3, 9, 23]
  with pytest.raises(ValueError, match="odd"):
    augment.blur_with_sigma(_images(1, 1)[0], 1.0, 4)
  with pytest.raises(ValueError, match="reflect"):
    augment.blur_with_sigma(_images(1, 1, size=4)[0], 1.0, 9)


@pytest.mark.parametrize("channels", [1, 3])
def test_brightness_contrast_saturation_match_numpy(channels):
  image = _images(1, channels)[0]
  x = image.astype(np.float64)
  gray = x @ np.array([0.299, 0.587, 0.114])[:, None] if channels == 3 else x
  for factor in (0.3, 1.7):
    np.testing.assert_allclose(augment.adjust_brightness(image, factor),
                               np.clip(x * factor, 0, 1), atol=1e-6, rtol=0)
    np.testing.assert_allclose(augment.adjust_contrast(image, factor),
                               np.clip(factor * x + (1 - factor) * gray.mean(), 0, 1),
                               atol=1e-6, rtol=0)
    saturated = np.clip(factor * x + (1 - factor) * gray, 0, 1) if channels == 3 else x
    np.testing.assert_allclose(augment.adjust_saturation(image, factor), saturated,
                               atol=1e-6, rtol=0)


def test_hsv_matches_colorsys_and_round_trips():
  image = _images(1, 3)[0]
  # Gray and black pixels exercise the chroma = 0 and value = 0 conventions.
  image[0, :3] = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]
  hsv = np.asarray(augment.rgb_to_hsv(image))
  expected = np.array([[colorsys.rgb_to_hsv(*p) for p in row] for row in image.astype(float)])
  np.testing.assert_allclose(hsv, expected, atol=1e-6, rtol=0)
  np.testing.assert_allclose(augment.hsv_to_rgb(hsv), image, atol=1e-6, rtol=0)


def test_hue_shift_matches_colorsys_and_full_turns_are_the_identity():
  image = _images(1, 3)[0]
  np.testing.assert_allclose(augment.adjust_hue(image, 0.0), image, atol=1e-6, rtol=0)
  np.testing.assert_allclose(augment.adjust_hue(image, 1.0), image, atol=1e-5, rtol=0)
  np.testing.assert_allclose(augment.adjust_hue(image, -1.0), image, atol=1e-5, rtol=0)
  shift = 0.3

  def shifted(pixel):
    h, s, v = colorsys.rgb_to_hsv(*pixel)
    return colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)

  expected = np.array([[shifted(p) for p in row] for row in image.astype(float)])
  np.testing.assert_allclose(augment.adjust_hue(image, shift), expected, atol=1e-5, rtol=0)
  gray = _images(1, 1)[0]
  np.testing.assert_array_equal(augment.adjust_hue(gray, shift), gray)


# --- Gaussian noise ------------------------------------------------------------------

# ImageNet-C's noise std per severity (make_imagenet_c.py, github.com/hendrycks/robustness).
IMAGENET_C_NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)


def test_gaussian_noise_is_the_imagenet_c_formula_on_its_own_draws():
  image = _images(1, 3)[0]
  key = jax.random.key(7)
  normals = np.asarray(jax.random.normal(jax.random.split(key)[1], image.shape), np.float64)
  expected = np.clip(image.astype(np.float64) + 0.26 * normals, 0.0, 1.0)
  out = jax.jit(functools.partial(augment.gaussian_noise, std=0.26, prob=1.0))(key, image)
  np.testing.assert_allclose(out, expected, atol=1e-6)
  assert 0.0 < (out == 0.0).mean() and 0.0 < (out == 1.0).mean()  # clipped at both ends
  skipped = augment.gaussian_noise(key, image, std=0.26, prob=0.0)
  np.testing.assert_array_equal(skipped, image)


@pytest.mark.parametrize("severity", [1, 3, 5])
@pytest.mark.parametrize("level", [20, 128, 240])
def test_gaussian_noise_matches_the_host_corruption_in_distribution(severity, level):
  """The device op and `jejax.data.corrupt` (NumPy's generator, uint8) on a constant image:
  the same distribution of grey levels, clipped mass included (two-sample
  Kolmogorov-Smirnov distance)."""
  from jejax.data import corrupt
  n = 64
  host = corrupt(np.full((n, SIZE, SIZE, 1), level, np.uint8), "gaussian_noise", severity)
  op = _batched(functools.partial(augment.gaussian_noise,
                                  std=IMAGENET_C_NOISE_STD[severity - 1], prob=1.0))
  device = op(_keys(n), np.full((n, SIZE, SIZE, 1), level / 255, np.float32))
  device = np.rint(np.asarray(device) * 255)
  grey = np.arange(256)
  host_cdf = np.searchsorted(np.sort(host.ravel()), grey, side="right") / host.size
  device_cdf = np.searchsorted(np.sort(device.ravel()), grey, side="right") / device.size
  # 16384 pixels each: the two-sample KS distance at 99.9% is 1.95 * sqrt(2 / 16384).
  assert np.abs(host_cdf - device_cdf).max() < 1.95 * math.sqrt(2 / host.size)


def test_gaussian_noise_is_applied_at_its_rate():
  image = np.full((SIZE, SIZE, 1), 0.5, np.float32)
  op = _batched(functools.partial(augment.gaussian_noise, std=0.1, prob=0.3))
  out = op(_keys(NUM_DRAWS), np.broadcast_to(image, (NUM_DRAWS, *image.shape)))
  applied = np.asarray((out != 0.5).any(axis=(1, 2, 3)))
  assert abs(applied.mean() - 0.3) < _binomial_band(0.3, NUM_DRAWS)
