"""The evaluation protocol of a run: weighted kNN and a linear probe on frozen features of
the full splits, the collapse diagnostics of the test features, and the same probe on
the encoder at its random initialisation (the baseline a pretraining must beat).

Features come from `encode(source, limit) -> (features (N, F), labels (N,))`, so the protocol
knows nothing about models or checkpoints; `jejax.job` passes a run's encoder.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections
import numpy as np

from jejax.data.sources import Source
from jejax.eval import diagnostics
from jejax.eval.knn import knn_accuracy
from jejax.eval.linear_probe import linear_probe

Encode = Callable[[Source, int | None], tuple[np.ndarray, np.ndarray]]


def knn_monitor(encode: Encode, train_source: Source, test_source: Source,
                e: ml_collections.ConfigDict, *, train_limit: int | None = None) -> float:
  """kNN accuracy on the test split with (the first `train_limit` of) the train split as
  the bank: the cheap monitor a run logs while it trains."""
  train_x, train_y = encode(train_source, train_limit)
  test_x, test_y = encode(test_source, None)
  return knn_accuracy(train_x, train_y, test_x, test_y, k=e.knn_k,
                      temperature=e.knn_temperature, num_classes=train_source.num_classes)


def evaluate(encode: Encode, train_source: Source, test_source: Source,
             e: ml_collections.ConfigDict, *, seed: int, encode_at_init: Encode | None = None
             ) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
  """The final evaluation on the full splits.

  Args:
    encode: the trained encoder; `encode(source, limit)` -> (features, labels).
    e: the config's `eval` block (kNN k and temperature, probe epochs and lr).
    seed: the probe's initialisation and data order.
    encode_at_init: the same encoder at its initialisation; its linear probe is reported
      as `random_init_linear_probe_accuracy` when given.

  Returns:
    The results, and the test features and labels (for plots).
  """
  num_classes = train_source.num_classes
  train_x, train_y = encode(train_source, None)
  test_x, test_y = encode(test_source, None)
  probe = dict(num_classes=num_classes, epochs=e.probe_epochs,
               learning_rate=e.probe_learning_rate, seed=seed)
  results = {
      "knn_accuracy": knn_accuracy(train_x, train_y, test_x, test_y, k=e.knn_k,
                                   temperature=e.knn_temperature, num_classes=num_classes),
      "linear_probe_accuracy": linear_probe(train_x, train_y, test_x, test_y,
                                            **probe)["test_accuracy"],
      "effective_rank": float(diagnostics.effective_rank(test_x)),
      "embedding_std": float(diagnostics.embedding_std(test_x)),
      "feature_dim": int(test_x.shape[1]),
  }
  if encode_at_init is not None:
    init_train_x, _ = encode_at_init(train_source, None)
    init_test_x, _ = encode_at_init(test_source, None)
    results["random_init_linear_probe_accuracy"] = linear_probe(
        init_train_x, train_y, init_test_x, test_y, **probe)["test_accuracy"]
    results["random_init_effective_rank"] = float(diagnostics.effective_rank(init_test_x))
  return results, test_x, test_y
