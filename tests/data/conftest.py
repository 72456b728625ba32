"""Fixtures for the data tests: synthetic Fashion-MNIST IDX files in a temporary folder."""

import gzip

import numpy as np
import pytest

from jejax.data import fashion_mnist


def idx_bytes(array: np.ndarray) -> bytes:
  """The IDX encoding of a uint8 array: magic 0x0000 08 <ndim>, big-endian sizes, values."""
  header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
  return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def idx_encode():
  return idx_bytes


@pytest.fixture
def write_split():
  """write_split(directory, split, images (n, h, w), labels (n,)) writes the split's two
  gzip'd IDX files under their upstream names."""

  def write(directory, split, images, labels):
    prefix = "train" if split == "train" else "t10k"
    (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(images)))
    (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(labels)))

  return write


@pytest.fixture
def no_default_dirs(monkeypatch):
  """Hides an installed Debian copy, so only the folder a test passes is searched."""
  monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_DIRS", ())
