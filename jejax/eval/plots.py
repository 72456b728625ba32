"""PNG plots of a run: training curves and a 2-D projection of test embeddings."""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def pca_2d(features: np.ndarray) -> np.ndarray:
  """(N, F) -> (N, 2): projection on the top two principal directions."""
  centered = features - features.mean(0)
  _, _, vt = np.linalg.svd(centered, full_matrices=False)
  return centered @ vt[:2].T


def plot_training(records: Sequence[dict], path: str | os.PathLike) -> None:
  """Loss, kNN accuracy and effective rank against the step, from metrics.jsonl records."""
  def series(key):
    points = [(r["step"], r[key]) for r in records if key in r]
    return tuple(zip(*points)) if points else ((), ())

  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for ax, key, title in zip(axes, ("loss", "knn_accuracy", "effective_rank"),
                            ("SSL loss", "kNN accuracy (monitor)", "effective rank (batch)")):
    steps, values = series(key)
    ax.plot(steps, values, marker="o" if key == "knn_accuracy" else None)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_embedding_2d(features: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                      path: str | os.PathLike, title: str = "test embeddings (PCA)") -> None:
  """Scatter of the 2-D PCA projection of `features`, coloured by class."""
  xy = pca_2d(np.asarray(features, np.float64))
  fig, ax = plt.subplots(figsize=(7, 6))
  cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
  for c, name in enumerate(class_names):
    sel = labels == c
    ax.scatter(xy[sel, 0], xy[sel, 1], s=2, alpha=0.5, color=cmap(c % cmap.N), label=name)
  ax.legend(markerscale=5, fontsize=8, loc="best")
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
