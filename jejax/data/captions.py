"""Captions of Fashion-MNIST images that describe the particular image, not only its class.

Five attributes are measured from each image's pixels (`measure_attributes`), quantised
into levels by thresholds fitted per class on the train split (`fit_thresholds`,
`attribute_levels`), and two of them, with the class, are put into one of several
phrasings (`make_captions`): "a photo of a dark small sandal", "this coat is wide and
patterned". Class prompts for CLIP-style zero-shot classification are `class_prompts`.

The attributes (`ATTRIBUTES`; levels in `ATTRIBUTE_LEVELS`). The foreground of an image is
its pixels above `FOREGROUND_THRESHOLD` (32 of 255), which leaves out the faint pixels at
a garment's edge:

- tone (dark, mid, light): the mean intensity (0-255) of the foreground pixels.
- size (small, medium, large): foreground pixels / all pixels.
- shape (narrow, wide): sqrt(var(x) / var(y)), x and y the column and row of the
  foreground taken as unit squares (pixel-centre variance + 1/12, so a w x h rectangle
  measures exactly w / h).
- symmetry (symmetric, asymmetric): sum |I - mirror(I)| / (2 sum I), the mirror about the
  image's vertical centre line: 0 for a mirror-symmetric image, 1 when the two do not
  overlap.
- texture (plain, patterned): the mean of (|I(r, c+1) - I(r, c)| + |I(r+1, c) - I(r, c)|)
  / 2 over the interior pixels (foreground pixels whose 8 neighbours are foreground), so
  the silhouette's outline does not count.

Every attribute is relative to the class: the thresholds are the per-class tertiles
(3 levels) or medians (2 levels) of the train split's measurements, so "a small coat" is
small for a coat and every class has every level in about equal parts. A probe that reads
an attribute from an embedding therefore has to see more than the class. Quantiles are
`np.quantile`'s default (linear) on float64 measurements: deterministic.

Example:
  >>> train, test = load_fashion_mnist('train'), load_fashion_mnist('test')
  >>> thresholds = fit_thresholds(measure_attributes(train.images), train.labels)
  >>> levels = attribute_levels(measure_attributes(test.images), test.labels, thresholds)
  >>> make_captions(test.labels, levels, seed=0, split='test').captions[0]
  'a wide and patterned ankle boot'
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

ATTRIBUTES = ("tone", "size", "shape", "symmetry", "texture")

# Level names, in the order of the integer levels: level k exceeds k of the class's
# thresholds.
ATTRIBUTE_LEVELS: dict[str, tuple[str, ...]] = {
    "tone": ("dark", "mid", "light"),
    "size": ("small", "medium", "large"),
    "shape": ("narrow", "wide"),
    "symmetry": ("symmetric", "asymmetric"),
    "texture": ("plain", "patterned"),
}

# The words a caption uses for each level ("mid" alone is not an adjective).
ATTRIBUTE_WORDS: dict[str, tuple[str, ...]] = {
    **ATTRIBUTE_LEVELS, "tone": ("dark", "grey", "light")}

FOREGROUND_THRESHOLD = 32

# FASHION_MNIST_CLASSES as a caption says them ("T-shirt/top" is not speakable).
CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
               "sneaker", "bag", "ankle boot")

# {x} and {y}: the words of the two attributes a caption mentions, in a random order;
# {cls}: the class name. "a" before a vowel becomes "an" after formatting (`a_or_an`).
CAPTION_TEMPLATES = (
    "a photo of a {x} {y} {cls}",
    "a {x} {y} {cls}",
    "this {cls} is {x} and {y}",
    "a {x} and {y} {cls}",
    "a picture of a {x} {y} {cls}",
    "a {cls}, {x} and {y}",
)

# Attributes named per caption: two of five keep a spoken caption within 3 s at
# espeak-ng's slower rates (all five take 4-6 s; see the README).
ATTRIBUTES_PER_CAPTION = 2

# CLIP-style prompt ensemble for zero-shot classification (Radford et al. 2021, the
# prompts of their notebook), the ones that fit a photo of one garment.
ZERO_SHOT_TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "a photo of the {}.",
    "a low resolution photo of a {}.",
    "a black and white photo of a {}.",
    "a blurry photo of a {}.",
    "a close-up photo of a {}.",
    "a cropped photo of a {}.",
)

_SPLIT_SEEDS = {"train": 0, "test": 1}


def a_or_an(text: str) -> str:
  """'a' -> 'an' before a vowel ("an asymmetric coat", "an ankle boot"). Every word that
  can follow an article here is spelled as it sounds (no "a uniform")."""
  return re.sub(r"\ba (?=[aeiou])", "an ", text)


def _grayscale(images: np.ndarray) -> np.ndarray:
  """(n, h, w) or (n, h, w, 1) uint8 -> (n, h, w) uint8, checked."""
  images = np.asarray(images)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim != 3 or images.dtype != np.uint8:
    raise ValueError(
        f"expected grayscale uint8 images of shape (n, h, w) or (n, h, w, 1), got "
        f"{images.dtype} {images.shape}")
  return images


def _variance(counts: np.ndarray) -> np.ndarray:
  """Variance of a coordinate from (n, k) foreground counts per coordinate value, the
  foreground taken as unit squares: the pixel-centre variance + 1/12 (a unit square's
  own variance), so it is never 0 and a one-pixel-high garment still has a shape."""
  coord = np.arange(counts.shape[1], dtype=np.float64)
  total = np.maximum(counts.sum(1), 1)
  mean = counts @ coord / total
  return counts @ coord**2 / total - mean**2 + 1 / 12


def measure_attributes(images: np.ndarray) -> np.ndarray:
  """The five raw measurements of each image, in the order of `ATTRIBUTES`.

  Args:
    images: (n, h, w) or (n, h, w, 1) uint8.

  Returns:
    (n, 5) float64: tone in [0, 255], size in [0, 1], shape > 0, symmetry in [0, 1],
    texture in [0, 255]. An image without foreground measures 0 for all but shape (1).
  """
  images = _grayscale(images)
  # In chunks: whole-split temporaries (200 MB each for 60,000 images) cost more in
  # memory traffic than in arithmetic.
  chunk = 2048
  measurements = np.zeros((len(images), len(ATTRIBUTES)))
  for i in range(0, len(images), chunk):
    measurements[i:i + chunk] = _measure(images[i:i + chunk])
  return measurements


def _measure(images: np.ndarray) -> np.ndarray:
  """`measure_attributes` of (n, h, w) uint8 images."""
  x = images.astype(np.int32)  # every sum below is exact
  _, h, w = x.shape
  fg = x > FOREGROUND_THRESHOLD
  count = fg.sum((1, 2))
  tone = np.where(fg, x, 0).sum((1, 2)) / np.maximum(count, 1)
  size = count / (h * w)
  shape = np.sqrt(_variance(fg.sum(1)) / _variance(fg.sum(2)))
  symmetry = np.abs(x - x[:, :, ::-1]).sum((1, 2)) / np.maximum(2 * x.sum((1, 2)), 1)

  # Interior: a foreground pixel whose 3x3 neighbourhood is foreground (an erosion);
  # the image's border is never interior, so every interior pixel has a right and a
  # lower neighbour.
  padded = np.pad(fg, ((0, 0), (1, 1), (1, 1)))
  interior = fg.copy()
  for dr in range(3):
    for dc in range(3):
      interior &= padded[:, dr:dr + h, dc:dc + w]
  dx = np.abs(np.diff(x, axis=2))  # (n, h, w - 1): to the right neighbour
  dy = np.abs(np.diff(x, axis=1))  # (n, h - 1, w): to the lower neighbour
  edges = ((dx * interior[:, :, :-1]).sum((1, 2)) + (dy * interior[:, :-1, :]).sum((1, 2)))
  texture = edges / 2 / np.maximum(interior.sum((1, 2)), 1)
  return np.stack([tone, size, shape, symmetry, texture], axis=1)


def fit_thresholds(measurements: np.ndarray, labels: np.ndarray,
                   num_classes: int = len(CLASS_NAMES)) -> dict[str, np.ndarray]:
  """Per-class quantile thresholds of each attribute: tertiles for 3 levels, the median
  for 2.

  Args:
    measurements: (n, 5) from `measure_attributes` (the train split).
    labels: (n,) int in [0, num_classes); every class must occur.

  Returns:
    attribute name -> (num_classes, levels - 1) float64, ascending along the last axis.
  """
  measurements = np.asarray(measurements, np.float64)
  labels = np.asarray(labels)
  if measurements.shape != (len(labels), len(ATTRIBUTES)):
    raise ValueError(
        f"measurements must be ({len(labels)}, {len(ATTRIBUTES)}) for {len(labels)} "
        f"labels, got {measurements.shape}")
  missing = sorted(set(range(num_classes)) - set(np.unique(labels).tolist()))
  if missing:
    raise ValueError(f"no examples of classes {missing} to fit their thresholds on")
  thresholds = {}
  for a, name in enumerate(ATTRIBUTES):
    levels = len(ATTRIBUTE_LEVELS[name])
    qs = np.arange(1, levels) / levels
    thresholds[name] = np.stack(
        [np.quantile(measurements[labels == c, a], qs) for c in range(num_classes)])
  return thresholds


def attribute_levels(measurements: np.ndarray, labels: np.ndarray,
                     thresholds: dict[str, np.ndarray]) -> np.ndarray:
  """(n, 5) measurements and (n,) labels -> (n, 5) int32 levels: the number of the
  class's thresholds each measurement exceeds (a measurement equal to a threshold
  counts as exceeding it)."""
  measurements = np.asarray(measurements, np.float64)
  labels = np.asarray(labels)
  levels = np.empty(measurements.shape, np.int32)
  for a, name in enumerate(ATTRIBUTES):
    cuts = thresholds[name][labels]  # (n, levels - 1)
    levels[:, a] = (measurements[:, a, None] >= cuts).sum(1)
  return levels


class Captions(NamedTuple):
  """Captions of n images.

  Attributes:
    captions: n ASCII strings.
    template: (n,) int32 index into `CAPTION_TEMPLATES`.
    mentions: (n, 5) bool, which attributes (in `ATTRIBUTES` order) a caption names.
  """

  captions: list[str]
  template: np.ndarray
  mentions: np.ndarray


def make_captions(labels: np.ndarray, levels: np.ndarray, *, seed: int,
                  split: str) -> Captions:
  """One caption per image: its class and two of its attribute levels in a phrasing.

  The template, the two attributes and their order are drawn for all images of the
  split at once from a generator seeded by (seed, split), so image i's caption is a
  pure function of (seed, split, i, its label and levels): pass a whole split, and a
  subset of it gets the same captions as in the whole.

  Args:
    labels: (n,) int class indices, in the order of the split's images.
    levels: (n, 5) int attribute levels from `attribute_levels`.
    seed: caption seed.
    split: 'train' or 'test' (the two splits draw from different generators).
  """
  labels = np.asarray(labels)
  levels = np.asarray(levels)
  if split not in _SPLIT_SEEDS:
    raise ValueError(f"split {split!r}; choose one of {sorted(_SPLIT_SEEDS)}")
  rng = np.random.default_rng([seed, _SPLIT_SEEDS[split]])
  n = len(labels)
  template = rng.integers(len(CAPTION_TEMPLATES), size=n).astype(np.int32)
  # A random permutation of the five attributes per image; the first two are named.
  named = rng.random((n, len(ATTRIBUTES))).argsort(axis=1)[:, :ATTRIBUTES_PER_CAPTION]
  mentions = np.zeros((n, len(ATTRIBUTES)), bool)
  np.put_along_axis(mentions, named, True, axis=1)
  captions = []
  for i in range(n):
    x, y = (ATTRIBUTE_WORDS[ATTRIBUTES[a]][levels[i, a]] for a in named[i])
    text = CAPTION_TEMPLATES[template[i]].format(x=x, y=y, cls=CLASS_NAMES[labels[i]])
    captions.append(a_or_an(text))
  return Captions(captions, template, mentions)


def caption_describes(labels: np.ndarray, levels: np.ndarray, mentions: np.ndarray,
                      chunk: int = 1000) -> np.ndarray:
  """(n, n) bool: [c, i] is True when the caption of example c is true of the image of
  example i: the same class, and image i has the level caption c names for each of the
  attributes it names (the others are free). The diagonal is True.

  Args:
    labels: (n,) classes; levels: (n, 5) attribute levels; mentions: (n, 5) bool, the
      attributes each caption names (a batch's 'label', 'attributes', 'mentions').
    chunk: captions per block (memory: chunk x n x 5).
  """
  labels, levels, mentions = np.asarray(labels), np.asarray(levels), np.asarray(mentions)
  n = len(labels)
  out = np.empty((n, n), bool)
  for start in range(0, n, chunk):
    c = slice(start, start + chunk)
    agree = (levels[c, None, :] == levels[None, :, :]) | ~mentions[c, None, :]  # (b, n, 5)
    out[c] = (labels[c, None] == labels[None, :]) & agree.all(axis=2)
  return out


def class_prompts(templates: tuple[str, ...] = ZERO_SHOT_TEMPLATES) -> list[list[str]]:
  """Zero-shot prompts: [class][template] strings, e.g. 'a photo of an ankle boot.'
  An embedding of a class is the normalised mean of its prompts' embeddings (CLIP)."""
  return [[a_or_an(t.format(name)) for t in templates] for name in CLASS_NAMES]
