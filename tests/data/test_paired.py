"""The multimodal training sources by name: the spoken captions remade exactly (checked
on the test split, whose text is stored), the binding source's keys and pairing, and
get_source's names."""

import dataclasses
import os
import shutil

import numpy as np
import pytest

from jejax import data
from jejax.data import multimodal, paired, tokenizer

pytestmark = [
    pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                       reason="Fashion-MNIST absent: make data"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng absent: make data"),
]
TINY = multimodal.TINY


def test_spoken_captions_are_the_captions_the_build_stored():
  # The test split stores each clip's caption; remade from the attributes they agree.
  speech = multimodal.load_multimodal("test", "speech", config=TINY, progress=False)
  text = multimodal.load_multimodal("test", "text", config=TINY, progress=False)
  tokens, _ = tokenizer.encode(paired.spoken_captions(speech, "test", TINY), TINY.text_length)
  np.testing.assert_array_equal(tokens, text.arrays["text"])
  # Negative control: another caption seed is refused.
  other = dataclasses.replace(TINY, seed=1)
  with pytest.raises(data.DataError, match="do not match the build"):
    paired.spoken_captions(speech, "test", other)


def test_binding_source_pairs_text_and_speech_of_disjoint_images():
  source = data.get_source("fashion_mnist_binding", "train", multimodal_build="tiny")
  text = multimodal.load_multimodal("train", "text", config=TINY, progress=False)
  speech = multimodal.load_multimodal("train", "speech", config=TINY, progress=False)
  assert len(source) == len(text) == 256 and len(speech) == 128
  indices = np.array([0, 5, 130, 255])
  batch = source.get_batch(indices)
  want_text, want_speech = text.get_batch(indices), speech.get_batch(indices % 128)
  np.testing.assert_array_equal(batch["image"], want_text["image"])
  np.testing.assert_array_equal(batch["text"], want_text["text"])
  np.testing.assert_array_equal(batch["speech_image"], want_speech["image"])
  np.testing.assert_array_equal(batch["audio"], want_speech["audio"])
  assert batch["speech_text_mask"].shape == batch["speech_text"].shape == (4, 72)
  # What a clip says names its image's class.
  for caption, label in zip(tokenizer.decode(batch["speech_text"]), batch["speech_label"]):
    assert data.captions.CLASS_NAMES[label] in caption
  # The two pools never share an image.
  assert not set(text.arrays["image_index"]) & set(speech.arrays["image_index"])


def test_binding_test_split_is_one_example_in_every_modality():
  source = data.get_source("fashion_mnist_binding", "test", multimodal_build="tiny")
  batch = source.get_batch(np.arange(8))
  np.testing.assert_array_equal(batch["image"], batch["speech_image"])
  np.testing.assert_array_equal(batch["text"], batch["speech_text"])


def test_get_source_names():
  captions = data.get_source("fashion_mnist_captions", "train", multimodal_build="tiny")
  assert len(captions) == 256 and {"image", "label", "text", "text_mask"} <= set(
      captions.get_batch(np.arange(2)))
  with pytest.raises(ValueError, match="multimodal_build='huge'"):
    data.get_source("fashion_mnist_captions", "train", multimodal_build="huge")
  with pytest.raises(ValueError, match="'train' and 'test'"):
    data.get_source("fashion_mnist_binding", "validation", multimodal_build="tiny")
