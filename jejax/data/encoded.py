"""Encoded images (JPEG, PNG, ...) with labels in array_record files, decoded when read.

ImageNet-style datasets are stored encoded, and decoding them is the slow part of the
host pipeline; `train_batches(..., workers=N)` runs it in N processes. A record is the
label as 4 bytes (little-endian int32) followed by the encoded image, in files written
with `group_size:1` so that any record is read without its neighbours.
`write_encoded_images` writes such a file; `EncodedSource` reads one or more of them by
index through grain's `ArrayRecordDataSource` (which opens its files again in each
worker process) and decodes with PIL: converted to RGB (or grayscale), the shorter side
scaled to `image_size` and the centre square cropped, as `TfdsSource` does. A batch is
therefore uint8 (b, s, s, c) like every other source's, and the on-device augmentation
is unchanged.

Example:
  >>> write_encoded_images('train.array_record', jpeg_bytes, labels)
  >>> source = EncodedSource('train.array_record', num_classes=1000, image_size=224)
  >>> source.get_batch(np.array([3, 1]))['image'].shape
  (2, 224, 224, 3)
"""

from __future__ import annotations

import bisect
import io
import os
import struct
from collections.abc import Iterable, Sequence

import grain
import numpy as np
from array_record.python import array_record_module
from PIL import Image

from jejax.data.errors import CorruptDataError, DataNotFoundError
from jejax.data.sources import Batch, resize_and_center_crop

# Every record is its own group: grain reads single records, and a larger group would
# make each read decompress its neighbours. Encoded images do not compress further.
_WRITER_OPTIONS = "group_size:1,uncompressed"
_LABEL = struct.Struct("<i")


def write_encoded_images(path: str | os.PathLike, images: Iterable[bytes],
                         labels: Iterable[int]) -> int:
  """Writes encoded images and their labels, in order, as the records of one
  array_record file at `path`; returns how many it wrote."""
  writer = array_record_module.ArrayRecordWriter(os.fspath(path), _WRITER_OPTIONS)
  count = 0
  try:
    for image, label in zip(images, labels, strict=True):
      writer.write(_LABEL.pack(int(label)) + image)
      count += 1
  finally:
    writer.close()
  return count


def _num_records(path: str) -> int:
  """Records in the array_record file at `path`, failing with jejax's errors."""
  if not os.path.isfile(path):
    raise DataNotFoundError(f"{path}: no such file")
  reader = array_record_module.ArrayRecordReader(path)
  # The reader does not raise on a file it cannot parse: ok() turns False, and close()
  # raises the reason.
  ok, count = reader.ok(), reader.num_records()
  try:
    reader.close()
  except RuntimeError as e:
    raise CorruptDataError(f"{path}: not an array_record file: {e}") from e
  if not ok:
    raise CorruptDataError(f"{path}: not an array_record file")
  return count


class EncodedSource:
  """Encoded images and labels in array_record files, decoded and resized by index.

  Attributes:
    paths: the files, whose records are numbered on from one file to the next.
    num_classes: labels lie in [0, num_classes).
    image_size: every image's shorter side is scaled to it and the centre cropped, so
      images of any size stack into (b, image_size, image_size, channels).
    channels: 3 (RGB) or 1 (grayscale); images are converted to it.
    name: for messages and logs; the first file's name by default.
  """

  def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], *,
               num_classes: int, image_size: int, channels: int = 3,
               name: str | None = None):
    if channels not in (1, 3):
      raise ValueError(f"channels must be 1 or 3, got {channels}")
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else paths
    self.paths = [os.fspath(p) for p in paths]
    if not self.paths:
      raise ValueError("EncodedSource needs at least one file")
    self.num_classes = num_classes
    self.image_size = image_size
    self.channels = channels
    self.name = name or os.path.basename(self.paths[0])
    # Where each file's records end in the numbering, to name a bad record's file.
    self._ends = np.cumsum([_num_records(p) for p in self.paths]).tolist()
    self._records = grain.sources.ArrayRecordDataSource(self.paths)

  def __len__(self) -> int:
    return self._ends[-1]

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(h, w, c) of every image in a batch."""
    return (self.image_size, self.image_size, self.channels)

  def _where(self, index: int) -> str:
    """'file, record k' of global record `index`, for error messages."""
    file = bisect.bisect_right(self._ends, index)
    start = self._ends[file - 1] if file else 0
    return f"{self.paths[file]}, record {index - start}"

  def _example(self, record: bytes, index: int) -> tuple[np.ndarray, int]:
    """One record -> image (s, s, c) uint8, label; a record that does not decode raises
    `CorruptDataError` naming its file and its position there."""
    try:
      if len(record) < _LABEL.size:
        raise ValueError(f"{len(record)} bytes, fewer than a label's {_LABEL.size}")
      (label,) = _LABEL.unpack_from(record)
      if not 0 <= label < self.num_classes:
        raise ValueError(f"label {label} outside [0, {self.num_classes})")
      with Image.open(io.BytesIO(record[_LABEL.size:])) as image:
        # convert() decodes; ImageNet holds some grayscale and CMYK JPEGs among the RGB.
        pixels = np.asarray(image.convert("RGB" if self.channels == 3 else "L"))
    except Image.UnidentifiedImageError as e:  # its message names an object address
      raise CorruptDataError(
          f"{self._where(index)}: not a labelled image: no image format PIL reads starts "
          f"with its bytes {record[_LABEL.size:_LABEL.size + 8]!r}") from e
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for bad image data
      raise CorruptDataError(f"{self._where(index)}: not a labelled image: "
                             f"{type(e).__name__}: {e}") from e
    pixels = pixels.reshape(*pixels.shape[:2], self.channels)
    return resize_and_center_crop(pixels, self.image_size), label

  def get_batch(self, indices: np.ndarray) -> Batch:
    """The examples at `indices` (b,): image (b, s, s, c) uint8, label (b,) int32."""
    indices = [int(i) for i in indices]
    if not indices:
      # A process's share of the last, padded eval batch can be empty.
      return {"image": np.zeros((0, *self.image_shape), np.uint8),
              "label": np.zeros((0,), np.int32)}
    # __getitems__ is the data source's batched read: one call per file for the batch.
    records = self._records.__getitems__(indices)
    images, labels = zip(*(self._example(r, i) for r, i in zip(records, indices)))
    return {"image": np.stack(images), "label": np.asarray(labels, np.int32)}
