"""Do DeCUR's unique dimensions hold what the other modality lacks? DeCUR and CLIP, trained
on the same (image, caption) or (image, speech) pairs with embeddings of equal width,
probed linearly.

  python experiments/decur_unique.py                    # runs/decur_unique/{decur,clip}
  python experiments/decur_unique.py --modalities image,audio  # .../{decur,clip}_audio
  # smoke run: the tiny build, tiny towers, 2 steps each
  python experiments/decur_unique.py --workdir /tmp/decur_smoke --probe-train 256 \
      --probe-test 128 --probe-epochs 2 --flag=--config.data.multimodal_build=tiny \
      --flag=--config.model.convnet.widths='(8,16)' --flag=--config.model.text.width=16 \
      --flag=--config.model.text.depth=1 --flag=--config.model.text.num_heads=2 \
      --flag=--config.model.projector_hidden='(32,)' --flag=--config.model.embed_dim=32 \
      --flag=--config.num_steps=2 --flag=--config.batch_size=32 \
      --flag=--config.eval.probe_epochs=1 --flag=--config.eval.probe_random_init=False
  # ... and of speech: add --modalities image,audio --flag=--config.model.audio.size=nano

A caption names its image's class and two of its five measured attributes
(`jejax.data.captions`); the other three are nowhere in the text. Each run is trained by
`jejax.main` with its `experiments/configs/<method>.py` (CLIP's joint space widened to
DeCUR's 512 dimensions) for `--epochs`; then linear probes (`jejax.eval.linear_probe`,
on standardised features, learning rate 1e-2) are fitted on the train captions' embeddings and scored on the
test split for
  - the class;
  - each attribute, on the examples whose caption does not mention it (its levels are
    balanced within each class, so chance is 1/3 or 1/2 and the class alone does not
    give it away),
reading DeCUR's common dimensions (the first K), its unique ones (the other D - K), of the
image and of the caption embedding, and CLIP's whole image and caption embeddings. A
caption embedding cannot know an unmentioned attribute: its column is the control, at
chance. The probes read different numbers of dimensions (K, D - K, D). The table goes to
stdout and <workdir>/results.md.

`--modalities image,audio`: the same on the (image, speech) pairs of
'fashion_mnist_binding' (a clip speaks its image's caption, so it too names two
attributes), and three more probes, of what only the speech holds (`speech_factors`):
the voice's accent (8), and the clip's rate and pitch, each binned into three equal
ranges of the values drawn (`speech.RATES`, `speech.PITCHES`). Not the voice itself:
test clips speak in held-out voice variants (`speech.HELD_OUT_VOICES`) that no train clip
uses, so a probe of voice identity has no test class it was fitted on. Every accent, and
every rate and pitch, is drawn for train and test clips alike, independently of the
image; the pitch setting is relative to the variant's own, so its probe has to carry
over to the test variants. An image embedding cannot know them: those columns are its
control. The CLIP of this comparison is the binding method without its image-text pair
(`imagebind.image_text=False`, every tower trainable, the audio logit scale learnt from
1 / 0.07 as CLIP's), from clip.py's config: jejax's CLIP method pairs images with text
only, and this is CLIP's InfoNCE on the (image, speech) pairs alone, with a linear
projection of each tower into 512 dims (DeCUR: a 512-512 projector each), trained for
the same steps on the same pairs (its unused text tower aside). Table:
<workdir>/results_audio.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jejax import data  # noqa: E402
from jejax.data import captions, speech  # noqa: E402
from jejax.data.paired import BUILDS  # noqa: E402
from jejax.embed_multimodal import load_run  # noqa: E402
from jejax.eval.linear_probe import linear_probe  # noqa: E402

# Per second modality: each run's config file and flags.
RUNS = {
    "text": {"decur": ("decur", []), "clip": ("clip", ["--config.model.embed_dim=512"])},
    "audio": {
        "decur": ("decur", ["--config.decur.modalities=('image', 'audio')",
                            "--config.data.name=fashion_mnist_binding"]),
        "clip": ("clip", ["--config.method=imagebind", "--config.data.name=fashion_mnist_binding",
                          "--config.model.embed_dim=512", "--config.imagebind.image_text=False",
                          "--config.imagebind.learn_audio_temperature=True",
                          "--config.imagebind.audio_temperature=0.07"]),
    },
}
PAIRS = {"text": "text", "audio": "speech"}  # `data.load_multimodal`'s names
PROBE_LEARNING_RATE = 1e-2  # base_config's eval.probe_learning_rate
# What only a speech clip holds: factor -> number of classes (`speech_factors`).
SPEECH_FACTORS = {"accent": len(speech.VOICE_ACCENTS), "rate": 3, "pitch": 3}


def train(config: str, flags: list[str], workdir: Path, epochs: float) -> None:
  """Trains a run of `experiments/configs/<config>.py` with `flags` in a process of its
  own unless `workdir` has a summary.json."""
  if (workdir / "summary.json").exists():
    return
  workdir.mkdir(parents=True, exist_ok=True)
  command = [sys.executable, "-m", "jejax.main",
             f"--config={REPO / 'experiments' / 'configs' / f'{config}.py'}",
             f"--workdir={workdir}", "--config.progress_bar=False",
             f"--config.epochs={epochs}", *flags]
  print(f"[{time.strftime('%H:%M:%S')}] {' '.join(command[1:])}", flush=True)
  with open(workdir / "train.log", "a") as log:
    subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def _bins(values: np.ndarray, bounds: tuple[int, int], bins: int = 3) -> np.ndarray:
  """Integers drawn in [lo, hi] (inclusive) -> (n,) bin of `bins` equal ranges."""
  lo, hi = bounds
  return (np.asarray(values) - lo) * bins // (hi - lo + 1)


def speech_factors(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """What only a clip holds, as (n,) classes shared by train and test clips
  (`SPEECH_FACTORS`): its voice's accent, its rate's and its pitch's third of the
  range drawn (module docstring)."""
  return {"accent": np.asarray(batch["voice"]) // len(speech.VOICE_VARIANTS),
          "rate": _bins(batch["rate"], speech.RATES),
          "pitch": _bins(batch["pitch"], speech.PITCHES)}


def embeddings(workdir: Path, other: str, split: str, count: int, batch_size: int = 500
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int | None]:
  """({'image', other}: (n, D) eval-mode embeddings; the examples' 'label', 'attributes',
  'mentions' and, of speech, `speech_factors`; DeCUR's K, or None for CLIP) of the first
  `count` (image, `other`) pairs of `split` in the run's build."""
  run, embedder, _ = load_run(workdir)
  source = data.load_multimodal(split, PAIRS[other], progress=False,
                                config=BUILDS[run.config.data.multimodal_build])
  count, parts = min(count, len(source)), {}
  for start in range(0, count, batch_size):
    batch = source.get_batch(np.arange(start, min(start + batch_size, count)))
    embedded = {"image": embedder.images(batch["image"]),
                other: (embedder.texts(batch["text"], batch["text_mask"]) if other == "text"
                        else embedder.audio(batch["audio"], batch["audio_length"]))}
    labels = {k: batch[k] for k in ("label", "attributes", "mentions")}
    if other == "audio":
      labels |= speech_factors(batch)
    for key, value in {**embedded, **labels}.items():
      parts.setdefault(key, []).append(value)
  arrays = {k: np.concatenate(v) for k, v in parts.items()}
  return ({k: arrays.pop(k) for k in ("image", other)}, arrays,
          getattr(run.method, "common_dim", None))


def probe_row(train_x, test_x, train_y, test_y, epochs) -> list[float]:
  """Test accuracies: the class, each attribute on the examples whose caption is silent
  on it, then each of `SPEECH_FACTORS` that the examples have."""
  def accuracy(train_labels, test_labels, num_classes, train_rows, test_rows):
    return linear_probe(train_x[train_rows], train_labels[train_rows], test_x[test_rows],
                        test_labels[test_rows], num_classes=num_classes, epochs=epochs,
                        learning_rate=PROBE_LEARNING_RATE)["test_accuracy"]

  every = (np.ones(len(train_x), bool), np.ones(len(test_x), bool))
  row = [accuracy(train_y["label"], test_y["label"], 10, *every)]
  for a, name in enumerate(captions.ATTRIBUTES):
    row.append(accuracy(train_y["attributes"][:, a], test_y["attributes"][:, a],
                        len(captions.ATTRIBUTE_LEVELS[name]), ~train_y["mentions"][:, a],
                        ~test_y["mentions"][:, a]))
  return row + [accuracy(train_y[factor], test_y[factor], k, *every)
                for factor, k in SPEECH_FACTORS.items() if factor in train_y]


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default=str(REPO / "runs" / "decur_unique"))
  parser.add_argument("--modalities", default="image,text", choices=["image,text", "image,audio"],
                      help="the pairs both runs train on and are probed on")
  parser.add_argument("--epochs", type=float, default=2.0)
  parser.add_argument("--probe-train", type=int, default=10_000)
  parser.add_argument("--probe-test", type=int, default=10_000)
  parser.add_argument("--probe-epochs", type=int, default=30)
  parser.add_argument("--flag", action="append", default=[],
                      help="a further --config.* flag for both runs (repeatable)")
  args = parser.parse_args(argv)
  other = args.modalities.split(",")[1]
  suffix = "" if other == "text" else "_audio"  # the image-text runs keep their folders
  root = Path(args.workdir)
  rows = []
  for method, (config, flags) in RUNS[other].items():
    workdir = root / f"{method}{suffix}"
    train(config, [*flags, *args.flag], workdir, args.epochs)
    train_z, train_y, k = embeddings(workdir, other, "train", args.probe_train)
    test_z, test_y, _ = embeddings(workdir, other, "test", args.probe_test)
    parts = ({"all": slice(None)} if k is None
             else {"common": slice(0, k), "unique": slice(k, None)})
    for modality in ("image", other):
      for part, dims in parts.items():
        print(f"[{time.strftime('%H:%M:%S')}] probing {method} {modality} {part}", flush=True)
        width = train_z[modality][:, dims].shape[1]
        rows.append([f"{method} {modality}, {part} ({width} dims)",
                     *probe_row(train_z[modality][:, dims], test_z[modality][:, dims],
                                train_y, test_y, args.probe_epochs)])
  factors = SPEECH_FACTORS if other == "audio" else {}
  header = ["embedding", "class", *(f"{a} (unmentioned)" for a in captions.ATTRIBUTES),
            *(f"{f} (speech only)" for f in factors)]
  chance = ["chance", 0.1, *(1 / len(captions.ATTRIBUTE_LEVELS[a]) for a in captions.ATTRIBUTES),
            *(1 / k for k in factors.values())]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
           *("| " + " | ".join([r[0], *(f"{x:.4f}" for x in r[1:])]) + " |"
             for r in [*rows, chance])]
  table = "\n".join(lines)
  print(table)
  (root / f"results{suffix}.md").write_text(
      f"{args.modalities} pairs, {args.epochs} epochs per run; probes on {args.probe_train} "
      f"train and {args.probe_test} test examples, {args.probe_epochs} epochs.\n\n{table}\n")


if __name__ == "__main__":
  main()
