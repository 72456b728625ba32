"""coco_captions, spoken_digit and speech_commands through tfds.data_source under
tfds.testing.mock_data, in the offline sources' layout.

TFDS constructs these builders' features with two TensorFlow names (COCO's `tf.int64`
field spec, the Audio feature's `tf.dtypes.as_dtype`); mock_data then makes numpy
examples from the declared features and never calls TensorFlow again. Without
TensorFlow installed, the `tensorflow_stand_in` fixture replaces those two module
globals of TFDS for one test (monkeypatch restores them), so the test reaches our code;
`test_without_tensorflow_the_error_says_to_install_it` checks what a user sees instead.
"""

import importlib.util
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.features import audio_feature
from tensorflow_datasets.object_detection import coco

from jejax.data import DataError, DataNotFoundError, sources, tokenizer
from jejax.data.tfds_multimodal import TfdsAudioSource, TfdsCaptionSource


@pytest.fixture
def tensorflow_stand_in(monkeypatch):
  if importlib.util.find_spec("tensorflow") is None:
    monkeypatch.setattr(audio_feature, "tf", types.SimpleNamespace(
        dtypes=types.SimpleNamespace(as_dtype=np.dtype)))
    monkeypatch.setattr(coco, "tf", types.SimpleNamespace(int64=np.int64))


def test_coco_captions(tensorflow_stand_in):
  with tfds.testing.mock_data(num_examples=5):
    source = TfdsCaptionSource("coco_captions", "train", image_size=16, text_length=24)
    batch = source.get_batch(np.array([4, 1, 4]))
    examples = [source._data_source[i] for i in (4, 1)]
  assert len(source) == 5 and source.image_shape == (16, 16, 3)
  assert batch["image"].shape == (3, 16, 16, 3) and batch["image"].dtype == np.uint8
  assert batch["text"].shape == batch["text_mask"].shape == (3, 24)
  np.testing.assert_array_equal(batch["image_index"], [4, 1, 4])
  texts = tokenizer.decode(batch["text"])
  for text, example in zip(texts, examples):
    # Mock captions are 10-19 characters; 22 bytes fit, so none is truncated here.
    assert text in [str(t) for t in example["captions"]["text"]]
  assert texts[0] == texts[2]  # the pick is a function of (seed, index)


@pytest.mark.parametrize("name, rate, classes", [("spoken_digit", 8000, 10),
                                                 ("speech_commands", 16000, 12)])
def test_audio_datasets(tensorflow_stand_in, name, rate, classes):
  with tfds.testing.mock_data(num_examples=4):
    source = TfdsAudioSource(name, "train", num_samples=64)
    batch = source.get_batch(np.arange(4))
    raw = [np.asarray(source._data_source[i]["audio"]) for i in range(4)]
  assert source.sample_rate == rate and source.num_classes == classes and len(source) == 4
  assert batch["audio"].shape == (4, 64) and batch["audio"].dtype == np.float32
  assert batch["label"].dtype == np.int32 and (batch["label"] < classes).all()
  for row, samples in enumerate(raw):  # mock clips have 5-49 samples
    length = min(64, -(-len(samples) * 16000 // rate))  # resampled, then trimmed
    assert batch["audio_length"][row] == length
    assert (batch["audio"][row, length:] == 0).all()
    if rate == 16000:  # no resampling: the 16-bit samples themselves
      np.testing.assert_allclose(batch["audio"][row, :length], samples / 32768, rtol=1e-6)


def test_not_an_audio_or_caption_dataset(tensorflow_stand_in):
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(DataError, match="not a labelled audio dataset"):
      TfdsAudioSource("mnist", "train")
    with pytest.raises(DataError, match="not an image-caption dataset"):
      TfdsCaptionSource("mnist", "train")


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="TensorFlow is installed")
def test_without_tensorflow_the_error_says_to_install_it(monkeypatch):
  monkeypatch.setattr(sources, "_tensorflow_installed", lambda: False)
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(DataNotFoundError,
                       match=r"needs TensorFlow to open 'spoken_digit'.*jejax\[prepare\]"):
      TfdsAudioSource("spoken_digit", "train")
