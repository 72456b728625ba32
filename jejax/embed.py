"""Embed a dataset with a trained checkpoint and look at the embedding space.

  python -m jejax.embed --workdir runs/simclr [--split test] [--out DIR] [--limit N]

Reads the run's config (`<workdir>/config.json`, or `--config` with a config file of
`experiments/configs/` or another run's config.json), restores the latest checkpoint of
`<workdir>/checkpoints` (or `--checkpoint-dir`) and writes to `--out` (default
`<workdir>/embed_<split>/`):

- `embeddings.npz`: `features` (N, F) float32 backbone features (the representation that
  kNN and the linear probe evaluate), `labels` (N,) int32, `indices` (N,) into the split,
  and the checkpoint `step`;
- `class_similarity.png`: the class-to-class mean cosine similarity of the features;
- `neighbours.png`: one query image per class beside its nearest neighbours in the split
  (cosine, the query itself left out), each match marked by whether its class agrees;
- `summary.json`: retrieval recall@k and mAP (leave-one-out, over the first
  `retrieval_size` examples), effective rank, and the paths above.

A checkpoint whose arrays do not match the model the config builds (another backbone,
width, head, method) is refused before anything is restored, with the differing arrays
named; one that cannot be read is skipped (and reported) for the newest readable one, and
left where it is. Such errors print as `error: ...` and `hint: ...`, exit status 2.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt
import numpy as np

from jejax import config as config_lib
from jejax import data, errors
from jejax.checks import ConfigError
from jejax.eval import diagnostics, distances, plots, retrieval
from jejax.train import metrics_log
from jejax.train.checkpoint import (Checkpointer, CheckpointMismatchError,
                                    CheckpointNotFoundError)
from jejax.train.run import Run


def restore_checkpoint(run: Run, directory: str | os.PathLike) -> tuple[Any, int]:
  """The latest readable train state in `directory` and its step, checked against
  `run`'s model before anything is read.

  Raises:
    CheckpointNotFoundError: no checkpoint in `directory`.
    CheckpointMismatchError: the checkpoint's arrays differ from the config's state.
    UnreadableCheckpointsError: no checkpoint in `directory` can be read.
  """
  directory = Path(directory).absolute()
  if not directory.is_dir():
    raise CheckpointNotFoundError(f"no checkpoint directory {directory}")
  checkpointer = Checkpointer(directory, every_steps=1, keep=1)
  if checkpointer.latest_step() is None:
    raise CheckpointNotFoundError(f"{directory} holds no checkpoint")
  # A reader does not move a run's files: an unreadable checkpoint is only skipped.
  state = checkpointer.restore_latest(run.abstract_state, set_aside_unreadable=False)
  return state, int(state.step)


def class_similarity(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
  """(C, C) mean cosine similarity between the features of class i and of class j.

  The mean of cos(a, b) over pairs equals the dot product of the classes' mean unit
  vectors, so no N x N matrix is formed; the diagonal includes each item with itself.
  """
  unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
  means = np.stack([unit[labels == c].mean(0) if np.any(labels == c)
                    else np.full(unit.shape[1], np.nan) for c in range(num_classes)])
  return means @ means.T  # (C, F) @ (F, C)


def nearest_neighbours(features: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
  """(Q, k) indices of the k most cosine-similar items of `features` to each query index,
  the query itself left out."""
  scores = np.array(distances.cosine_similarity(features[queries], features))  # (Q, N), writable
  scores[np.arange(len(queries)), queries] = -np.inf
  return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def first_of_each_class(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """Index of the first item of every class present, in class order."""
  return np.asarray([int(np.argmax(labels == c)) for c in range(num_classes)
                     if np.any(labels == c)])


def plot_neighbours(images: np.ndarray, labels: np.ndarray, queries: np.ndarray,
                    neighbours: np.ndarray, class_names: list[str],
                    path: str | os.PathLike) -> Path:
  """A grid: each row a query image, then its neighbours, framed green where the class
  matches the query's and red where it does not."""
  rows, k = neighbours.shape
  fig, axes = plt.subplots(rows, k + 1, figsize=(1.2 * (k + 1), 1.3 * rows), squeeze=False)
  for row, (query, found) in enumerate(zip(queries, neighbours)):
    for col, index in enumerate([query, *found]):
      ax = axes[row, col]
      ax.imshow(images[index].squeeze(), cmap="gray" if images.shape[-1] == 1 else None)
      ax.set_xticks([])
      ax.set_yticks([])
      if col == 0:
        ax.set_title(f"query: {class_names[labels[index]]}", fontsize=7)
        continue
      color = "green" if labels[index] == labels[query] else "red"
      for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(2.5)
      ax.set_title(class_names[labels[index]], fontsize=6, color=color)
  fig.suptitle("nearest neighbours (cosine) of one query per class", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return Path(path)


def embed(workdir: str | os.PathLike, *, config_path: str | os.PathLike | None = None,
          checkpoint_dir: str | os.PathLike | None = None, split: str = "test",
          out: str | os.PathLike | None = None, limit: int | None = None,
          num_neighbours: int = 8, retrieval_size: int = 2000) -> dict[str, Any]:
  """The whole command as a function; returns the summary (also written to disk)."""
  workdir = Path(workdir)
  c = config_lib.validate(config_lib.load(config_path or workdir / "config.json"))
  run = Run(c, workdir)
  state, step = restore_checkpoint(run, checkpoint_dir or workdir / "checkpoints")
  source = {"train": run.train_source, "test": run.test_source}.get(split)
  if source is None:
    raise ConfigError(f"split {split!r}: expected 'train' or 'test'")
  features, labels = run.features(state, source, limit=limit)
  indices = np.arange(len(labels))
  out = Path(out or workdir / f"embed_{split}")
  out.mkdir(parents=True, exist_ok=True)
  np.savez(out / "embeddings.npz", features=features.astype(np.float32),
           labels=labels.astype(np.int32), indices=indices, step=step)

  num_classes = source.num_classes
  names = (list(data.FASHION_MNIST_CLASSES) if c.data.name == "fashion_mnist"
           else [str(i) for i in range(num_classes)])
  plots.plot_similarity_matrix(class_similarity(features, labels, num_classes), names,
                               out / "class_similarity.png",
                               title=f"{c.method} step {step}: mean cosine between classes")
  queries = first_of_each_class(labels, num_classes)
  neighbours = nearest_neighbours(features, queries, num_neighbours)
  shown = np.unique(np.concatenate([queries, neighbours.ravel()]))
  images = np.zeros((len(labels), *source.image_shape), np.uint8)
  images[shown] = source.get_batch(shown)["image"]  # only the images the figure shows
  plot_neighbours(images, labels, queries, neighbours, names, out / "neighbours.png")

  m = min(retrieval_size, len(labels))
  scores = distances.cosine_similarity(features[:m], features[:m])
  recalls = retrieval.recall_at_k(scores, labels[:m], labels[:m], ks=(1, 5, 10),
                                  exclude_self=True)
  summary = {
      "checkpoint_step": int(step), "split": split, "num_examples": len(labels),
      "feature_dim": int(features.shape[1]),
      "effective_rank": float(diagnostics.effective_rank(features)),
      "retrieval_size": int(m),
      **{f"recall_at_{k}": float(r) for k, r in zip((1, 5, 10), recalls)},
      "mean_average_precision": float(retrieval.mean_average_precision(
          scores, labels[:m], labels[:m], exclude_self=True)),
      "files": [str(out / name) for name in ("embeddings.npz", "class_similarity.png",
                                             "neighbours.png", "summary.json")],
  }
  (out / "summary.json").write_text(metrics_log.dumps(summary, indent=2) + "\n")
  return summary


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="the run's directory")
  parser.add_argument("--config", help="config file (.py) or config.json; default: the "
                      "run's config.json")
  parser.add_argument("--checkpoint-dir", help="default: <workdir>/checkpoints")
  parser.add_argument("--split", default="test", choices=("train", "test"))
  parser.add_argument("--out", help="default: <workdir>/embed_<split>")
  parser.add_argument("--limit", type=int, help="embed only the first N examples")
  parser.add_argument("--neighbours", type=int, default=8, help="neighbours per query")
  parser.add_argument("--retrieval-size", type=int, default=2000,
                      help="examples used for recall@k and mAP (leave-one-out)")
  args = parser.parse_args(argv)
  try:
    summary = embed(args.workdir, config_path=args.config, checkpoint_dir=args.checkpoint_dir,
                    split=args.split, out=args.out, limit=args.limit,
                    num_neighbours=args.neighbours, retrieval_size=args.retrieval_size)
  except errors.JejaxError as error:
    errors.exit_with(error)
  print(metrics_log.dumps({k: v for k, v in summary.items() if k != "files"}, indent=2))
  print("wrote " + ", ".join(summary["files"]))


if __name__ == "__main__":
  main()
