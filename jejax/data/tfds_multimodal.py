"""Real captioned images and speech from TFDS by name, in the layout of `multimodal.py`.

For users with a network: `TfdsCaptionSource` reads an image-caption dataset
(`coco_captions`: images of varying size, about five captions each) and
`TfdsAudioSource` a labelled audio dataset (`spoken_digit`: 8 kHz; `speech_commands`:
16 kHz, 12 classes), both by random access through `tfds.data_source`, and return
batches with the keys the offline sources use ('image', 'text', 'text_mask'; 'audio',
'audio_length', 'label').

TensorFlow: TFDS builds the feature specs of these datasets with TensorFlow dtypes (its
`Audio` feature and COCO's extra fields), so opening them, even prepared, needs
TensorFlow installed (`pip install 'jejax[prepare]'`), unlike the image-classification
datasets of `sources.py`. Without it, the error says so.

Example:
  >>> captions = TfdsCaptionSource('coco_captions', 'train', image_size=64)
  >>> captions.get_batch(np.arange(4))['text'].shape
  (4, 72)
  >>> digits = TfdsAudioSource('spoken_digit', 'train', num_samples=16000)
  >>> digits.get_batch(np.arange(4))['audio'].shape
  (4, 16000)
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from jejax.data import tokenizer
from jejax.data.audio_io import SAMPLE_RATE, mix_down, resample
from jejax.data.errors import DataError, DataNotFoundError
from jejax.data.sources import _open_tfds, resize_and_center_crop


def _open(name: str, split: str, data_dir: str | None):
  """`sources._open_tfds`, with a plain message when TensorFlow is what is missing."""
  try:
    return _open_tfds(name, split, data_dir)
  except DataNotFoundError as e:
    if isinstance(e.__cause__, ModuleNotFoundError) and "tensorflow" in str(e.__cause__):
      raise DataNotFoundError(
          f"TFDS needs TensorFlow to open {name!r}, even prepared (it builds the "
          "dataset's features with TensorFlow dtypes): pip install 'jejax[prepare]'") from e
    raise


def _as_str(text: str | bytes) -> str:
  # Prepared TFDS data returns Text features as bytes; mock data returns str.
  return text.decode("utf-8") if isinstance(text, bytes) else str(text)


class TfdsCaptionSource:
  """(image, caption) pairs of a prepared TFDS dataset with an 'image' Image feature and
  a 'captions' Sequence with a 'text' field (`coco_captions`).

  One caption per image, chosen among the image's captions by a generator seeded by
  (seed, index), so a batch is a pure function of its indices. Images are scaled
  (shorter side) and centre-cropped to `image_size`; captions are byte tokens of
  `text_length`, truncated where longer.
  """

  def __init__(self, name: str = "coco_captions", split: str = "train", *,
               image_size: int = 224, text_length: int = 72, seed: int = 0,
               data_dir: str | None = None):
    self.name, self.image_size, self.text_length, self.seed = name, image_size, text_length, seed
    self._data_source = _open(name, split, data_dir)
    features = self._data_source.dataset_info.features
    if not ("image" in features and "captions" in features
            and "text" in features["captions"].feature):
      raise DataError(
          f"TFDS dataset {name!r} is not an image-caption dataset: it needs an 'image' "
          f"feature and a 'captions' sequence with 'text', it has {features}")

  def __len__(self) -> int:
    return len(self._data_source)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (self.image_size, self.image_size, 3)

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """image (b, s, s, 3) uint8, text (b, text_length) int32, text_mask (b, text_length)
    bool, image_index (b,) int32 (the example's index)."""
    if len(indices) == 0:  # a process's share of the last, padded eval batch
      return {"image": np.zeros((0, *self.image_shape), np.uint8),
              "text": np.zeros((0, self.text_length), np.int32),
              "text_mask": np.zeros((0, self.text_length), bool),
              "image_index": np.zeros((0,), np.int32)}
    images, texts = [], []
    for i in indices:  # one at a time: mock_data's source has no batched access
      example = self._data_source[int(i)]
      image = np.asarray(example["image"], np.uint8)
      images.append(resize_and_center_crop(image, self.image_size))
      options = example["captions"]["text"]
      if len(options) == 0:
        raise DataError(f"{self.name}: example {int(i)} has no captions")
      pick = np.random.default_rng([self.seed, int(i)]).integers(len(options))
      texts.append(_as_str(options[pick]))
    tokens, mask = tokenizer.encode(texts, self.text_length, truncate=True)
    return {"image": np.stack(images),
            "text": tokens, "text_mask": mask,
            "image_index": np.asarray(indices, np.int32)}


class TfdsAudioSource:
  """Labelled audio of a prepared TFDS dataset with an 'audio' Audio feature and a
  'label' ClassLabel (`spoken_digit`, `speech_commands`), as fixed-length 16 kHz mono.

  Integer samples are read as 16-bit PCM (divided by 32768), mixed down, resampled from
  the feature's sample rate (or `sample_rate` where the dataset declares none) to 16 kHz,
  then trimmed at the end or zero-padded to `num_samples`.
  """

  def __init__(self, name: str = "spoken_digit", split: str = "train", *,
               num_samples: int = 48000, sample_rate: int | None = None,
               data_dir: str | None = None):
    self.name, self.num_samples = name, num_samples
    self._data_source = _open(name, split, data_dir)
    features = self._data_source.dataset_info.features
    if not ("audio" in features and isinstance(features["audio"], tfds.features.Audio)
            and "label" in features
            and isinstance(features["label"], tfds.features.ClassLabel)):
      raise DataError(
          f"TFDS dataset {name!r} is not a labelled audio dataset: it needs an 'audio' "
          f"Audio feature and a 'label' ClassLabel feature, it has {features}")
    self.sample_rate = sample_rate or features["audio"].sample_rate
    if not self.sample_rate:
      raise DataError(f"TFDS dataset {name!r} declares no sample rate; pass sample_rate")
    self.num_classes: int = features["label"].num_classes

  def __len__(self) -> int:
    return len(self._data_source)

  def _waveform(self, samples: np.ndarray) -> np.ndarray:
    """One example's samples (T,) or (T, channels) -> (T',) float32 at 16 kHz."""
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.integer):
      samples = samples.astype(np.float32) / 32768.0
    if samples.ndim == 1:
      samples = samples[:, None]
    return resample(mix_down(samples), self.sample_rate, SAMPLE_RATE)

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """audio (b, num_samples) float32 in [-1, 1], audio_length (b,) int32 (samples before
    padding, at most num_samples), label (b,) int32."""
    audio = np.zeros((len(indices), self.num_samples), np.float32)
    lengths = np.zeros(len(indices), np.int32)
    labels = np.zeros(len(indices), np.int32)
    for row, i in enumerate(indices):
      example = self._data_source[int(i)]
      waveform = self._waveform(example["audio"])[:self.num_samples]
      audio[row, :len(waveform)] = waveform
      lengths[row], labels[row] = len(waveform), example["label"]
    return {"audio": audio, "audio_length": lengths, "label": labels}
