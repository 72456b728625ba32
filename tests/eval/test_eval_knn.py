"""Weighted kNN against a brute-force float64 NumPy classifier and hand-built cases."""

import math

import numpy as np
import pytest

from jejax.eval import knn


def _knn_reference(train, train_labels, test, num_classes, k, temperature):
  """Wu et al. 2018: cosine similarity, the k most similar, votes exp(sim / T) per class."""
  train = train / np.linalg.norm(train, axis=1, keepdims=True)
  test = test / np.linalg.norm(test, axis=1, keepdims=True)
  predictions = []
  for query in test:
    sims = train @ query
    nearest = np.argsort(-sims)[:min(k, len(train))]
    votes = np.zeros(num_classes)
    for i in nearest:
      votes[train_labels[i]] += np.exp(sims[i] / temperature)
    predictions.append(np.argmax(votes))
  return np.array(predictions)


def _clustered_data(n, num_classes, dim, rng, means):
  labels = rng.integers(0, num_classes, size=n)
  return means[labels] + rng.normal(size=(n, dim)), labels


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_matches_brute_force_reference(temperature):
  rng = np.random.default_rng(0)
  means = 0.4 * rng.normal(size=(4, 16))  # overlapping classes: errors, near-ties
  train, train_labels = _clustered_data(300, 4, 16, rng, means)
  test, test_labels = _clustered_data(57, 4, 16, rng, means)  # 57: not a multiple of 20
  kwargs = dict(num_classes=4, k=5, temperature=temperature, batch_size=20)
  got = knn.knn_predict(train, train_labels, test, **kwargs)
  expected = _knn_reference(train, train_labels, test, 4, 5, temperature)
  assert got.shape == (57,)
  np.testing.assert_array_equal(got, expected)
  accuracy = knn.knn_accuracy(train, train_labels, test, test_labels, **kwargs)
  assert accuracy == pytest.approx(np.mean(expected == test_labels))
  assert 0.4 < accuracy < 1.0  # the task is learnable but noisy: not a trivial pass


def test_k1_returns_label_of_nearest_neighbour():
  bank = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
  labels = np.array([2, 0, 3, 1])
  # Nearest by cosine (norms do not matter): +x, +y, -x, -y.
  queries = np.array([[0.9, 0.1], [0.1, 2.0], [-5.0, 1.0], [0.2, -1.0], [30.0, -1.0]])
  got = knn.knn_predict(bank, labels, queries, num_classes=4, k=1, temperature=0.07,
                        batch_size=8)
  np.testing.assert_array_equal(got, [2, 0, 3, 1, 2])


def test_weighted_votes_and_k_capped_at_bank_size():
  bank = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
  labels = np.array([0, 1, 1])
  query = np.array([[1.0, 0.0]])  # cosines 1, 0.8, 0.6
  # k = 1: the nearest is class 0.
  assert knn.knn_predict(bank, labels, query, num_classes=2, k=1, temperature=1.0)[0] == 0
  # k = 10 -> 3 (the whole bank), T = 1: class 0 gets e^1 = 2.718,
  # class 1 gets e^0.8 + e^0.6 = 2.2255 + 1.8221 = 4.0477: class 1 wins.
  assert math.exp(0.8) + math.exp(0.6) > math.exp(1.0)
  assert knn.knn_predict(bank, labels, query, num_classes=2, k=10, temperature=1.0)[0] == 1
  # T = 0.07 sharpens the votes: e^(1/0.07) = 1.6e6 > e^(0.8/0.07) + e^(0.6/0.07) = 9.7e4.
  assert math.exp(1 / 0.07) > math.exp(0.8 / 0.07) + math.exp(0.6 / 0.07)
  assert knn.knn_predict(bank, labels, query, num_classes=2, k=10, temperature=0.07)[0] == 0
