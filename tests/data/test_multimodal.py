"""The offline image-text-speech set: the tiny build's layout, determinism, held-out
voices, disjoint text and speech images, captions and speech that match their images."""

import dataclasses
import hashlib
import json
import os
import re
import shutil

import numpy as np
import pytest

from jejax.data import DataError, DataNotFoundError, captions, multimodal, speech, tokenizer

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
pytestmark = [
    pytest.mark.skipif(not os.path.isdir(DEBIAN_DIR), reason=f"{DEBIAN_DIR} absent: make data"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng absent: make data"),
]
TINY = multimodal.TINY
CLIP = TINY.clip_samples


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  """A tiny build, shared by the tests of this module (seconds)."""
  cache_dir = tmp_path_factory.mktemp("multimodal")
  multimodal.build(TINY, cache_dir=cache_dir, progress=False)
  return cache_dir


def load(cache, split, pairs):
  return multimodal.load_multimodal(split, pairs, config=TINY, cache_dir=cache, progress=False)


def file_digests(folder):
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob("*")) if p.is_file()}


IMAGE_KEYS = {"image": ((28, 28, 1), np.uint8), "label": ((), np.int32),
              "image_index": ((), np.int32), "attributes": ((5,), np.int32),
              "measurements": ((5,), np.float32), "mentions": ((5,), np.bool_),
              "caption_template": ((), np.int32)}
TEXT_KEYS = {"text": ((TINY.text_length,), np.int32), "text_mask": ((TINY.text_length,), np.bool_)}
SPEECH_KEYS = {"audio": ((CLIP,), np.float32), "audio_length": ((), np.int32),
               "voice": ((), np.int32), "rate": ((), np.int32), "pitch": ((), np.int32)}


@pytest.mark.parametrize("split, pairs, size, keys", [
    ("train", "text", 256, IMAGE_KEYS | TEXT_KEYS),
    ("train", "speech", 128, IMAGE_KEYS | SPEECH_KEYS),
    ("test", "text", 128, IMAGE_KEYS | TEXT_KEYS),
    ("test", "speech", 128, IMAGE_KEYS | SPEECH_KEYS),
    ("test", "text_speech", 128, IMAGE_KEYS | TEXT_KEYS | SPEECH_KEYS),
])
def test_shapes_and_dtypes(cache, split, pairs, size, keys):
  source = load(cache, split, pairs)
  assert len(source) == size and source.image_shape == (28, 28, 1)
  batch = source.get_batch(np.array([3, 0, size - 1]))
  assert set(batch) == set(keys)
  for key, (shape, dtype) in keys.items():
    assert batch[key].shape == (3, *shape) and batch[key].dtype == dtype, key
  assert source.get_batch(np.zeros(0, int))["image"].shape == (0, 28, 28, 1)


def test_train_never_pairs_text_with_speech(cache):
  with pytest.raises(ValueError, match="never paired in training"):
    load(cache, "train", "text_speech")
  text, spoken = (load(cache, "train", p).arrays["image_index"] for p in ("text", "speech"))
  assert not set(text) & set(spoken)
  # The full build's partition too, and the tiny one is its prefix.
  full = multimodal.partition(multimodal.FULL)
  assert not set(full["train_text"][1]) & set(full["train_speech"][1])
  assert len(set(full["train_text"][1]) | set(full["train_speech"][1])) == 60000
  for folder, (_, index) in multimodal.partition(TINY).items():
    np.testing.assert_array_equal(index, full[folder][1][:len(index)])


def test_held_out_voices_only_in_test(cache):
  train_voices = set(load(cache, "train", "speech").arrays["voice"].tolist())
  test_voices = set(load(cache, "test", "speech").arrays["voice"].tolist())
  prompt_voices = set(multimodal.load_class_prompts(
      config=TINY, cache_dir=cache, progress=False)["voice"].ravel().tolist())
  assert train_voices <= set(speech.TRAIN_VOICES) and len(train_voices) > 50
  assert test_voices | prompt_voices <= set(speech.HELD_OUT_VOICES) and len(test_voices) > 50


def test_rebuild_gives_the_same_bytes(cache, tmp_path):
  again = multimodal.build(TINY, cache_dir=tmp_path, progress=False)
  first = multimodal.build_path(TINY, cache)
  assert again.name == first.name
  assert file_digests(again) == file_digests(first)
  # Negative control: another seed is another data set, in another folder.
  other = dataclasses.replace(TINY, seed=1)
  assert multimodal.build_path(other, cache) != first
  assert not np.array_equal(multimodal.partition(other)["test"][1],
                            multimodal.partition(TINY)["test"][1])


def word(text, w):
  return re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text) is not None


def test_captions_describe_their_images(cache):
  source = load(cache, "test", "text_speech")
  batch = source.get_batch(np.arange(len(source)))
  measured = captions.measure_attributes(batch["image"])
  np.testing.assert_allclose(batch["measurements"], measured, rtol=1e-6)
  meta = json.loads((multimodal.build_path(TINY, cache) / "meta.json").read_text())
  thresholds = {k: np.array(v) for k, v in meta["thresholds"].items()}
  np.testing.assert_array_equal(
      batch["attributes"], captions.attribute_levels(measured, batch["label"], thresholds))
  for text, label, levels, mentions in zip(tokenizer.decode(batch["text"]), batch["label"],
                                           batch["attributes"], batch["mentions"]):
    assert word(text, captions.CLASS_NAMES[label]), text
    for a in np.flatnonzero(mentions):
      assert word(text, captions.ATTRIBUTE_WORDS[captions.ATTRIBUTES[a]][levels[a]]), text


def test_speech_lasts_as_long_as_its_caption(cache):
  """Spoken time x rate is about proportional to the caption's length, row by row, which
  a misaligned audio array would break (negative control: shuffled rows)."""
  batch = load(cache, "test", "text_speech").get_batch(np.arange(128))
  chars = batch["text_mask"].sum(1)
  words = batch["audio_length"] * batch["rate"]  # samples x words per minute
  assert np.corrcoef(chars, words)[0, 1] > 0.6
  shuffled = np.random.default_rng(0).permutation(128)
  assert abs(np.corrcoef(chars, words[shuffled])[0, 1]) < 0.3
  assert (batch["audio_length"] > 0.5 * 16000).all()
  assert (batch["audio_length"] <= CLIP).all()
  assert np.abs(batch["audio"]).max() <= 1.0


def test_class_prompts(cache):
  prompts = multimodal.load_class_prompts(config=TINY, cache_dir=cache, progress=False)
  assert prompts["text"].shape == (10, len(captions.ZERO_SHOT_TEMPLATES), TINY.text_length)
  assert prompts["audio"].shape == (10, TINY.prompts_per_class, CLIP)
  assert tokenizer.decode(prompts["text"][9])[0] == "a photo of an ankle boot."
  assert (prompts["audio_length"] > 0.3 * 16000).all()
  for key in ("voice", "rate", "pitch"):
    assert prompts[key].shape == (10, TINY.prompts_per_class)


def test_bad_requests(cache):
  with pytest.raises(ValueError, match="no 'audio' pairs"):
    load(cache, "train", "audio")
  with pytest.raises(ValueError, match="speech_train=20001"):
    multimodal.MultimodalConfig("big", speech_train=20001)


def test_missing_espeak_fails_before_writing(tmp_path, monkeypatch):
  speech.check_espeak.cache_clear()
  monkeypatch.setattr(speech.shutil, "which", lambda name: None)
  try:
    with pytest.raises(DataNotFoundError, match="espeak-ng is not installed"):
      multimodal.build(TINY, cache_dir=tmp_path, progress=False)
  finally:
    speech.check_espeak.cache_clear()
  assert list(tmp_path.iterdir()) == []  # no half-written build left behind


def test_fashion_mnist_of_other_sizes_is_refused(tmp_path, write_split, no_default_dirs):
  for split in ("train", "test"):
    write_split(tmp_path, split, np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.uint8))
  with pytest.raises(DataError, match="not the original 60000 and 10000"):
    multimodal.build(TINY, cache_dir=tmp_path / "cache", data_dir=str(tmp_path),
                     progress=False)
