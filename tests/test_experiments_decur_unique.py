"""experiments/decur_unique.py: an attribute is probed only on the examples whose caption
leaves it out. Synthetic features give the class and, for each attribute, its level where
the caption is silent on it and a wrong level where the caption names it: the probes
read the class and every unmentioned attribute exactly, where a probe over all examples
(the negative control) cannot."""

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import decur_unique  # noqa: E402

from jejax.data import captions  # noqa: E402
from jejax.eval.linear_probe import linear_probe  # noqa: E402


def synthetic(n, seed):
  rng = np.random.default_rng(seed)
  label = rng.integers(0, 10, n)
  levels = [len(captions.ATTRIBUTE_LEVELS[a]) for a in captions.ATTRIBUTES]
  attributes = np.stack([rng.integers(0, k, n) for k in levels], 1)
  mentions = np.zeros((n, 5), bool)
  for i in range(n):  # two of five, as a caption
    mentions[i, rng.choice(5, 2, replace=False)] = True
  shown = np.where(mentions, (attributes + 1) % np.array(levels), attributes)
  features = np.concatenate([np.eye(10)[label]] +
                            [np.eye(k)[shown[:, a]] for a, k in enumerate(levels)], 1)
  return np.float32(features), {"label": label, "attributes": attributes, "mentions": mentions}


def test_attributes_are_probed_where_the_caption_is_silent():
  train_x, train_y = synthetic(600, 0)
  test_x, test_y = synthetic(300, 1)
  row = decur_unique.probe_row(train_x, test_x, train_y, test_y, epochs=100)
  assert len(row) == 1 + len(captions.ATTRIBUTES)
  assert min(row) > 0.97, row
  # Negative control: the same probe over every example is misled by the mentioned ones.
  everywhere = linear_probe(train_x, train_y["attributes"][:, 0], test_x,
                            test_y["attributes"][:, 0], num_classes=3, epochs=100,
                            learning_rate=decur_unique.PROBE_LEARNING_RATE)
  assert everywhere["test_accuracy"] < 0.8
