"""Fashion-MNIST with captions and speech, offline: pairs for CLIP / SigLIP and for
ImageBind-style binding of speech to images.

Every image gets a caption that names its class and two of its measured attributes
(`captions.py`), tokenized byte by byte (`tokenizer.py`); some images also get that
caption spoken by espeak-ng in one of 800 voices at a drawn rate and pitch (`speech.py`).

Pairs, as ImageBind trains (Girdhar et al. 2023, arXiv:2305.05665): images bind each
modality, and speech and text never meet in training. The 60,000 train images are split
once, by a seeded permutation, into `SPEECH_POOL` (20,000) images for (image, speech)
pairs and the other 40,000 for (image, text) pairs, so no image is drawn for both; an
alignment of speech with text can only emerge through the images. The test split (the
Fashion-MNIST test images) has text and speech for every image, for retrieval between
any two modalities and speech-text zero-shot evaluation, and its speech uses only the
held-out voices (`speech.HELD_OUT_VOICES`), which no train clip uses.

Sources (`load_multimodal(split, pairs)`) give random access like
`jejax.data.sources.Source`: `len`, `get_batch(indices) -> dict` of numpy arrays:

| key | shape, dtype | sources |
|---|---|---|
| image | (b, 28, 28, 1) uint8 | all |
| label | (b,) int32 | all |
| image_index | (b,) int32, the image's index in its Fashion-MNIST split | all |
| attributes | (b, 5) int32 levels, in `captions.ATTRIBUTES` order | all |
| measurements | (b, 5) float32, the raw measurements behind them | all |
| mentions | (b, 5) bool, the attributes the caption names | all |
| caption_template | (b,) int32 index into `captions.CAPTION_TEMPLATES` | all |
| text | (b, text_length) int32 byte tokens (`tokenizer.py`) | text |
| text_mask | (b, text_length) bool, True on real tokens | text |
| audio | (b, clip samples) float32 in [-1, 1], 16 kHz mono, zero-padded at the end | speech |
| audio_length | (b,) int32, samples of speech in `audio` (the rest is silence) | speech |
| voice | (b,) int32 index into `speech.VOICES` | speech |
| rate, pitch | (b,) int32: espeak-ng words per minute, pitch 0-99 | speech |

A speech clip is `clip_seconds` (3 s) long: a caption spoken slowly may be cut at the
end (the build's `meta.json` reports how often: `speech_cut`).

Zero-shot prompts (`load_class_prompts`): the text prompts of
`captions.ZERO_SHOT_TEMPLATES` for every class, tokenized, and some of them spoken in
held-out voices.

The build (`build`, or `python -m jejax.data.multimodal [--tiny]`, or `make multimodal`)
writes .npy files under `~/.cache/jejax/multimodal/<version>-<config>-<hash>/` (or
`cache_dir`), named by a hash of the config and of the caption and voice tables, and is
deterministic: the same bytes each build (tested on the tiny config). A tiny config
(`TINY`, a few hundred examples) builds in seconds for the tests; its examples are the
first ones of the full build's, since every draw is per image of the whole split. Sizes
and times are in the README.

Example:
  >>> text = load_multimodal('train', 'text')
  >>> speech = load_multimodal('train', 'speech')
  >>> batch = speech.get_batch(np.arange(8))
  >>> batch['audio'].shape, batch['voice'][:3]
  ((8, 48000), array([...], dtype=int32))
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from jejax.data import captions as captions_lib
from jejax.data import speech, tokenizer
from jejax.data.audio_io import SAMPLE_RATE
from jejax.data.errors import DataError
from jejax.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist

# Bump when the files a build writes, or how they are made, change.
FORMAT_VERSION = 1

# Train images set aside for (image, speech) pairs; the others are for (image, text).
SPEECH_POOL = 20_000
_TRAIN_IMAGES, _TEST_IMAGES = 60_000, 10_000

# Independent random streams of a build, seeded by (config.seed, stream).
_STREAMS = {"partition_train": 10, "partition_test": 11, "speech_train": 12,
            "speech_test": 13, "prompts": 14}

# Folders of a build, one per source.
_FOLDERS = {("train", "text"): "train_text", ("train", "speech"): "train_speech",
            ("test", "text"): "test", ("test", "speech"): "test",
            ("test", "text_speech"): "test"}
_TEXT_KEYS = ("text",)
_SPEECH_KEYS = ("audio", "speech_length", "voice", "rate", "pitch")


@dataclasses.dataclass(frozen=True)
class MultimodalConfig:
  """What a build makes. All its fields go into the hash that names the cache folder.

  Attributes:
    name: 'full', 'tiny' or your own, for the folder name and messages.
    speech_train: train images with speech (at most `SPEECH_POOL`).
    text_train: train images with text (at most 60,000 - `SPEECH_POOL`).
    test: test images, with text and speech (at most 10,000).
    prompts_per_class: spoken zero-shot prompts per class (at most
      len(ZERO_SHOT_TEMPLATES); prompt p speaks template p).
    clip_seconds: length of every clip.
    text_length: tokens per caption, begin and end included.
    seed: seeds the partition, captions, voices, rates and pitches.
  """

  name: str
  speech_train: int = SPEECH_POOL
  text_train: int = _TRAIN_IMAGES - SPEECH_POOL
  test: int = _TEST_IMAGES
  prompts_per_class: int = len(captions_lib.ZERO_SHOT_TEMPLATES)
  clip_seconds: float = 3.0
  text_length: int = 72
  seed: int = 0

  def __post_init__(self):
    limits = {"speech_train": SPEECH_POOL, "text_train": _TRAIN_IMAGES - SPEECH_POOL,
              "test": _TEST_IMAGES,
              "prompts_per_class": len(captions_lib.ZERO_SHOT_TEMPLATES)}
    for field, limit in limits.items():
      if not 1 <= getattr(self, field) <= limit:
        raise ValueError(f"MultimodalConfig.{field}={getattr(self, field)}: must lie in "
                         f"[1, {limit}]")
    if self.clip_seconds <= 0:
      raise ValueError(f"MultimodalConfig.clip_seconds={self.clip_seconds} must be > 0")

  @property
  def clip_samples(self) -> int:
    return round(self.clip_seconds * SAMPLE_RATE)


FULL = MultimodalConfig("full")
TINY = MultimodalConfig("tiny", speech_train=128, text_train=256, test=128,
                        prompts_per_class=2)


def default_cache_dir() -> Path:
  """`$XDG_CACHE_HOME/jejax/multimodal`, by default `~/.cache/jejax/multimodal`."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return Path(base) / "jejax" / "multimodal"


def _recipe(config: MultimodalConfig) -> dict:
  """Everything a build's content depends on besides the code and espeak-ng: the config
  and the tables of captions.py and speech.py, so that editing a template or a voice
  list names a new folder rather than reusing a stale build."""
  return {"format_version": FORMAT_VERSION, "config": dataclasses.asdict(config),
          "speech_pool": SPEECH_POOL,
          "foreground_threshold": captions_lib.FOREGROUND_THRESHOLD,
          "class_names": captions_lib.CLASS_NAMES, "words": captions_lib.ATTRIBUTE_WORDS,
          "templates": captions_lib.CAPTION_TEMPLATES,
          "zero_shot_templates": captions_lib.ZERO_SHOT_TEMPLATES,
          "voices": speech.VOICES, "held_out_voices": speech.HELD_OUT_VOICES,
          "rates": speech.RATES, "pitches": speech.PITCHES}


def build_path(config: MultimodalConfig = FULL, cache_dir: str | os.PathLike | None = None
               ) -> Path:
  """The folder a build of `config` lives in: `v<FORMAT_VERSION>-<name>-<hash>`, the
  hash of `_recipe(config)`."""
  recipe = json.dumps(_recipe(config), sort_keys=True)
  digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
  return Path(cache_dir or default_cache_dir()) / f"v{FORMAT_VERSION}-{config.name}-{digest}"


def _rng(config: MultimodalConfig, stream: str) -> np.random.Generator:
  return np.random.default_rng([config.seed, _STREAMS[stream]])


def _speech_settings(config: MultimodalConfig, stream: str, voices: tuple[int, ...],
                     shape: tuple[int, ...]) -> dict[str, np.ndarray]:
  """Voice, rate and pitch drawn for every item of `shape`, from the voice pool."""
  rng = _rng(config, stream)
  return {"voice": rng.choice(np.asarray(voices, np.int32), size=shape),
          "rate": rng.integers(speech.RATES[0], speech.RATES[1] + 1, shape, np.int32),
          "pitch": rng.integers(speech.PITCHES[0], speech.PITCHES[1] + 1, shape, np.int32)}


def partition(config: MultimodalConfig) -> dict[str, tuple[str, np.ndarray]]:
  """Which images each source folder holds: folder -> (Fashion-MNIST split, (n,) int32
  image indices).

  'train_speech' takes the first `speech_train` of the seeded permutation's first
  `SPEECH_POOL` train images, 'train_text' the first `text_train` of the rest, so the two
  never share an image, and a smaller config's images are a prefix of a larger one's.
  'test' takes the first `test` of a permutation of the test images.
  """
  train_order = _rng(config, "partition_train").permutation(_TRAIN_IMAGES).astype(np.int32)
  test_order = _rng(config, "partition_test").permutation(_TEST_IMAGES).astype(np.int32)
  return {
      "train_text": ("train", train_order[SPEECH_POOL:SPEECH_POOL + config.text_train]),
      "train_speech": ("train", train_order[:config.speech_train]),
      "test": ("test", test_order[:config.test]),
  }


def _level_balance(levels: np.ndarray, labels: np.ndarray) -> dict[str, list[list[float]]]:
  """attribute -> [class][level] fraction of the class's images at that level."""
  return {name: [[round(float(np.mean(levels[labels == c, a] == k)), 4)
                  for k in range(len(captions_lib.ATTRIBUTE_LEVELS[name]))]
                 for c in range(len(FASHION_MNIST_CLASSES))]
          for a, name in enumerate(captions_lib.ATTRIBUTES)}


def _write(folder: Path, arrays: dict[str, np.ndarray]) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  for key, value in arrays.items():
    np.save(folder / f"{key}.npy", value, allow_pickle=False)


def _speak_into(folder: Path, texts: list[str], settings: dict[str, np.ndarray],
                config: MultimodalConfig, progress: bool) -> np.ndarray:
  """Speaks `texts` into `folder`/audio.npy, memory-mapped (2 GB for the full train
  split); returns the speech lengths."""
  folder.mkdir(parents=True, exist_ok=True)
  audio = np.lib.format.open_memmap(folder / "audio.npy", mode="w+", dtype=np.int16,
                                    shape=(*settings["voice"].shape, config.clip_samples))
  flat = audio.reshape(-1, config.clip_samples)  # a view: prompts are (C, P, samples)
  _, lengths = speech.speak(
      texts, *(settings[k].ravel() for k in ("voice", "rate", "pitch")),
      num_samples=config.clip_samples, progress=progress, desc=folder.name, out=flat)
  audio.flush()
  return lengths.reshape(settings["voice"].shape)


def _build_into(out: Path, config: MultimodalConfig, data_dir: str | None,
                progress: bool) -> None:
  """Writes every file of a build of `config` into the empty folder `out`."""
  espeak_version = speech.check_espeak()  # fail before minutes of work
  splits = {split: load_fashion_mnist(split, data_dir) for split in ("train", "test")}
  sizes = {split: len(source) for split, source in splits.items()}
  if sizes != {"train": _TRAIN_IMAGES, "test": _TEST_IMAGES}:
    raise DataError(f"Fashion-MNIST has {sizes} images here, not the original "
                    f"{_TRAIN_IMAGES} and {_TEST_IMAGES} the partition is made for")
  measurements = {s: captions_lib.measure_attributes(src.images) for s, src in splits.items()}
  thresholds = captions_lib.fit_thresholds(measurements["train"], splits["train"].labels)

  # Per split, for every image: attributes, caption, tokens, speech settings. A source
  # takes the rows of its images, so an image's draws do not depend on the config's sizes.
  rows, texts, levels = {}, {}, {}
  for split, source in splits.items():
    levels[split] = captions_lib.attribute_levels(measurements[split], source.labels,
                                                  thresholds)
    caption = captions_lib.make_captions(source.labels, levels[split], seed=config.seed,
                                         split=split)
    tokens, _ = tokenizer.encode(caption.captions, config.text_length)
    voices = speech.TRAIN_VOICES if split == "train" else speech.HELD_OUT_VOICES
    texts[split] = caption.captions
    rows[split] = {"measurements": measurements[split].astype(np.float32),
                   "attributes": levels[split].astype(np.int8),
                   "mentions": caption.mentions,
                   "caption_template": caption.template.astype(np.int8),
                   "text": tokens,
                   **_speech_settings(config, f"speech_{split}", voices, (len(source),))}

  folders = partition(config)
  speech_cut = {}
  for folder, (split, image_index) in folders.items():
    spoken = folder != "train_text"
    arrays = {"image_index": image_index}
    for key, value in rows[split].items():
      if (key in _TEXT_KEYS and folder == "train_speech") or (
          key in _SPEECH_KEYS and not spoken):
        continue
      arrays[key] = value[image_index]
    if spoken:
      arrays["speech_length"] = _speak_into(
          out / folder, [texts[split][i] for i in image_index], arrays, config, progress)
      cut = np.mean(arrays["speech_length"] > config.clip_samples)
      speech_cut[folder] = round(float(cut), 4)
    _write(out / folder, arrays)

  # Zero-shot prompts: all templates as text; the first prompts_per_class spoken, each by
  # its own held-out voice (drawn for all templates, so a smaller config is a prefix).
  prompts = captions_lib.class_prompts()
  num_classes, num_templates = len(prompts), len(prompts[0])
  prompt_tokens, _ = tokenizer.encode([p for ps in prompts for p in ps], config.text_length)
  settings = _speech_settings(config, "prompts", speech.HELD_OUT_VOICES,
                              (num_classes, num_templates))
  settings = {k: v[:, :config.prompts_per_class] for k, v in settings.items()}
  prompt_texts = [prompts[c][p] for c in range(num_classes)
                  for p in range(config.prompts_per_class)]
  lengths = _speak_into(out / "prompts", prompt_texts, settings, config, progress)
  _write(out / "prompts", {"text": prompt_tokens.reshape(num_classes, num_templates, -1),
                           "speech_length": lengths, **settings})

  meta = {
      **_recipe(config),
      "espeak_ng": espeak_version,
      "sample_rate": SAMPLE_RATE,
      "thresholds": {k: v.tolist() for k, v in thresholds.items()},
      "attribute_balance": {s: _level_balance(levels[s], splits[s].labels) for s in splits},
      "speech_cut": speech_cut,
      "sizes": {folder: len(image_index) for folder, (_, image_index) in folders.items()},
  }
  (out / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


def build(config: MultimodalConfig = FULL, *, cache_dir: str | os.PathLike | None = None,
          data_dir: str | None = None, progress: bool = True) -> Path:
  """Builds `config`'s data set unless it is already in the cache; returns its folder.

  The files are written to a temporary folder beside the final one and renamed into
  place, so an interrupted build leaves no half-written data set behind and two
  processes building at once both end with one complete copy.

  Args:
    data_dir: where the Fashion-MNIST IDX files are (see `load_fashion_mnist`).
    progress: tqdm bars for the speech.

  Raises:
    DataNotFoundError: Fashion-MNIST or espeak-ng is missing; says how to get it.
  """
  path = build_path(config, cache_dir)
  if (path / "meta.json").is_file():
    return path
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
  shutil.rmtree(partial, ignore_errors=True)
  partial.mkdir()
  try:
    _build_into(partial, config, data_dir, progress)
    try:
      partial.rename(path)
    except OSError:
      if not (path / "meta.json").is_file():  # not another process's complete build
        raise
  finally:
    shutil.rmtree(partial, ignore_errors=True)
  return path


def _load_folder(folder: Path) -> dict[str, np.ndarray]:
  """Every array of a source folder; audio memory-mapped (gigabytes in the full build)."""
  return {p.stem: np.load(p, mmap_mode="r" if p.stem == "audio" else None)
          for p in sorted(folder.glob("*.npy"))}


@dataclasses.dataclass(frozen=True, eq=False)
class MultimodalSource:
  """Random access to one split's (image, text), (image, speech) or (image, text, speech)
  examples; see the module docstring for the keys of a batch.

  Attributes:
    name: e.g. 'fashion_mnist_multimodal/train/text'.
    images: (N, 28, 28, 1) uint8, the Fashion-MNIST split.
    labels: (N,) int32.
    arrays: per example, (n, ...) each; 'image_index' (n,) points into images.
  """

  name: str
  images: np.ndarray
  labels: np.ndarray
  arrays: dict[str, np.ndarray]
  num_classes: int = len(FASHION_MNIST_CLASSES)

  def __len__(self) -> int:
    return len(self.arrays["image_index"])

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """The examples at `indices` (b,), as a dict of numpy arrays (module docstring)."""
    indices = np.asarray(indices)
    rows = {k: v[indices] for k, v in self.arrays.items()}
    image_index = rows.pop("image_index").astype(np.int32)
    batch = {"image": self.images[image_index], "label": self.labels[image_index],
             "image_index": image_index,
             "attributes": rows.pop("attributes").astype(np.int32),
             "measurements": rows.pop("measurements"),
             "mentions": rows.pop("mentions"),
             "caption_template": rows.pop("caption_template").astype(np.int32)}
    if "text" in rows:
      batch["text"] = rows.pop("text")
      batch["text_mask"] = batch["text"] != tokenizer.PAD_ID
    if "audio" in rows:
      audio = rows.pop("audio")
      batch["audio"] = np.asarray(audio, np.float32) / 32768.0
      batch["audio_length"] = np.minimum(rows.pop("speech_length"), audio.shape[-1])
    batch.update(rows)  # voice, rate, pitch
    return batch


def load_multimodal(split: str, pairs: str, *, config: MultimodalConfig = FULL,
                    cache_dir: str | os.PathLike | None = None, data_dir: str | None = None,
                    progress: bool = True) -> MultimodalSource:
  """A source of (image, text), (image, speech) or, for 'test', (image, text, speech).

  Builds the data set first if it is not cached (minutes for `FULL`, seconds for `TINY`).

  Args:
    split: 'train' or 'test'.
    pairs: 'text', 'speech', or 'text_speech' (test only: in training, speech and text
      are never paired, see the module docstring).
    config: `FULL`, `TINY` or your own `MultimodalConfig`.
    data_dir: where the Fashion-MNIST IDX files are.
  """
  if (split, pairs) not in _FOLDERS:
    raise ValueError(
        f"no {pairs!r} pairs in split {split!r}; choose one of "
        f"{', '.join(f'{s}/{p}' for s, p in _FOLDERS)} (train has no text_speech: "
        "speech and text are never paired in training)")
  path = build(config, cache_dir=cache_dir, data_dir=data_dir, progress=progress)
  arrays = _load_folder(path / _FOLDERS[(split, pairs)])
  if not arrays:
    raise DataError(f"{path / _FOLDERS[(split, pairs)]}: no arrays; delete {path} to rebuild")
  drop = {"text": _SPEECH_KEYS, "speech": _TEXT_KEYS, "text_speech": ()}[pairs]
  images = load_fashion_mnist(split, data_dir)
  return MultimodalSource(
      name=f"fashion_mnist_multimodal/{split}/{pairs}", images=images.images,
      labels=images.labels, arrays={k: v for k, v in arrays.items() if k not in drop})


def load_class_prompts(*, config: MultimodalConfig = FULL,
                       cache_dir: str | os.PathLike | None = None,
                       data_dir: str | None = None, progress: bool = True
                       ) -> dict[str, np.ndarray]:
  """Zero-shot class prompts, for C classes, P templates, S of them spoken.

  Returns:
    text: (C, P, text_length) int32 tokens of `captions.class_prompts()`; text_mask.
    audio: (C, S, clip samples) float32, prompt [c, s] speaking text [c, s];
      audio_length, voice, rate, pitch: (C, S) int32, held-out voices only.
  """
  path = build(config, cache_dir=cache_dir, data_dir=data_dir, progress=progress)
  arrays = _load_folder(path / "prompts")
  audio = arrays.pop("audio")
  return {"text": arrays["text"], "text_mask": arrays["text"] != tokenizer.PAD_ID,
          "audio": np.asarray(audio, np.float32) / 32768.0,
          "audio_length": np.minimum(arrays["speech_length"], audio.shape[-1]),
          "voice": arrays["voice"], "rate": arrays["rate"], "pitch": arrays["pitch"]}


def main(argv: list[str] | None = None) -> int:
  """`python -m jejax.data.multimodal [--tiny] [--cache-dir DIR] [--data-dir DIR]`."""
  parser = argparse.ArgumentParser(description=main.__doc__)
  parser.add_argument("--tiny", action="store_true", help="the tiny config of the tests")
  parser.add_argument("--cache-dir", default=None, help=f"default {default_cache_dir()}")
  parser.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST files")
  args = parser.parse_args(argv)
  config = TINY if args.tiny else FULL
  start = time.perf_counter()
  try:
    path = build(config, cache_dir=args.cache_dir, data_dir=args.data_dir)
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
  meta = json.loads((path / "meta.json").read_text())
  print(f"{config.name} multimodal data set in {path}: {size / 2**20:.1f} MiB, "
        f"{time.perf_counter() - start:.1f} s; examples {meta['sizes']}; speech cut at "
        f"{config.clip_seconds} s: {meta['speech_cut']}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
