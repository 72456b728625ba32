"""Offline Fashion-MNIST: IDX parsing on synthetic files, corrupt files, the real files."""

import gzip
import os

import numpy as np
import pytest

from jejax.data import (
    CorruptDataError,
    DataNotFoundError,
    FASHION_MNIST_CLASSES,
    load_fashion_mnist,
    read_idx,
)

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"


def synthetic(n=7, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
  labels = rng.integers(0, 10, (n,), dtype=np.uint8)
  return images, labels


def test_read_idx_round_trips_gzip_and_plain(tmp_path, idx_encode):
  images, labels = synthetic()
  (tmp_path / "images.gz").write_bytes(gzip.compress(idx_encode(images)))
  (tmp_path / "labels").write_bytes(idx_encode(labels))
  np.testing.assert_array_equal(read_idx(tmp_path / "images.gz"), images)
  np.testing.assert_array_equal(read_idx(tmp_path / "labels"), labels)


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_fashion_mnist_round_trips(tmp_path, no_default_dirs, write_split, split):
  images, labels = synthetic()
  write_split(tmp_path, split, images, labels)
  source = load_fashion_mnist(split, data_dir=str(tmp_path))
  assert source.images.shape == (7, 28, 28, 1) and source.images.dtype == np.uint8
  assert source.labels.dtype == np.int32
  np.testing.assert_array_equal(source.images[..., 0], images)
  np.testing.assert_array_equal(source.labels, labels)
  assert source.num_classes == 10 and source.name == "fashion_mnist"


def test_load_fashion_mnist_searches_fashion_mnist_subfolder(tmp_path, no_default_dirs,
                                                            write_split):
  (tmp_path / "fashion-mnist").mkdir()
  write_split(tmp_path / "fashion-mnist", "test", *synthetic())
  assert len(load_fashion_mnist("test", data_dir=str(tmp_path))) == 7


def test_load_fashion_mnist_is_cached(tmp_path, no_default_dirs, write_split):
  write_split(tmp_path, "train", *synthetic())
  first = load_fashion_mnist("train", data_dir=str(tmp_path))
  second = load_fashion_mnist("train", data_dir=str(tmp_path))
  assert first.images is second.images
  assert not first.images.flags.writeable  # callers cannot corrupt the cache


def _corrupt_cases(idx_encode):
  images, labels = synthetic()
  good_images = gzip.compress(idx_encode(images))
  good_labels = gzip.compress(idx_encode(labels))
  wrong_magic = bytearray(idx_encode(images))
  wrong_magic[2] = 0x0D  # float32 instead of uint8
  return {
      "truncated_gzip": (good_images[: len(good_images) // 2], good_labels, "train-images"),
      "random_bytes": (np.random.default_rng(0).bytes(500), good_labels, "train-images"),
      "wrong_magic": (gzip.compress(bytes(wrong_magic)), good_labels, "train-images"),
      "wrong_length": (gzip.compress(idx_encode(images)[:-5]), good_labels, "train-images"),
      "count_mismatch": (good_images, gzip.compress(idx_encode(labels[:-1])), "train-labels"),
      "label_out_of_range": (good_images, gzip.compress(idx_encode(labels + 10)),
                             "train-labels"),
  }


@pytest.mark.parametrize("case", ["truncated_gzip", "random_bytes", "wrong_magic",
                                  "wrong_length", "count_mismatch", "label_out_of_range"])
def test_corrupt_files_raise_naming_the_file(tmp_path, no_default_dirs, idx_encode, case):
  images_gz, labels_gz, named = _corrupt_cases(idx_encode)[case]
  (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(images_gz)
  (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(labels_gz)
  with pytest.raises(CorruptDataError, match=named):
    load_fashion_mnist("train", data_dir=str(tmp_path))


def test_missing_files_say_how_to_get_them(tmp_path, no_default_dirs):
  with pytest.raises(DataNotFoundError) as info:
    load_fashion_mnist("train", data_dir=str(tmp_path))
  message = str(info.value)
  assert "apt-get install dataset-fashion-mnist" in message
  assert str(tmp_path) in message  # lists what it searched
  assert "JEJAX_DATA_DIR" in message and "tfds build fashion_mnist" in message
  assert isinstance(info.value, FileNotFoundError)


def test_unknown_split():
  with pytest.raises(ValueError, match="validation"):
    load_fashion_mnist("validation")


@pytest.mark.skipif(not os.path.isdir(DEBIAN_DIR),
                    reason=f"{DEBIAN_DIR} absent: apt-get install dataset-fashion-mnist")
def test_real_debian_files():
  train = load_fashion_mnist("train", data_dir=DEBIAN_DIR)
  test = load_fashion_mnist("test", data_dir=DEBIAN_DIR)
  assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
  np.testing.assert_array_equal(np.bincount(train.labels), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(test.labels), [1000] * 10)
  assert train.images.max() == 255 and len(FASHION_MNIST_CLASSES) == 10
