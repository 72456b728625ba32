"""Corruptions: ImageNet-C's constants and procedures as independent references, per-image
determinism, strength growing with severity, and the corrupted source."""

import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from jejax.data import (
    CORRUPTIONS,
    ArraySource,
    CorruptedSource,
    DataNotFoundError,
    ImageShapeError,
    corrupt,
    load_fashion_mnist,
)

NAMES = sorted(CORRUPTIONS)
SEVERITIES = [1, 2, 3, 4, 5]

# Published in ImageNet-C's make_imagenet_c.py (github.com/hendrycks/robustness).
NOISE_STD = [0.08, 0.12, 0.18, 0.26, 0.38]
PIXELATE_SCALE = [0.6, 0.5, 0.4, 0.3, 0.25]
ZOOM_FACTORS = [np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
                np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03)]


def shapes(n=16, size=28, seed=0):
  """(n, size, size, 1) uint8: a bright rectangle and a disc of random grey levels on a
  dark background, with edges everywhere a corruption can blur or break."""
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[:size, :size]
  images = np.full((n, size, size), 20, np.uint8)
  for image in images:
    top, left = rng.integers(0, size // 2, 2)
    height, width = rng.integers(size // 4, size // 2, 2)
    image[top:top + height, left:left + width] = rng.integers(150, 256)
    centre, radius = rng.uniform(size / 4, 3 * size / 4, 2), rng.uniform(size / 8, size / 4)
    image[np.hypot(rows - centre[0], cols - centre[1]) < radius] = rng.integers(60, 200)
  return images[..., None]


@pytest.fixture(params=["fashion_mnist", "shapes"])
def images(request):
  """64 real Fashion-MNIST test images when installed, and synthetic shapes always."""
  if request.param == "shapes":
    return shapes(64)
  try:
    return np.asarray(load_fashion_mnist("test").images[:64])
  except DataNotFoundError:
    pytest.skip("Fashion-MNIST absent: apt-get install dataset-fashion-mnist")


def mean_error(a, b):
  return np.abs(a.astype(np.float64) - b).mean()


@pytest.mark.parametrize("name", NAMES)
def test_severity_zero_is_an_identity_copy(name):
  x = shapes(4)
  y = corrupt(x, name, 0)
  np.testing.assert_array_equal(y, x)
  assert y is not x and not np.shares_memory(x, y)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_keeps_uint8_and_shape_any_size_and_channels(name, severity):
  x = np.random.default_rng(0).integers(0, 256, (2, 13, 9, 3), np.uint8)
  y = corrupt(x, name, severity, indices=np.array([5, 7]))
  assert y.dtype == np.uint8 and y.shape == x.shape


def test_gaussian_noise_clips_instead_of_wrapping():
  white = np.full((4, 16, 16, 1), 255, np.uint8)
  y = corrupt(white, "gaussian_noise", 1)
  # c * 255 = 20.4: six sigmas stay above 130; a uint8 wrap-around would land near 0.
  assert y.min() > 130
  assert 0.4 < (y == 255).mean() < 0.6  # the upper half of the noise is clipped at 255


@pytest.mark.parametrize("name", NAMES)
def test_strength_grows_with_severity(name, images):
  errors = [mean_error(corrupt(images, name, s), images) for s in range(6)]
  assert errors[0] == 0
  assert all(a < b for a, b in zip(errors, errors[1:])), errors


@pytest.mark.parametrize("severity", [1, 2, 3])
def test_gaussian_noise_std_matches_imagenet_c(severity):
  # Mid-grey: at these severities the mean lies 2.8 or more stds from 0 and 255, so
  # clipping hardly changes the std.
  grey = np.full((8, 16, 16, 1), 128, np.uint8)
  residual = corrupt(grey, "gaussian_noise", severity).astype(np.float64) - 128
  expected = NOISE_STD[severity - 1] * 255
  np.testing.assert_allclose(residual.std(), expected, rtol=0.05)
  assert abs(residual.mean()) < 4 * expected / np.sqrt(residual.size)


def test_gaussian_noise_follows_its_documented_generator():
  x = shapes(3)
  indices, seed, severity = np.array([9, 0, 41]), 7, 4
  expected = np.stack([
      np.clip(image / 255 + NOISE_STD[severity - 1]
              * np.random.default_rng([seed, index]).standard_normal(image.shape), 0, 1)
      for image, index in zip(x, indices)]) * 255
  y = corrupt(x, "gaussian_noise", severity, seed=seed, indices=indices)
  np.testing.assert_array_equal(y, np.rint(expected))


def test_gaussian_noise_is_a_function_of_seed_and_index():
  x = np.full((6, 8, 8, 1), 128, np.uint8)
  indices = np.arange(100, 106)
  whole = corrupt(x, "gaussian_noise", 3, seed=1, indices=indices)
  np.testing.assert_array_equal(corrupt(x, "gaussian_noise", 3, seed=1, indices=indices),
                                whole)
  alone = corrupt(x[2:3], "gaussian_noise", 3, seed=1, indices=indices[2:3])
  np.testing.assert_array_equal(alone, whole[2:3])
  # The same image at other indices, or with another seed, gets other noise.
  assert not np.array_equal(whole[0], whole[1])
  assert not np.array_equal(corrupt(x, "gaussian_noise", 3, seed=2, indices=indices), whole)


@pytest.mark.parametrize("name", NAMES)
def test_chunks_give_the_bytes_of_the_whole_batch(name):
  x = shapes(10)
  whole = corrupt(x, name, 3, seed=4)
  chunks = [corrupt(x[i:i + 3], name, 3, seed=4, indices=np.arange(i, min(i + 3, 10)))
            for i in range(0, 10, 3)]
  np.testing.assert_array_equal(np.concatenate(chunks), whole)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_is_imagenet_c_at_224_px(severity):
  # ImageNet-C's procedure, with PIL as the reference: BOX to int(224 * c), BOX back.
  x = np.random.default_rng(severity).integers(0, 256, (1, 224, 224, 1), np.uint8)
  small = int(224 * PIXELATE_SCALE[severity - 1])
  expected = Image.fromarray(x[0, ..., 0]).resize((small, small), Image.Resampling.BOX)
  expected = np.asarray(expected.resize((224, 224), Image.Resampling.BOX))
  np.testing.assert_array_equal(corrupt(x, "pixelate", severity)[0, ..., 0], expected)


@pytest.mark.parametrize("severity, block", [(2, 2), (5, 4)])  # 28 px -> 14, 7 px
def test_pixelate_averages_whole_blocks(severity, block):
  x = shapes(4)
  # Float64 block means, each repeated over its block.
  means = x.reshape(4, 28 // block, block, 28 // block, block, 1).mean(axis=(2, 4))
  expected = means.repeat(block, axis=1).repeat(block, axis=2)
  y = corrupt(x, "pixelate", severity)
  # PIL resizes rows, rounds to uint8, then resizes columns: two roundings, so 1 level.
  np.testing.assert_allclose(y, expected, atol=1)
  # An image already constant on the blocks is a fixed point.
  blocky = np.rint(expected).astype(np.uint8)
  np.testing.assert_array_equal(corrupt(blocky, "pixelate", severity), blocky)


def test_pixelate_keeps_at_least_one_pixel():
  x = np.array([[10, 20], [30, 41]], np.uint8).reshape(1, 2, 2, 1)
  y = corrupt(x, "pixelate", 5)  # int(2 * 0.25) = 0 px, so 1 px: the mean, 25.25
  assert np.all(y == y[0, 0, 0, 0]) and abs(int(y[0, 0, 0, 0]) - 25.25) <= 1


@pytest.mark.parametrize("value", [0, 77, 255])
@pytest.mark.parametrize("severity", SEVERITIES)
def test_zoom_blur_of_a_constant_image_is_unchanged(value, severity):
  x = np.full((2, 28, 28, 1), value, np.uint8)
  np.testing.assert_array_equal(corrupt(x, "zoom_blur", severity), x)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_zoom_blur_matches_a_float64_centre_zoom(severity):
  # scipy's affine resampling, in float64: input position (p - c) / z + c.
  x = np.random.default_rng(severity).integers(0, 256, (2, 28, 20, 1), np.uint8)
  plane = x[..., 0].astype(np.float64)
  centre = (np.array(plane.shape[1:]) - 1) / 2
  total = plane.copy()
  for z in ZOOM_FACTORS[severity - 1]:
    total += np.stack([scipy.ndimage.affine_transform(
        p, np.eye(2) / z, offset=centre - centre / z, order=1) for p in plane])
  expected = total / (len(ZOOM_FACTORS[severity - 1]) + 1)
  np.testing.assert_allclose(corrupt(x, "zoom_blur", severity)[..., 0], expected,
                             atol=0.5 + 1e-3)


def test_zoom_blur_keeps_the_centre_and_blurs_the_border():
  x = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1), np.uint8)
  change = np.abs(corrupt(x, "zoom_blur", 5).astype(np.float64) - x)
  border = np.ones((28, 28), bool)
  border[4:-4, 4:-4] = False
  # The centre 2x2 moves by at most 0.5 / z - 0.5 px per zoom, the border by 3 or more.
  assert change[:, 13:15, 13:15].mean() < 0.25 * change[:, border].mean()


def imagenet_c_zoom(image, z):
  """ImageNet-C's clipped zoom of (h, h, c) floats, from its description: crop the centre
  ceil(h / z) px, enlarge by z with scipy.ndimage.zoom (order 1), crop the centre h px."""
  h = image.shape[0]
  crop = int(np.ceil(h / z))
  top = (h - crop) // 2
  zoomed = scipy.ndimage.zoom(image[top:top + crop, top:top + crop], (z, z, 1), order=1)
  trim = (zoomed.shape[0] - h) // 2
  return zoomed[trim:trim + h, trim:trim + h]


@pytest.mark.parametrize("severity", SEVERITIES)
def test_zoom_blur_is_close_to_imagenet_c_at_224_px(severity):
  x = np.stack([np.asarray(Image.fromarray(image[..., 0]).resize(
      (224, 224), Image.Resampling.BILINEAR)) for image in shapes(2)])[..., None]
  factors = ZOOM_FACTORS[severity - 1]
  expected = np.stack([
      (image + sum(imagenet_c_zoom(image, z) for z in factors)) / (len(factors) + 1)
      for image in x.astype(np.float32)])
  # ImageNet-C's whole-pixel crops shift its zooms by up to a pixel: a small difference
  # next to the change the corruption makes.
  assert (mean_error(corrupt(x, "zoom_blur", severity), expected)
          < 0.2 * mean_error(x, expected))


@pytest.mark.parametrize("severity", [-1, 6, 2.0, True])
def test_bad_severity_raises_naming_it(severity):
  with pytest.raises(ValueError, match=f"got {severity!r}"):
    corrupt(shapes(1), "pixelate", severity)


def test_unknown_name_lists_the_known_ones():
  with pytest.raises(ValueError, match="'fog'.*gaussian_noise, pixelate, zoom_blur"):
    corrupt(shapes(1), "fog", 1)


def test_bad_images_and_indices_raise():
  with pytest.raises(ImageShapeError, match="uint8"):
    corrupt(shapes(1).astype(np.float32), "zoom_blur", 1)
  with pytest.raises(ImageShapeError, match=r"\(n, h, w, c\)"):
    corrupt(shapes(1)[0], "zoom_blur", 1)
  with pytest.raises(ValueError, match="one per image"):
    corrupt(shapes(2), "gaussian_noise", 1, indices=np.arange(3))


class ListSource:
  """A `Source` that is not an `ArraySource`, recording the size of each request."""

  name = "lists"
  num_classes = 3

  def __init__(self, images, labels):
    self.images, self.labels, self.requests = images, labels, []

  def __len__(self):
    return len(self.images)

  @property
  def image_shape(self):
    return self.images.shape[1:]

  def get_batch(self, indices):
    self.requests.append(len(indices))
    return {"image": self.images[indices], "label": self.labels[indices]}


@pytest.mark.parametrize("name", NAMES)
def test_corrupted_source_serves_what_corrupt_gives(name):
  x, labels = shapes(10), np.arange(10, dtype=np.int32) % 3
  source = CorruptedSource(ArraySource(x, labels, num_classes=3, name="shapes"), name, 4,
                           seed=3, chunk_size=4)
  indices = np.array([7, 2, 9])
  batch = source.get_batch(indices)
  np.testing.assert_array_equal(
      batch["image"], corrupt(x[indices], name, 4, seed=3, indices=indices))
  np.testing.assert_array_equal(batch["label"], labels[indices])
  assert (len(source), source.image_shape, source.num_classes, source.name) == (
      10, (28, 28, 1), 3, "shapes")
  assert not source.images.flags.writeable


def test_corrupted_source_reads_any_source_in_chunks():
  x, labels = shapes(10), np.arange(10, dtype=np.int32) % 3
  lists = ListSource(x, labels)
  from_lists = CorruptedSource(lists, "gaussian_noise", 2, seed=5, chunk_size=4)
  assert lists.requests == [4, 4, 2]
  from_arrays = CorruptedSource(ArraySource(x, labels, num_classes=3, name="shapes"),
                                "gaussian_noise", 2, seed=5)
  np.testing.assert_array_equal(from_lists.images, from_arrays.images)
  np.testing.assert_array_equal(from_lists.labels, labels)


def test_corrupted_source_checks_arguments_before_reading():
  lists = ListSource(shapes(4), np.zeros(4, np.int32))
  with pytest.raises(ValueError, match="got 9"):
    CorruptedSource(lists, "pixelate", 9)
  with pytest.raises(ValueError, match="unknown corruption"):
    CorruptedSource(lists, "snow", 1)
  assert lists.requests == []
