"""Embed audio files or captions with a trained multimodal run; zero-shot classify them or
retrieve their nearest test examples, as a table.

  python -m jejax.embed_multimodal --workdir runs/multimodal/imagebind \
      --audio-dir clips/ --zero-shot
  python -m jejax.embed_multimodal --workdir runs/multimodal/clip \
      --captions captions.txt --retrieve [--top 5] [--out embeddings.npz]

The run is a CLIP, SigLIP, binding or DeCUR run (its `config.json` and latest checkpoint,
refused if the checkpoint is of another model). Inputs:

- `--audio-dir`: every `.wav` file in the folder (sorted), read as 16 kHz mono
  (`jejax.data.load_audio`: other rates resampled, channels averaged), cut or
  zero-padded to the 3 s the audio tower was trained on. Needs a run with an audio tower
  (binding, or DeCUR on images and speech).
- `--captions`: a text file, one caption per line, byte-tokenized. Needs a text tower.

`--zero-shot` (the default) prints each input's class among the data set's classes, by
CLIP's prompt ensemble (`jejax.eval.multimodal`) over the text prompts, with its cosine
and the runner-up; it needs a text tower for the prompts. `--retrieve` prints the `--top`
nearest test examples of the other modality: test captions for audio (test images for a
run without a text tower), test images (by index and class) for captions.

A DeCUR run's space is not its raw embeddings: its loss aligns only the first K (common)
dimensions across modalities, and only after each modality's dimensions are standardised
over the batch (its cross-correlation is of batch-normalised embeddings), while the unique
dimensions are driven to be uncorrelated across modalities and a per-modality offset or
scale costs nothing. So its cosines are of the common dimensions standardised with each
modality's mean and deviation over the first `STATISTICS_EXAMPLES` train pairs of its
data (`common_space`), as BatchNorm's running statistics stand in for a batch's.

Every input is read and checked before anything is computed or written: a file that is
not audio, an empty caption, or a caption longer than the text tower reads stops the
command with a message naming it; `--out` (embeddings, `.npz`) is written only after
success.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from jejax import config as config_lib
from jejax import errors
from jejax import data
from jejax.data import tokenizer
from jejax.data.errors import DataError
from jejax.data.multimodal import MultimodalConfig
from jejax.data.paired import BUILDS
from jejax.embed import restore_checkpoint
from jejax.eval import multimodal
from jejax.eval.distances import cosine_similarity
from jejax.methods import METHODS
from jejax.methods.decur import DeCUR
from jejax.methods.multimodal import TowerMethod, images_to_float, spectrogram_inputs
from jejax.train.run import Run
from jejax.types import PyTree


class BadInputError(DataError):
  """A captions file or audio folder given on the command line cannot be used."""
  hint = "fix that input and run the command again; nothing was computed or written"


class NotAMultimodalRunError(errors.JejaxError, ValueError):
  """--workdir is not a run of a multimodal method (or not a jejax run), or its model has
  no tower for what is asked."""
  hint = "give --workdir the workdir of a clip, siglip, imagebind or decur run"


MULTIMODAL_METHODS = (TowerMethod, DeCUR)
# Train pairs whose embeddings give a DeCUR run's standardisation (`common_space`).
STATISTICS_EXAMPLES = 1000


@dataclasses.dataclass(frozen=True)
class Embedder:
  """A trained multimodal model's embeddings of images, texts and audio, in batches of
  `batch_size` (the last one zero-padded, so each modality compiles once).

  Attributes:
    method: the run's method (its `model` is a `MultimodalModel` or a `DecurModel`).
    variables: {'params': ..., 'batch_stats': ...} of the trained state.
    standardise: None, or DeCUR's common space: modality -> (mean, deviation), each
      (K,), and every embedding is its first K dimensions, standardised so
      (`common_space`).
  """
  method: TowerMethod | DeCUR
  variables: PyTree
  batch_size: int = 500
  standardise: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

  @functools.cached_property
  def _image(self) -> Callable:
    return jax.jit(lambda v, x: self.method.model.apply(v, images_to_float(x),
                                                        method="embed_image"))

  @functools.cached_property
  def _text(self) -> Callable:
    return jax.jit(lambda v, t, m: self.method.model.apply(v, t, m, method="embed_text"))

  @functools.cached_property
  def _audio(self) -> Callable:
    def embed(v, waveforms, lengths):
      inputs = spectrogram_inputs(waveforms, lengths)
      return self.method.model.apply(v, inputs["audio"], inputs["audio_valid"],
                                     method="embed_audio")
    return jax.jit(embed)

  def _tower(self, modality: str) -> None:
    """Raises NotAMultimodalRunError if the model has no tower for `modality`."""
    if getattr(self.method.model, f"{modality}_tower") is None:
      raise NotAMultimodalRunError(f"this {self.method.name} run has no {modality} tower")

  def _space(self, modality: str, z: np.ndarray) -> np.ndarray:
    if self.standardise is None:
      return z
    mean, deviation = self.standardise[modality]
    return (z[:, :len(mean)] - mean) / deviation

  def _batched(self, fn: Callable, *arrays: np.ndarray) -> np.ndarray:
    n = len(arrays[0])
    out = []
    for start in range(0, n, self.batch_size):
      chunk = [a[start:start + self.batch_size] for a in arrays]
      pad = self.batch_size - len(chunk[0])
      chunk = [np.concatenate([c, np.zeros((pad, *c.shape[1:]), c.dtype)]) for c in chunk]
      out.append(np.asarray(fn(self.variables, *chunk))[:self.batch_size - pad])
    return np.concatenate(out)

  def images(self, images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, D) float32 embeddings ((N, K) in a common space)."""
    return self._space("image", self._batched(self._image, np.asarray(images, np.uint8)))

  def texts(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, L) int32 tokens and bool mask -> (N, D) ((N, K) in a common space)."""
    self._tower("text")
    return self._space("text", self._batched(self._text, np.asarray(tokens, np.int32),
                                             np.asarray(mask, bool)))

  def audio(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N, T) float32 16 kHz waveforms and (N,) lengths of their sound -> (N, D) ((N, K)
    in a common space)."""
    self._tower("audio")
    return self._space("audio", self._batched(self._audio, np.asarray(waveforms, np.float32),
                                              np.asarray(lengths, np.int32)))


def common_space(embedder: Embedder, build: MultimodalConfig,
                 count: int = STATISTICS_EXAMPLES, eps: float = 1e-5) -> Embedder:
  """A DeCUR run's embedder in its common space (module docstring): the mean and
  deviation (sqrt(var + eps), as the loss's standardisation) of each modality's first K
  dimensions over the first `count` train pairs of the run's modalities in `build`."""
  method = embedder.method
  pairs = {"text": "text", "audio": "speech"}[method.other]
  source = data.load_multimodal("train", pairs, config=build, progress=False)
  batch = source.get_batch(np.arange(min(count, len(source))))
  other = (embedder.texts(batch["text"], batch["text_mask"]) if method.other == "text"
           else embedder.audio(batch["audio"], batch["audio_length"]))
  k = method.common_dim
  statistics = {name: (z[:, :k].mean(0), np.sqrt(z[:, :k].var(0) + eps))
                for name, z in (("image", embedder.images(batch["image"])),
                                (method.other, other))}
  return dataclasses.replace(embedder, standardise=statistics)


def read_config(workdir: str | os.PathLike, config_path: str | os.PathLike | None = None
                ) -> ml_collections.ConfigDict:
  """The validated config of the run in `workdir` (or `config_path`), for one device.

  Raises:
    NotAMultimodalRunError: no config, or the run is not a multimodal one.
    ConfigError: the config is invalid.
  """
  path = Path(config_path or Path(workdir) / "config.json")
  if not path.is_file():
    raise NotAMultimodalRunError(f"{path}: no config.json; is {workdir} a jejax run?")
  c = config_lib.load(path)
  c.num_devices = 1  # embedding runs on one device, whatever the run trained on
  if not issubclass(METHODS.get(c.method).value, MULTIMODAL_METHODS):
    raise NotAMultimodalRunError(f"{workdir} is a {c.method} run; embedding audio or "
                                 "captions needs a clip, siglip, imagebind or decur run")
  return config_lib.validate(c)


def load_run(workdir: str | os.PathLike, c: ml_collections.ConfigDict | None = None
             ) -> tuple[Run, Embedder, int]:
  """(run, its embedder, checkpoint step) of the multimodal run in `workdir`, with its
  config (`read_config`'s by default).

  Raises:
    FileNotFoundError: no config or checkpoint.
    CheckpointMismatchError: the checkpoint holds another model than the config's.
  """
  run = Run(c or read_config(workdir), workdir)
  state, step = restore_checkpoint(run, Path(workdir) / "checkpoints")
  state = jax.device_get(state)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  return run, Embedder(run.method, variables), step


def read_captions(path: str | os.PathLike, context_length: int, max_length: int
                  ) -> tuple[list[str], np.ndarray, np.ndarray]:
  """The captions of a text file (one per line, blank lines refused), and their (N,
  max_length) tokens and mask.

  Raises:
    BadInputError: naming the file and line of an empty caption or of one longer than the
      `context_length` tokens the text tower reads, or a file with no captions.
  """
  path = Path(path)
  if not path.is_file():
    raise BadInputError(f"{path}: no such captions file")
  try:
    lines = path.read_text(encoding="utf-8").splitlines()
  except UnicodeDecodeError as e:
    raise BadInputError(f"{path}: not a UTF-8 text file ({e})") from e
  captions = [line.strip() for line in lines]
  for number, caption in enumerate(captions, start=1):
    if not caption:
      raise BadInputError(f"{path}, line {number}: empty caption")
    size = len(caption.encode("utf-8")) + 2  # begin and end
    if size > min(context_length, max_length):
      raise BadInputError(f"{path}, line {number}: caption of {size} tokens with begin and "
                      f"end, more than the {min(context_length, max_length)} the text "
                      f"tower reads: {caption[:60]!r}")
  if not captions:
    raise BadInputError(f"{path}: no captions (one per line)")
  tokens, mask = tokenizer.encode(captions, max_length)
  return captions, tokens, mask


def read_audio_dir(folder: str | os.PathLike, num_samples: int
                   ) -> tuple[list[Path], np.ndarray, np.ndarray]:
  """The `.wav` files of `folder` (sorted) as (N, num_samples) float32 16 kHz mono, cut or
  zero-padded at the end, and their (N,) lengths of sound. Raises DataError naming a file
  that is not audio, or the folder if it holds no `.wav` file."""
  folder = Path(folder)
  if not folder.is_dir():
    raise BadInputError(f"{folder}: no such folder")
  paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav")
  if not paths:
    raise BadInputError(f"{folder}: no .wav files")
  waveforms = np.zeros((len(paths), num_samples), np.float32)
  lengths = np.zeros(len(paths), np.int32)
  for i, path in enumerate(paths):
    waveform = data.load_audio(path)  # CorruptDataError names the file
    if len(waveform) == 0:
      raise BadInputError(f"{path}: no samples")
    lengths[i] = min(len(waveform), num_samples)
    waveforms[i, :lengths[i]] = waveform[:num_samples]
  return paths, waveforms, lengths


def evaluate(embedder: Embedder, build: MultimodalConfig, ks: tuple[int, ...] = (1, 5, 10)
             ) -> dict[str, float]:
  """`jejax.eval.multimodal.evaluate` of a run's embedder on the test split of `build`."""
  audio = embedder.method.model.audio_tower is not None
  return multimodal.evaluate(
      embedder, data.load_multimodal("test", "text_speech", config=build, progress=False),
      data.load_class_prompts(config=build, progress=False), audio=audio, ks=ks)


def format_table(header: list[str], rows: list[list[Any]]) -> str:
  """A plain-text table, columns padded to their widest cell."""
  cells = [header] + [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
                      for row in rows]
  widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
  lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
  return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def class_names() -> list[str]:
  return list(data.captions.CLASS_NAMES)


def zero_shot_rows(names: list[str], queries: np.ndarray, classes: np.ndarray
                   ) -> list[list[Any]]:
  """One row per query: name, best class and its cosine, runner-up and its cosine."""
  scores = np.asarray(jax.device_get(_cosines(queries, classes)))
  order = np.argsort(-scores, axis=1, kind="stable")
  labels = class_names()
  return [[name, labels[o[0]], float(s[o[0]]), labels[o[1]], float(s[o[1]])]
          for name, s, o in zip(names, scores, order)]


_cosines = jax.jit(cosine_similarity)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True,
                      help="a clip, siglip, imagebind or decur run")
  parser.add_argument("--config", help="config file or config.json; default: the run's")
  inputs = parser.add_mutually_exclusive_group(required=True)
  inputs.add_argument("--audio-dir", help="a folder of .wav files")
  inputs.add_argument("--captions", help="a text file, one caption per line")
  task = parser.add_mutually_exclusive_group()
  task.add_argument("--zero-shot", action="store_true", help="classify (the default)")
  task.add_argument("--retrieve", action="store_true",
                    help="nearest test examples of the other modality")
  parser.add_argument("--top", type=int, default=5, help="neighbours shown by --retrieve")
  parser.add_argument("--out", help="write the inputs' embeddings to this .npz")
  args = parser.parse_args(argv)
  if args.out is not None and not args.out.endswith(".npz"):
    parser.error(f"--out {args.out}: give a .npz file name")
  try:
    return _run(args)
  except errors.JejaxError as error:
    errors.exit_with(error)


def _run(args: argparse.Namespace) -> int:
  c = read_config(args.workdir, args.config)
  build = BUILDS[c.data.multimodal_build]
  modalities = METHODS.get(c.method).value.modalities(c)
  # Read and check every input before the run is built.
  needs = "audio" if args.audio_dir is not None else "text"
  if needs not in modalities:
    option = "--audio-dir" if needs == "audio" else "--captions"
    raise NotAMultimodalRunError(f"{args.workdir} is a {c.method} run of "
                                 f"{', '.join(modalities)}: no {needs} tower for {option}")
  if not args.retrieve and "text" not in modalities:
    raise NotAMultimodalRunError(f"{args.workdir} is a {c.method} run of "
                                 f"{', '.join(modalities)}: no text tower to embed the "
                                 "class prompts of --zero-shot; use --retrieve")
  if args.audio_dir is not None:
    paths, waveforms, lengths = read_audio_dir(args.audio_dir, build.clip_samples)
    names = [p.name for p in paths]
  else:
    names, tokens, mask = read_captions(args.captions, c.model.text.context_length,
                                        build.text_length)
  run, embedder, step = load_run(args.workdir, c)
  if isinstance(run.method, DeCUR):
    embedder = common_space(embedder, build)
  if args.audio_dir is not None:
    queries = embedder.audio(waveforms, lengths)
  else:
    queries = embedder.texts(tokens, mask)
  print(f"{c.method} run {args.workdir}, checkpoint step {step}: {len(names)} "
        f"{'audio files' if args.audio_dir else 'captions'}")
  if args.retrieve:
    test = data.load_multimodal("test", "text" if "text" in modalities else "speech",
                                config=build, progress=False)
    print(_retrieval_table(args, embedder, test, names, queries))
  else:
    classes = multimodal.prompt_classes(embedder, data.load_class_prompts(config=build,
                                                                          progress=False))
    rows = zero_shot_rows(names, queries, classes)
    print(format_table(["input", "class", "cosine", "runner-up", "cosine"], rows))
  if args.out is not None:
    np.savez(args.out, embeddings=queries, names=np.asarray(names), step=step)
    print(f"wrote {args.out}")
  return 0


def _retrieval_table(args: argparse.Namespace, embedder: Embedder,
                     test: data.MultimodalSource, names: list[str], queries: np.ndarray
                     ) -> str:
  """The `--top` nearest test captions (for audio, if `test` has them) or test images."""
  batch = test.get_batch(np.arange(len(test)))
  labels = class_names()
  if args.audio_dir is not None and "text" in batch:
    gallery = embedder.texts(batch["text"], batch["text_mask"])
    describe = tokenizer.decode(batch["text"])
  else:
    gallery = embedder.images(batch["image"])
    describe = [f"test image {i} ({labels[y]})" for i, y in
                zip(batch["image_index"], batch["label"])]
  scores = np.asarray(_cosines(queries, gallery))
  top = np.argsort(-scores, axis=1, kind="stable")[:, :args.top]
  rows = [[name, rank + 1, describe[j], float(scores[q, j])]
          for q, name in enumerate(names) for rank, j in enumerate(top[q])]
  return format_table(["input", "rank", "nearest test example", "cosine"], rows)


if __name__ == "__main__":
  sys.exit(main())
