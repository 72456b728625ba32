"""The multimodal training sources by name (`get_source`), on the offline image-text-speech
set of `multimodal.py`.

- 'fashion_mnist_captions': (image, caption) pairs, for CLIP and SigLIP: the 40,000
  train images with text, and the 10,000 test images.
- 'fashion_mnist_binding': for ImageBind-style binding, every example is an (image,
  caption) pair and an independent (image, speech) pair, under their own keys:

  | key | shape, dtype |
  |---|---|
  | image, label | (b, 28, 28, 1) uint8, (b,) int32: the caption's image (kNN reads it) |
  | text, text_mask | (b, 72) int32 byte tokens, bool |
  | speech_image, speech_label | the spoken caption's image and its class |
  | audio, audio_length | (b, 48000) float32 16 kHz mono, (b,) int32 |
  | speech_text, speech_text_mask | the tokens of the caption the clip speaks |

  On train, example i pairs text example i (of 40,000) with speech example i mod 20,000,
  so an epoch sees every spoken caption twice; the two pairs never share an image
  (`multimodal.partition`). The binding method reads `speech_image` and never
  `speech_text` (tested); the speech-text control reads `speech_text` instead, the one
  difference between the two runs. On test, both pairs are the same test image, its
  caption and its speech in a held-out voice.

The build stores no text for the train speech clips (training never pairs them);
`spoken_captions` remakes those captions from the stored attributes and the caption
generator's seed, exactly: the generator draws per image of the whole split
(`captions.make_captions`), and the template and named attributes it redraws are
checked against the stored ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jejax.data import captions as captions_lib
from jejax.data import tokenizer
from jejax.data.errors import DataError
from jejax.data.multimodal import FULL, TINY, MultimodalConfig, MultimodalSource, load_multimodal

PAIRED_DATASETS = ("fashion_mnist_captions", "fashion_mnist_binding")
BUILDS = {"full": FULL, "tiny": TINY}  # `data.multimodal_build`: the tests use 'tiny'


def spoken_captions(source: MultimodalSource, split: str, config: MultimodalConfig
                    ) -> list[str]:
  """The caption each example of `source` (a speech source of `config`'s build) speaks.

  Raises:
    DataError: the redrawn templates or named attributes differ from the stored ones
      (a build of other code or another seed).
  """
  image_index = np.asarray(source.arrays["image_index"])
  levels = np.zeros((len(source.labels), len(captions_lib.ATTRIBUTES)), np.int32)
  levels[image_index] = source.arrays["attributes"]
  remade = captions_lib.make_captions(source.labels, levels, seed=config.seed, split=split)
  if not (np.array_equal(remade.template[image_index], source.arrays["caption_template"])
          and np.array_equal(remade.mentions[image_index], source.arrays["mentions"])):
    raise DataError(f"{source.name}: the captions remade from seed {config.seed} do not "
                    "match the build's templates and attributes; rebuild the data set")
  return [remade.captions[i] for i in image_index]


@dataclasses.dataclass(frozen=True, eq=False)
class BindingSource:
  """Per example an (image, text) pair and an (image, speech) pair (module docstring).

  Attributes:
    text_pairs: a source with 'text'; its images and labels are the example's.
    speech_pairs: a source with 'audio'; example i takes its example i mod its length.
    speech_text: (len(speech_pairs), L) int32 tokens of what each clip says.
  """
  text_pairs: MultimodalSource
  speech_pairs: MultimodalSource
  speech_text: np.ndarray
  name: str

  @property
  def num_classes(self) -> int:
    return self.text_pairs.num_classes

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self.text_pairs.image_shape

  def __len__(self) -> int:
    return len(self.text_pairs)

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    text = self.text_pairs.get_batch(indices)
    spoken = indices % len(self.speech_pairs)
    speech = self.speech_pairs.get_batch(spoken)
    speech_text = self.speech_text[spoken]
    return {"image": text["image"], "label": text["label"], "text": text["text"],
            "text_mask": text["text_mask"], "speech_image": speech["image"],
            "speech_label": speech["label"], "audio": speech["audio"],
            "audio_length": speech["audio_length"], "speech_text": speech_text,
            "speech_text_mask": speech_text != tokenizer.PAD_ID}


def paired_source(name: str, split: str, *, build: str = "full", data_dir: str | None = None):
  """The `split` ('train' or 'test') of `name` (one of `PAIRED_DATASETS`), from the
  multimodal build `build` ('full' or 'tiny'), built first if it is not cached."""
  if name not in PAIRED_DATASETS:
    raise ValueError(f"unknown paired dataset {name!r}; known: {', '.join(PAIRED_DATASETS)}")
  if build not in BUILDS:
    raise ValueError(f"config.data.multimodal_build={build!r}: one of {sorted(BUILDS)}")
  if split not in ("train", "test"):
    raise ValueError(f"{name} has the splits 'train' and 'test', not {split!r}")
  config = BUILDS[build]
  load = lambda pairs: load_multimodal(split, pairs, config=config,  # noqa: E731
                                       data_dir=data_dir, progress=False)
  if name == "fashion_mnist_captions":
    return load("text")
  if split == "test":
    both = load("text_speech")
    return BindingSource(both, both, np.asarray(both.arrays["text"]),
                         name=f"{name}/test")
  speech = load("speech")
  tokens, _ = tokenizer.encode(spoken_captions(speech, split, config), config.text_length)
  return BindingSource(load("text"), speech, tokens, name=f"{name}/train")
