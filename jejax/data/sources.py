"""Random-access image-classification sources: in-memory arrays and TFDS datasets.

A source is anything with `len(source)`, `source.get_batch(indices)`, `num_classes`,
`name` and `image_shape` (the `Source` protocol). The host pipeline only ever asks a
source for the examples at some indices, so shuffling, resuming and sharding are index
arithmetic (see `pipeline.py`) and never depend on how the source stores its data.

Batches are dicts of numpy arrays: `image` (b, h, w, c) uint8 and `label` (b,) int32.
Augmentation and the cast to float happen later, on the device.

Example:
  >>> source = get_source('fashion_mnist', 'train')
  >>> validate_image_shape(source.image_shape, (28, 28, 1))
  >>> source.get_batch(np.array([3, 1, 4]))['image'].shape
  (3, 28, 28, 1)
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from jejax.data.errors import DataError, DataNotFoundError, ImageShapeError, UnknownDatasetError

Batch = dict[str, np.ndarray]

# Datasets jejax reads from files on disk, without TFDS (the last two: `paired.py`).
_OFFLINE_DATASETS = ("fashion_mnist", "fashion_mnist_captions", "fashion_mnist_binding")


class Source(Protocol):
  """What the pipeline needs from a dataset split."""

  name: str
  num_classes: int

  def __len__(self) -> int: ...

  @property
  def image_shape(self) -> tuple[int, int, int]: ...

  def get_batch(self, indices: np.ndarray) -> Batch: ...


@dataclasses.dataclass(frozen=True, eq=False)
class ArraySource:
  """A split held in memory as two numpy arrays.

  Attributes:
    images: (n, h, w, c) uint8, c in (1, 3).
    labels: (n,) int32.
    num_classes: labels lie in [0, num_classes).
    name: the dataset's name, for messages and logs.
  """

  images: np.ndarray
  labels: np.ndarray
  num_classes: int
  name: str

  def __post_init__(self):
    images, labels = self.images, self.labels
    if images.dtype != np.uint8:
      raise ImageShapeError(
          f"{self.name}: images must be uint8 (the host pipeline never holds floats), "
          f"got {images.dtype}")
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ImageShapeError(
          f"{self.name}: images must have shape (n, h, w, c) with c 1 or 3, got "
          f"{images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
      raise ImageShapeError(
          f"{self.name}: {len(images)} images need labels of shape ({len(images)},), got "
          f"{labels.shape}")
    if labels.dtype != np.int32:
      raise DataError(f"{self.name}: labels must be int32, got {labels.dtype}")

  def __len__(self) -> int:
    return len(self.images)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(h, w, c) of every image."""
    return tuple(self.images.shape[1:])

  def get_batch(self, indices: np.ndarray) -> Batch:
    """The examples at `indices` (b,): image (b, h, w, c) uint8, label (b,) int32."""
    return {"image": self.images[indices], "label": self.labels[indices]}


def resize_and_center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Scales the shorter side of (h, w, c) uint8 `image` to `size` (bilinear), then crops
  the centre square: -> (size, size, c). Keeps the aspect ratio, as evaluation
  pipelines for ImageNet-style datasets do."""
  h, w, c = image.shape
  scale = size / min(h, w)
  # max(): rounding must not leave the shorter side a pixel short of `size`.
  new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
  # PIL wants (h, w) for one channel; mode 'L' or 'RGB' is inferred from the array.
  pil = Image.fromarray(image[..., 0] if c == 1 else image)
  resized = np.asarray(pil.resize((new_w, new_h), Image.Resampling.BILINEAR))
  top, left = (new_h - size) // 2, (new_w - size) // 2
  return resized[top:top + size, left:left + size].reshape(size, size, c)


def _tensorflow_installed() -> bool:
  # Preparing a TFDS dataset from its downloads imports TensorFlow; without it the
  # attempt fails only after downloading, so we do not start one.
  return importlib.util.find_spec("tensorflow") is not None


def _unknown_dataset_message(name: str) -> str:
  # with_community_datasets=False: the community index is fetched over the network and
  # its error handling imports TensorFlow.
  builders = tfds.list_builders(with_community_datasets=False)
  close = difflib.get_close_matches(name, builders, n=10, cutoff=0.6)
  return (
      f"unknown dataset {name!r}. Offline datasets: {', '.join(_OFFLINE_DATASETS)}. "
      + (f"Close TFDS names: {', '.join(close)}. " if close else "")
      + "Any TFDS image-classification dataset (with 'image' and 'label' features) works "
      "by its TFDS name, see https://www.tensorflow.org/datasets/catalog/overview")


def _open_tfds(name: str, split: str, data_dir: str | None) -> Sequence[dict[str, Any]]:
  """`tfds.data_source` of a prepared dataset, with jejax's errors."""
  download = _tensorflow_installed()
  try:
    return tfds.data_source(
        name, split=split, data_dir=data_dir, download=download,
        # Random access needs array_record; TFDS only defaults to it without a data_dir.
        builder_kwargs={"file_format": "array_record"})
  except tfds.core.registered.DatasetNotFoundError as e:
    raise UnknownDatasetError(_unknown_dataset_message(name)) from e
  except Exception as e:  # pylint: disable=broad-except
    # An unprepared dataset fails with KeyError, a TFRecord-prepared one with
    # NotImplementedError, a failed download with whatever the network raised: all of
    # them mean "the data is not here in a form we can read", with the cause chained.
    where = data_dir or "the default TFDS data_dir (~/tensorflow_datasets)"
    raise DataNotFoundError(
        f"could not open TFDS dataset {name!r}, split {split!r}, in {where}: "
        f"{type(e).__name__}: {e}\n"
        + ("The download and preparation failed; check the network and the split name."
           if download else
           "It is not prepared there, and preparing it needs TensorFlow: "
           f"pip install 'jejax[prepare]', then tfds build {name} --file_format="
           "array_record (with --data_dir to match data.data_dir).")) from e


class TfdsSource:
  """A prepared TFDS image-classification split, read by index (no TensorFlow needed).

  Examples are decoded one at a time by `tfds.data_source` and stacked into a batch:
  image (b, h, w, c) uint8, label (b,) int32. Datasets whose images vary in size (e.g.
  ImageNet) need `image_size`: each image's shorter side is scaled to it and the centre
  square cropped, so a batch stacks.
  """

  def __init__(self, name: str, split: str, *, data_dir: str | None = None,
               image_size: int | None = None):
    self.name = name
    self.image_size = image_size
    self._data_source = _open_tfds(name, split, data_dir)
    features = self._data_source.dataset_info.features
    # FeaturesDict has `in` and `[]` but no `get`.
    if not ("image" in features and isinstance(features["image"], tfds.features.Image)
            and "label" in features
            and isinstance(features["label"], tfds.features.ClassLabel)):
      raise DataError(
          f"TFDS dataset {name!r} is not an image-classification dataset: it needs an "
          f"'image' Image feature and a 'label' ClassLabel feature, it has {features}")
    if features["image"].np_dtype != np.uint8:
      raise DataError(
          f"TFDS dataset {name!r} has {features['image'].np_dtype} images; jejax reads "
          "uint8 images only")
    self.num_classes: int = features["label"].num_classes
    # (h, w, c) as declared, None where the size varies; a 2-D declaration means c = 1.
    shape = tuple(features["image"].shape)
    self._declared_shape = shape if len(shape) == 3 else shape + (1,)

  def __len__(self) -> int:
    return len(self._data_source)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(h, w, c) of every image in a batch."""
    h, w, c = self._declared_shape
    if self.image_size is not None:
      return (self.image_size, self.image_size, c)
    if h is None or w is None:
      raise ImageShapeError(self._varying_size_message(self._declared_shape))
    return (h, w, c)

  def _varying_size_message(self, shapes: object) -> str:
    return (f"{self.name}: images differ in size ({shapes}); set data.image_size to "
            "resize the shorter side and centre-crop to a square")

  def _image(self, image: np.ndarray) -> np.ndarray:
    """One decoded image -> (h, w, c) uint8, resized when `image_size` asks for it."""
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
      image = image[..., None]
    size = self.image_size
    if size is not None and image.shape[:2] != (size, size):
      image = resize_and_center_crop(image, size)
    return image

  def get_batch(self, indices: np.ndarray) -> Batch:
    """The examples at `indices` (b,): image (b, h, w, c) uint8, label (b,) int32."""
    if len(indices) == 0:
      # A process's share of the last, padded eval batch can be empty.
      return {"image": np.zeros((0, *self.image_shape), np.uint8),
              "label": np.zeros((0,), np.int32)}
    # One index at a time: the batched `__getitems__` is not implemented by
    # tfds.testing.mock_data's data source, and decoding dominates the cost anyway.
    examples = [self._data_source[int(i)] for i in indices]
    images = [self._image(ex["image"]) for ex in examples]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
      raise ImageShapeError(self._varying_size_message(sorted(shapes)))
    return {
        "image": np.stack(images),
        "label": np.asarray([ex["label"] for ex in examples], np.int32),
    }


def get_source(name: str, split: str, *, data_dir: str | None = None,
               image_size: int | None = None, multimodal_build: str = "full") -> Source:
  """The `split` of dataset `name`, as a random-access source.

  'fashion_mnist' is read offline from its IDX files (see `load_fashion_mnist`); when
  they are missing, a TFDS copy of it is tried. 'fashion_mnist_captions' and
  'fashion_mnist_binding' are the multimodal pairs of `paired.py`, from the build
  `multimodal_build` ('full' or 'tiny'). Every other name is a TFDS dataset.

  Args:
    name: 'fashion_mnist' or a TFDS image-classification dataset name ('cifar10', ...).
    split: e.g. 'train', 'test', or a TFDS split expression ('train[:90%]').
    data_dir: where the data lives: the IDX files for Fashion-MNIST, the TFDS data_dir
      for TFDS datasets.
    image_size: square size that TFDS images are resized and centre-cropped to.

  Raises:
    UnknownDatasetError: `name` is neither offline nor a TFDS builder; lists close names.
    DataNotFoundError: the dataset is known but not on this machine; says how to get it.
    ImageShapeError: `image_size` asks offline Fashion-MNIST for a size other than 28.
  """
  if name in _OFFLINE_DATASETS[1:]:
    from jejax.data.paired import paired_source  # pylint: disable=g-import-not-at-top
    return paired_source(name, split, build=multimodal_build, data_dir=data_dir)
  if name == "fashion_mnist":
    # Imported here because fashion_mnist.py builds ArraySource from this module.
    from jejax.data.fashion_mnist import load_fashion_mnist  # pylint: disable=g-import-not-at-top
    try:
      source = load_fashion_mnist(split, data_dir)
    except DataNotFoundError as offline_error:
      try:
        return TfdsSource(name, split, data_dir=data_dir, image_size=image_size)
      except DataNotFoundError as tfds_error:
        # The offline error carries the instructions most users can follow.
        raise offline_error from tfds_error
    if image_size is not None and image_size != source.image_shape[0]:
      raise ImageShapeError(
          f"offline fashion_mnist images are {source.image_shape}; image_size={image_size} "
          "is only supported for TFDS sources. Leave data.image_size unset, or resize on "
          "the device")
    return source
  return TfdsSource(name, split, data_dir=data_dir, image_size=image_size)


def validate_image_shape(image_shape: tuple[int, int, int],
                         expected: tuple[int, int, int] | None) -> None:
  """Fails early when a source's (h, w, c) is not the (h, w, c) a config expects.

  Catches, before any compilation, a model built for 1-channel 28x28 images being fed
  3-channel 32x32 ones. `expected=None` accepts any shape.
  """
  if expected is not None and tuple(image_shape) != tuple(expected):
    raise ImageShapeError(
        f"the dataset's images are {tuple(image_shape)} (h, w, c) but the model is "
        f"configured for {tuple(expected)}; change the model's input shape or set "
        "data.image_size")
