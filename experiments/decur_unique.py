"""Do DeCUR's unique dimensions hold what the other modality lacks? DeCUR and CLIP, trained
on the same (image, caption) pairs with embeddings of equal width, probed linearly.

  python experiments/decur_unique.py                    # runs/decur_unique/{decur,clip}
  # smoke run: the tiny build, tiny towers, 2 steps each
  python experiments/decur_unique.py --workdir /tmp/decur_smoke --probe-train 256 \
      --probe-test 128 --probe-epochs 2 --flag=--config.data.multimodal_build=tiny \
      --flag=--config.model.convnet.widths='(8,16)' --flag=--config.model.text.width=16 \
      --flag=--config.model.text.depth=1 --flag=--config.model.text.num_heads=2 \
      --flag=--config.model.projector_hidden='(32,)' --flag=--config.model.embed_dim=32 \
      --flag=--config.num_steps=2 --flag=--config.batch_size=32 \
      --flag=--config.eval.probe_epochs=1 --flag=--config.eval.probe_random_init=False

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
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jejax import config as config_lib  # noqa: E402
from jejax.data import captions  # noqa: E402
from jejax.embed import restore_checkpoint  # noqa: E402
from jejax.eval.linear_probe import linear_probe  # noqa: E402
from jejax.train.run import Run  # noqa: E402

RUNS = {"decur": [], "clip": ["--config.model.embed_dim=512"]}
PROBE_LEARNING_RATE = 1e-2  # base_config's eval.probe_learning_rate


def train(method: str, workdir: Path, epochs: float, flags: list[str]) -> None:
  """Trains the run in a process of its own unless it has a summary.json."""
  if (workdir / "summary.json").exists():
    return
  workdir.mkdir(parents=True, exist_ok=True)
  command = [sys.executable, "-m", "jejax.main",
             f"--config={REPO / 'experiments' / 'configs' / f'{method}.py'}",
             f"--workdir={workdir}", "--config.progress_bar=False",
             f"--config.epochs={epochs}", *RUNS[method], *flags]
  print(f"[{time.strftime('%H:%M:%S')}] {' '.join(command[1:])}", flush=True)
  with open(workdir / "train.log", "a") as log:
    subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def embeddings(workdir: Path, split: str, count: int, batch_size: int = 500
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], Run]:
  """({'image', 'text'}: (n, D) eval-mode embeddings, the examples' labels and
  attributes, the run) of the first `count` examples of `split`."""
  c = config_lib.load(workdir / "config.json")
  c.num_devices = 1
  run = Run(config_lib.validate(c), workdir)
  state, _ = restore_checkpoint(run, workdir / "checkpoints")
  variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  model = run.method.model
  image = jax.jit(lambda v, x: model.apply(v, x / 255.0, method="embed_image"))
  text = jax.jit(lambda v, t, m: model.apply(v, t, m, method="embed_text"))
  source = run.train_source if split == "train" else run.test_source
  count = min(count, len(source))
  parts = {"image": [], "text": [], "label": [], "attributes": [], "mentions": []}
  for start in range(0, count, batch_size):
    batch = source.get_batch(np.arange(start, min(start + batch_size, count)))
    parts["image"].append(np.asarray(image(variables, np.float32(batch["image"]))))
    parts["text"].append(np.asarray(text(variables, batch["text"], batch["text_mask"])))
    for key in ("label", "attributes", "mentions"):
      parts[key].append(batch[key])
  arrays = {k: np.concatenate(v) for k, v in parts.items()}
  return ({k: arrays[k] for k in ("image", "text")},
          {k: arrays[k] for k in ("label", "attributes", "mentions")}, run)


def probe_row(train_x, test_x, train_y, test_y, epochs) -> list[float]:
  """Test accuracies: the class, then each attribute where the caption is silent on it."""
  row = [linear_probe(train_x, train_y["label"], test_x, test_y["label"], num_classes=10,
                      epochs=epochs, learning_rate=PROBE_LEARNING_RATE)["test_accuracy"]]
  for a, name in enumerate(captions.ATTRIBUTES):
    tr, te = ~train_y["mentions"][:, a], ~test_y["mentions"][:, a]
    row.append(linear_probe(train_x[tr], train_y["attributes"][tr, a], test_x[te],
                            test_y["attributes"][te, a],
                            num_classes=len(captions.ATTRIBUTE_LEVELS[name]),
                            epochs=epochs, learning_rate=PROBE_LEARNING_RATE)["test_accuracy"])
  return row


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default=str(REPO / "runs" / "decur_unique"))
  parser.add_argument("--epochs", type=float, default=2.0)
  parser.add_argument("--probe-train", type=int, default=10_000)
  parser.add_argument("--probe-test", type=int, default=10_000)
  parser.add_argument("--probe-epochs", type=int, default=30)
  parser.add_argument("--flag", action="append", default=[],
                      help="a further --config.* flag for both runs (repeatable)")
  args = parser.parse_args(argv)
  root = Path(args.workdir)
  rows = []
  for method in RUNS:
    train(method, root / method, args.epochs, args.flag)
    train_z, train_y, run = embeddings(root / method, "train", args.probe_train)
    test_z, test_y, _ = embeddings(root / method, "test", args.probe_test)
    if method == "decur":
      k = run.method.common_dim
      parts = {"common": slice(0, k), "unique": slice(k, None)}
    else:
      parts = {"all": slice(None)}
    for modality in ("image", "text"):
      for part, dims in parts.items():
        print(f"[{time.strftime('%H:%M:%S')}] probing {method} {modality} {part}", flush=True)
        width = train_z[modality][:, dims].shape[1]
        rows.append([f"{method} {modality}, {part} ({width} dims)",
                     *probe_row(train_z[modality][:, dims], test_z[modality][:, dims],
                                train_y, test_y, args.probe_epochs)])
  header = ["embedding", "class", *(f"{a} (unmentioned)" for a in captions.ATTRIBUTES)]
  chance = ["chance", "0.1000", *(f"{1 / len(captions.ATTRIBUTE_LEVELS[a]):.4f}"
                                  for a in captions.ATTRIBUTES)]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
           *("| " + " | ".join([r[0], *(f"{x:.4f}" for x in r[1:])]) + " |" for r in rows),
           "| " + " | ".join(chance) + " |"]
  table = "\n".join(lines)
  print(table)
  (root / "results.md").write_text(
      f"{args.epochs} epochs per run; probes on {args.probe_train} train and "
      f"{args.probe_test} test examples, {args.probe_epochs} epochs.\n\n{table}\n")


if __name__ == "__main__":
  main()
