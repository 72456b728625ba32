"""Fixed image corruptions at severities 0-5, after ImageNet-C, and a source that serves them.

The corruption experiment of arXiv 2505.12477 (section 5.2, appendix D.1) gives every
training and test image of a dataset one fixed, deterministic corruption from ImageNet-C
(Hendrycks and Dietterich, 2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", arXiv:1903.12261), then pretrains and probes on the
corrupted data. This module implements the three corruptions that experiment needs, on
uint8 images of any size (N, H, W, C). The constants are those of ImageNet-C's
`ImageNet-C/create_c/make_imagenet_c.py` (github.com/hendrycks/robustness, checked
against commit 8190fe3), which corrupts 224 px images; how each carries over to other
sizes:

- gaussian_noise: x / 255 + N(0, c^2) per pixel and channel, clipped to [0, 1], times
  255, with c = 0.08, 0.12, 0.18, 0.26, 0.38. The noise is per pixel, so nothing scales
  with the image size.
- pixelate: a PIL BOX resize of each side to int(side * c) (at least 1 px), then a resize
  back, with c = 0.6, 0.5, 0.4, 0.3, 0.25. ImageNet-C writes int(224 * c); we use each
  side's own length, so 28 px images go down to 16, 14, 11, 8, 7 px. ImageNet-C resizes
  back with BOX too; we resize back with NEAREST. Enlarging, PIL's BOX is nearest
  neighbour that breaks exact ties (an output pixel centre on an edge between two small
  pixels) the other way. At 224 px none of the five sizes has a tie, so the two give the
  same bytes (the tests check this); at 28 px sizes 16 and 8 have ties, and BOX's
  tie-breaking makes 8 px damage Fashion-MNIST images more on average than 7 px does, so
  severity 4 would be worse than severity 5.
- zoom_blur: the mean of the image and its zooms about the centre by each factor of
  np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
  np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03) (float steps: these hold 12, 16, 11,
  13 and 11 factors, from 1 to 1.11, 1.15, 1.20, 1.24 and 1.30). A zoom factor is already
  relative to the image size. ImageNet-C zooms by cropping the centre ceil(224 / z) px and
  enlarging the crop with `scipy.ndimage.zoom` (order 1); at 28 px that crop is rounded to
  whole pixels (ceil(28 / 1.01) = 28 leaves the image as it is) and the enlargement maps
  corner to corner, so we zoom exactly instead: output pixel p samples the input at
  centre + (p - centre) / z by bilinear interpolation. At 224 px the two differ by about
  a tenth of the corruption's own mean change (tests/data/test_corruptions.py checks
  this), from ImageNet-C's whole-pixel crops.

Two deliberate differences: results are rounded to the nearest integer, where ImageNet-C
truncates with np.uint8 (which darkens by half a grey level on average), and ImageNet-C's
JPEG re-encoding of the saved files (quality 85) is not applied.

Severity 0 is no corruption. Gaussian noise is drawn per image from
np.random.default_rng([seed, index]), index the image's example index in its split, so an
image gets the same noise whether it is corrupted alone, in a chunk or with the whole
split; the other two corruptions are deterministic. The work runs once per split on the
host, in numpy, before training (`CorruptedSource`), not in the train step.

Example:
  >>> test = CorruptedSource(load_fashion_mnist('test'), 'pixelate', 3, seed=1)
  >>> test.get_batch(np.arange(2))['image'].shape
  (2, 28, 28, 1)
  >>> noisy = corrupt(images, 'gaussian_noise', 2, seed=0, indices=np.arange(len(images)))
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from jejax.data.errors import ImageShapeError
from jejax.data.sources import ArraySource, Source

MAX_SEVERITY = 5

# ImageNet-C's constants, indexed by severity - 1 (see the module docstring).
_NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)
_PIXELATE_SCALE = (0.6, 0.5, 0.4, 0.3, 0.25)
# The same np.arange calls as ImageNet-C, so the factors (and their count, which decides
# the weight of the unzoomed image) are the same floats.
_ZOOM_FACTORS = (
    np.arange(1, 1.11, 0.01),
    np.arange(1, 1.16, 0.01),
    np.arange(1, 1.21, 0.02),
    np.arange(1, 1.26, 0.02),
    np.arange(1, 1.31, 0.03),
)


class Corruption(Protocol):
  """(images (n, h, w, c) uint8, severity in 0..5, seed, example indices (n,)) -> the
  corrupted images, (n, h, w, c) uint8."""

  def __call__(self, images: np.ndarray, severity: int, *, seed: int = 0,
               indices: np.ndarray | None = None) -> np.ndarray: ...


def _check_severity(severity: int) -> None:
  if (isinstance(severity, bool) or not isinstance(severity, (int, np.integer))
      or not 0 <= severity <= MAX_SEVERITY):
    raise ValueError(
        f"corruption severity must be an integer in 0..{MAX_SEVERITY} (0: none), got "
        f"{severity!r}")


def _check(images: np.ndarray, severity: int) -> None:
  if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
    raise ImageShapeError(
        "corruptions take a uint8 numpy array of shape (n, h, w, c), got "
        f"{type(images).__name__} {getattr(images, 'dtype', '')} "
        f"{getattr(images, 'shape', '')}")
  _check_severity(severity)


def _to_uint8(x: np.ndarray) -> np.ndarray:
  """Floats on the 0..255 scale -> uint8, rounded to nearest and clipped."""
  return np.rint(np.clip(x, 0, 255)).astype(np.uint8)


def gaussian_noise(images: np.ndarray, severity: int, *, seed: int = 0,
                   indices: np.ndarray | None = None) -> np.ndarray:
  """ImageNet-C's Gaussian noise: clip(x / 255 + N(0, c^2), 0, 1) * 255 per pixel.

  Args:
    images: (n, h, w, c) uint8.
    severity: 0 (none) to 5; c = 0.08, 0.12, 0.18, 0.26, 0.38.
    seed: with each image's index, seeds that image's noise.
    indices: (n,) non-negative example indices of `images`; default arange(n). Image k
      gets the noise of np.random.default_rng([seed, indices[k]]), whatever else is in
      the batch.

  Returns:
    (n, h, w, c) uint8.
  """
  _check(images, severity)
  if severity == 0:
    return images.copy()
  indices = np.arange(len(images)) if indices is None else np.asarray(indices)
  if indices.shape != (len(images),) or not np.issubdtype(indices.dtype, np.integer):
    raise ValueError(
        f"indices must be {len(images)} integers, one per image, got {indices.dtype} "
        f"{indices.shape}")
  noise = np.empty(images.shape, np.float64)
  for k, index in enumerate(indices):
    noise[k] = np.random.default_rng([seed, int(index)]).standard_normal(images.shape[1:])
  return _to_uint8((images / 255 + _NOISE_STD[severity - 1] * noise) * 255)


def _pixelated_size(side: int, severity: int) -> int:
  """The side, in px, that pixelate shrinks `side` to: int() truncates, as ImageNet-C's
  int(224 * c) does; at least 1 so tiny images stay images."""
  return max(1, int(side * _PIXELATE_SCALE[severity - 1]))


def pixelate(images: np.ndarray, severity: int, *, seed: int = 0,
             indices: np.ndarray | None = None) -> np.ndarray:
  """ImageNet-C's pixelate: PIL BOX resize of each side to int(side * c), then NEAREST
  back (the same bytes as ImageNet-C's BOX at 224 px; see the module docstring).

  Args:
    images: (n, h, w, c) uint8.
    severity: 0 (none) to 5; c = 0.6, 0.5, 0.4, 0.3, 0.25.
    seed, indices: unused (pixelate is deterministic); taken so every corruption is
      called alike.

  Returns:
    (n, h, w, c) uint8. Where c * side is a whole number dividing the side, each block of
    side / (c * side) px holds its block's mean, to within 1 (PIL rounds after each axis).
  """
  del seed, indices
  _check(images, severity)
  if severity == 0:
    return images.copy()
  n, h, w, c = images.shape
  small = (_pixelated_size(w, severity), _pixelated_size(h, severity))  # PIL: (w, h)
  out = np.empty_like(images)
  # One 'L' image per channel: BOX filters channels independently, and this takes any c.
  for k in range(n):
    for channel in range(c):
      plane = Image.fromarray(np.ascontiguousarray(images[k, :, :, channel]))
      out[k, :, :, channel] = plane.resize(small, Image.Resampling.BOX).resize(
          (w, h), Image.Resampling.NEAREST)
  return out


def _zoom_taps(size: int, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Linear interpolation along one axis of length `size` for a zoom by `factor` >= 1
  about the centre: output pixel p reads (1 - t) * x[lo] + t * x[hi].

  Pixel centres are at integers, so the centre is (size - 1) / 2, and the source
  position centre + (p - centre) / factor stays inside [0, size - 1].

  Returns:
    lo, hi (size,) int indices and t (size,) float32 weights of `hi`.
  """
  centre = (size - 1) / 2
  position = (np.arange(size) - centre) / factor + centre
  lo = np.floor(position).astype(np.intp)
  hi = np.minimum(lo + 1, size - 1)
  return lo, hi, (position - lo).astype(np.float32)


def _centre_zoom(x: np.ndarray, factor: float) -> np.ndarray:
  """(n, h, w, c) float32 zoomed by `factor` about the centre and cropped back to
  (n, h, w, c): separable bilinear interpolation, rows then columns.

  Gathers and elementwise arithmetic, not matrix products, so each image's result does
  not depend on the batch it is in (BLAS may sum in a batch-dependent order).
  """
  lo, hi, t = _zoom_taps(x.shape[1], factor)
  x = x[:, lo] + t[:, None, None] * (x[:, hi] - x[:, lo])
  lo, hi, t = _zoom_taps(x.shape[2], factor)
  return x[:, :, lo] + t[:, None] * (x[:, :, hi] - x[:, :, lo])


def zoom_blur(images: np.ndarray, severity: int, *, seed: int = 0,
              indices: np.ndarray | None = None) -> np.ndarray:
  """ImageNet-C's zoom blur: the mean of the image and its centre zooms by each factor.

  (x + sum_z zoom_z(x)) / (len(factors) + 1), with factors from 1 (so the unzoomed image
  counts twice, as in ImageNet-C) to 1.11, 1.15, 1.20, 1.24, 1.30 (see the module
  docstring for the exact lists and for how the zoom differs from ImageNet-C's).

  Args:
    images: (n, h, w, c) uint8.
    severity: 0 (none) to 5.
    seed, indices: unused (zoom blur is deterministic); taken so every corruption is
      called alike.

  Returns:
    (n, h, w, c) uint8.
  """
  del seed, indices
  _check(images, severity)
  if severity == 0:
    return images.copy()
  x = images.astype(np.float32)
  factors = _ZOOM_FACTORS[severity - 1]
  total = x.copy()
  for factor in factors:
    total += _centre_zoom(x, factor)
  return _to_uint8(total / (len(factors) + 1))


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "pixelate": pixelate,
    "zoom_blur": zoom_blur,
}


def _lookup(name: str) -> Corruption:
  if name not in CORRUPTIONS:
    raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
  return CORRUPTIONS[name]


def corrupt(images: np.ndarray, name: str, severity: int, *, seed: int = 0,
            indices: np.ndarray | None = None) -> np.ndarray:
  """Corruption `name` of `CORRUPTIONS` at `severity` applied to every image.

  Args:
    images: (n, h, w, c) uint8.
    name: 'gaussian_noise', 'pixelate' or 'zoom_blur'.
    severity: 0 (returns a copy of `images`) to 5.
    seed: seeds the random corruptions, with `indices`.
    indices: (n,) the images' example indices in their split; default arange(n). Give
      them when corrupting part of a split, so each image gets the bytes it gets when
      the whole split is corrupted at once.

  Returns:
    (n, h, w, c) uint8.

  Raises:
    ValueError: an unknown `name` (the message lists the known ones), or a severity
      outside 0..5.
    ImageShapeError: `images` is not a 4-d uint8 array.
  """
  return _lookup(name)(images, severity, seed=seed, indices=indices)


def _corrupt_split(source: Source, name: str, severity: int, seed: int, chunk_size: int
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Every image of `source` corrupted, read and corrupted `chunk_size` at a time:
  images (n, h, w, c) uint8 and labels (n,) int32, both read-only."""
  corruption = _lookup(name)
  _check_severity(severity)  # before the pass over the split, not after its first chunk
  n = len(source)
  images = np.empty((n, *source.image_shape), np.uint8)
  labels = np.empty((n,), np.int32)
  with tqdm(total=n, desc=f"{name} {severity} on {source.name}", unit="image",
            disable=n <= chunk_size) as progress:
    for start in range(0, n, chunk_size):
      indices = np.arange(start, min(start + chunk_size, n))
      batch = source.get_batch(indices)
      images[indices] = corruption(batch["image"], severity, seed=seed, indices=indices)
      labels[indices] = batch["label"]
      progress.update(len(indices))
  images.flags.writeable = False
  labels.flags.writeable = False
  return images, labels


class CorruptedSource(ArraySource):
  """A split with one corruption applied to every image once, served from memory.

  Corrupts the whole split when constructed, as the paper does (each image keeps the
  same corruption for the whole run), reading `source` by `get_batch` in chunks of
  `chunk_size` (a progress bar shows for more than one chunk). Image k is corrupted with
  example index k, so its bytes are those of `corrupt(images, corruption, severity,
  seed=seed, indices=[k])`. It is an `ArraySource`: `images` (n, h, w, c) uint8, `labels`
  (n,) int32, `num_classes`, `name` (the dataset's), `len`, `image_shape`, `get_batch`.

  The whole split is held in memory (47 MB for Fashion-MNIST's train split; 150 MB for
  CIFAR-10's). Give the splits of one dataset different seeds: with one seed, train image
  k and test image k get the same Gaussian noise.

  Args:
    source: any `Source`, e.g. an `ArraySource` or a `TfdsSource`.
    corruption: a name in `CORRUPTIONS`.
    severity: 0 (a plain copy of the split) to 5.
    seed: seeds the random corruptions.
    chunk_size: images read and corrupted at a time.

  Raises:
    ValueError: an unknown corruption or a severity outside 0..5, before any image is
      read.
  """

  def __init__(self, source: Source, corruption: str, severity: int, seed: int = 0, *,
               chunk_size: int = 1024):
    images, labels = _corrupt_split(source, corruption, severity, seed, chunk_size)
    super().__init__(images=images, labels=labels, num_classes=source.num_classes,
                     name=source.name)
