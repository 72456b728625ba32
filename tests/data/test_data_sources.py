"""Sources: array validation, TFDS under mock data, dataset lookup errors."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jejax.data import (
    ArraySource,
    DataError,
    DataNotFoundError,
    ImageShapeError,
    TfdsSource,
    UnknownDatasetError,
    get_source,
    sources,
    validate_image_shape,
)

# tfds.testing.mock_data's default policy (AUTO) falls back to USE_CODE here: it builds
# fake examples from each builder's declared features, and tfds.data_source works under
# it with TensorFlow not installed (tensorflow-datasets 4.9.10).


def array_source(n=5, shape=(4, 4, 1), dtype=np.uint8):
  return ArraySource(images=np.zeros((n, *shape), dtype), labels=np.arange(n, dtype=np.int32),
                     num_classes=n, name="toy")


def test_array_source_batches():
  source = array_source()
  batch = source.get_batch(np.array([4, 0]))
  assert batch["image"].shape == (2, 4, 4, 1) and batch["image"].dtype == np.uint8
  np.testing.assert_array_equal(batch["label"], [4, 0])
  assert len(source) == 5 and source.image_shape == (4, 4, 1)


@pytest.mark.parametrize("kwargs", [
    {"shape": (4, 4, 2)},         # 2 channels
    {"dtype": np.float32},        # floats
    {"shape": (4, 4)},            # no channel axis
])
def test_array_source_rejects_bad_images(kwargs):
  with pytest.raises(ImageShapeError):
    array_source(**kwargs)


def test_array_source_rejects_label_count():
  with pytest.raises(ImageShapeError, match="labels"):
    ArraySource(images=np.zeros((3, 2, 2, 1), np.uint8), labels=np.zeros(2, np.int32),
                num_classes=2, name="toy")


def test_validate_image_shape():
  validate_image_shape((28, 28, 1), (28, 28, 1))
  validate_image_shape((32, 32, 3), None)
  with pytest.raises(ImageShapeError, match=r"\(32, 32, 3\).*\(28, 28, 1\)"):
    validate_image_shape((32, 32, 3), (28, 28, 1))


@pytest.mark.parametrize("name, shape", [("cifar10", (32, 32, 3)), ("mnist", (28, 28, 1))])
def test_tfds_source_under_mock_data(name, shape):
  with tfds.testing.mock_data(num_examples=6):
    source = get_source(name, "train")
    batch = source.get_batch(np.array([5, 0, 3]))
  assert isinstance(source, TfdsSource) and len(source) == 6
  assert source.num_classes == 10 and source.image_shape == shape
  assert batch["image"].shape == (3, *shape) and batch["image"].dtype == np.uint8
  assert batch["label"].shape == (3,) and batch["label"].dtype == np.int32
  assert batch["label"].min() >= 0 and batch["label"].max() < 10


def test_tfds_source_resizes():
  with tfds.testing.mock_data(num_examples=4):
    source = get_source("cifar10", "test", image_size=16)
    batch = source.get_batch(np.arange(4))
  assert batch["image"].shape == (4, 16, 16, 3) and source.image_shape == (16, 16, 3)


def test_tfds_source_images_of_varying_size():
  with tfds.testing.mock_data(num_examples=4):  # mock ImageNet images vary in size
    with pytest.raises(ImageShapeError, match="data.image_size"):
      get_source("imagenet2012", "validation").get_batch(np.arange(4))
    batch = get_source("imagenet2012", "validation", image_size=8).get_batch(np.arange(4))
  assert batch["image"].shape == (4, 8, 8, 3)


def test_tfds_source_rejects_non_classification_dataset():
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(DataError, match="not an image-classification dataset"):
      get_source("voc", "train")  # detection: images, but no 'label'


def test_resize_and_center_crop_keeps_the_centre():
  image = np.zeros((20, 40, 3), np.uint8)
  image[:, 10:30] = 255  # the central 20x20 square
  out = sources.resize_and_center_crop(image, 10)
  assert out.shape == (10, 10, 3)
  assert (out[:, 1:-1] == 255).all()  # the edges blend with the bilinear kernel
  gray = sources.resize_and_center_crop(np.full((9, 6, 1), 7, np.uint8), 4)
  np.testing.assert_array_equal(gray, np.full((4, 4, 1), 7))


def test_unknown_dataset_lists_close_matches():
  with pytest.raises(UnknownDatasetError) as info:
    get_source("cifar_11", "train")
  message = str(info.value)
  assert "cifar10" in message and "fashion_mnist" in message
  assert "Any TFDS image-classification dataset" in message
  assert isinstance(info.value, ValueError)


def test_unprepared_tfds_dataset_says_how_to_prepare(tmp_path, monkeypatch):
  monkeypatch.setattr(sources, "_tensorflow_installed", lambda: False)
  with pytest.raises(DataNotFoundError, match=r"pip install 'jejax\[prepare\]'.*tfds build"):
    get_source("cifar10", "train", data_dir=str(tmp_path))


def test_fashion_mnist_falls_back_to_tfds_then_to_the_offline_error(tmp_path, monkeypatch,
                                                                    no_default_dirs):
  monkeypatch.setattr(sources, "_tensorflow_installed", lambda: False)
  with tfds.testing.mock_data(num_examples=3):  # a "prepared" TFDS copy
    source = get_source("fashion_mnist", "train", data_dir=str(tmp_path))
  assert isinstance(source, TfdsSource) and source.image_shape == (28, 28, 1)
  with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
    get_source("fashion_mnist", "train", data_dir=str(tmp_path))


def test_offline_fashion_mnist_refuses_other_image_size(tmp_path, no_default_dirs,
                                                        write_split):
  write_split(tmp_path, "test", np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8))
  source = get_source("fashion_mnist", "test", data_dir=str(tmp_path), image_size=28)
  assert source.image_shape == (28, 28, 1)
  with pytest.raises(ImageShapeError, match="image_size=32"):
    get_source("fashion_mnist", "test", data_dir=str(tmp_path), image_size=32)
