"""Fashion-MNIST read offline from the original IDX files.

Fashion-MNIST (Xiao et al., 2017, arXiv:1708.07747) is 70,000 grayscale 28x28 images of
10 clothing classes. The machines that build and test jejax have no network beyond package
registries, and preparing it through TFDS imports TensorFlow, so jejax reads the four IDX
files directly. Debian ships them (`apt-get install dataset-fashion-mnist`); their gzip
bytes differ from the upstream downloads, but the decompressed bytes are the originals.

The IDX format is a 4-byte magic number `0x00 0x00 <dtype> <ndim>`, then `ndim`
big-endian uint32 sizes, then the values in row-major order.

Example:
  >>> source = load_fashion_mnist('test')
  >>> batch = source.get_batch(np.arange(4))
  >>> batch['image'].shape, batch['label'].dtype
  ((4, 28, 28, 1), dtype('int32'))
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from jejax.data.errors import CorruptDataError, DataNotFoundError
from jejax.data.sources import ArraySource

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

# Read once at import: `$JEJAX_DATA_DIR/fashion-mnist` first, so a user can override the
# Debian copy without root, then where `dataset-fashion-mnist` installs the files.
FASHION_MNIST_DIRS: tuple[str, ...] = tuple(
    ([os.path.join(os.environ["JEJAX_DATA_DIR"], "fashion-mnist")]
     if os.environ.get("JEJAX_DATA_DIR") else [])
    + ["/usr/share/datasets/fashion-mnist"])

# split -> (images file, labels file); the test split is called t10k upstream.
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# The only two IDX kinds Fashion-MNIST uses: unsigned bytes with 3 dims (images) or 1 dim
# (labels).
_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Parses one uint8 IDX file, gzip-compressed (name ends in `.gz`) or plain.

  Args:
    path: an images file (magic 0x00000803) or a labels file (magic 0x00000801).

  Returns:
    uint8 array of the shape in the header: (n, rows, cols) or (n,). Read-only, because
    `load_fashion_mnist` caches it.

  Raises:
    CorruptDataError: naming `path`, for a bad or truncated gzip stream, an unknown
      magic number, a header cut short, or a payload whose length is not the product of
      the header's sizes.
  """
  path = Path(path)
  data = path.read_bytes()
  if path.suffix == ".gz":
    try:
      data = gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, OSError, zlib.error) as e:
      raise CorruptDataError(f"{path}: not a valid gzip file ({e})") from e
  if len(data) < 4:
    raise CorruptDataError(f"{path}: {len(data)} bytes, too short for an IDX header")
  magic = int.from_bytes(data[:4], "big")
  if magic not in (_IMAGES_MAGIC, _LABELS_MAGIC):
    raise CorruptDataError(
        f"{path}: IDX magic number {magic:#010x}, expected {_IMAGES_MAGIC:#010x} (uint8 "
        f"images) or {_LABELS_MAGIC:#010x} (uint8 labels)")
  ndim = data[3]
  header_len = 4 + 4 * ndim
  if len(data) < header_len:
    raise CorruptDataError(f"{path}: the IDX header is cut short ({len(data)} bytes)")
  shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
  expected = int(np.prod(shape))
  found = len(data) - header_len
  if found != expected:
    raise CorruptDataError(
        f"{path}: header says shape {shape}, i.e. {expected} bytes of values, but "
        f"{found} bytes follow the header (truncated or padded file)")
  # frombuffer over immutable bytes is already read-only, which protects the cache.
  return np.frombuffer(data, np.uint8, offset=header_len).reshape(shape)


def _find_split_dir(split: str, dirs: list[str]) -> str | None:
  """The first of `dirs` holding both files of `split`, or None."""
  for d in dirs:
    if all(os.path.isfile(os.path.join(d, f)) for f in _FILES[split]):
      return d
  return None


def _not_found_message(split: str, dirs: list[str]) -> str:
  images, labels = _FILES[split]
  searched = "\n".join(f"  {d}" for d in dirs) or "  (no folders configured)"
  return (
      f"Fashion-MNIST {split!r} files ({images}, {labels}) not found. Searched:\n"
      f"{searched}\n"
      "To get them, do one of:\n"
      "  - on Debian/Ubuntu: apt-get install dataset-fashion-mnist\n"
      "  - set data.data_dir, or the JEJAX_DATA_DIR environment variable (which is "
      "searched as $JEJAX_DATA_DIR/fashion-mnist), to a folder holding the four IDX .gz "
      "files\n"
      "  - on a machine with a network and TensorFlow: pip install 'jejax[prepare]', "
      "then tfds build fashion_mnist --file_format=array_record (jejax reads TFDS "
      "datasets by random access)")


@functools.lru_cache(maxsize=None)
def _read_split(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Images (n, 28, 28, 1) uint8 and labels (n,) int32 of one split, checked.

  Cached per (directory, split): parsing 60,000 images takes a fraction of a second, but
  configs, evaluators and tests load the same split many times.
  """
  images_path, labels_path = (os.path.join(directory, f) for f in _FILES[split])
  images = read_idx(images_path)
  labels = read_idx(labels_path)
  if images.ndim != 3:
    raise CorruptDataError(f"{images_path}: expected 3-d images, got shape {images.shape}")
  if labels.ndim != 1:
    raise CorruptDataError(f"{labels_path}: expected 1-d labels, got shape {labels.shape}")
  if len(images) != len(labels):
    raise CorruptDataError(
        f"{images_path} holds {len(images)} images but {labels_path} holds "
        f"{len(labels)} labels")
  if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
    raise CorruptDataError(
        f"{labels_path}: label {labels.max()} outside [0, {len(FASHION_MNIST_CLASSES) - 1}]")
  images = images[..., None]  # (n, 28, 28) -> (n, 28, 28, 1), a read-only view
  labels = labels.astype(np.int32)
  labels.flags.writeable = False
  return images, labels


def load_fashion_mnist(split: str, data_dir: str | None = None) -> ArraySource:
  """The `split` ('train': 60,000 images, 'test': 10,000) of Fashion-MNIST from IDX files.

  Args:
    split: 'train' or 'test' (read from the upstream `t10k-*` files).
    data_dir: searched first, then `data_dir/fashion-mnist`, then `FASHION_MNIST_DIRS`.
      The defaults stay in the search so that a `data_dir` meant for TFDS datasets does
      not hide an installed Debian copy.

  Returns:
    An `ArraySource` with images (n, 28, 28, 1) uint8 and labels (n,) int32 in [0, 9].
    The arrays are read-only and shared between calls.

  Raises:
    DataNotFoundError: no searched folder holds the split's two files; the message lists
      the folders and how to get the data.
    CorruptDataError: a file is unreadable or the two files disagree.
  """
  if split not in _FILES:
    raise ValueError(f"Fashion-MNIST split {split!r}; choose one of {sorted(_FILES)}")
  dirs = ([data_dir, os.path.join(data_dir, "fashion-mnist")] if data_dir else [])
  dirs += list(FASHION_MNIST_DIRS)
  directory = _find_split_dir(split, dirs)
  if directory is None:
    raise DataNotFoundError(_not_found_message(split, dirs))
  images, labels = _read_split(os.path.abspath(directory), split)
  return ArraySource(images=images, labels=labels,
                     num_classes=len(FASHION_MNIST_CLASSES), name="fashion_mnist")
