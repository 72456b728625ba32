"""Linear probe: separable blobs are learned, random labels are not, standardisation."""

import importlib

import numpy as np

# The module: the name jejax.eval.linear_probe is the function it defines.
lp = importlib.import_module("jejax.eval.linear_probe")

PROBE = dict(num_classes=4, epochs=20, batch_size=100, learning_rate=1e-2, weight_decay=0.0,
             seed=0)


def _blobs(n, rng, means):
  labels = rng.integers(0, 4, size=n)
  return (means[labels] + rng.normal(size=(n, means.shape[1]))).astype(np.float32), labels


def test_separable_blobs_are_learned():
  rng = np.random.default_rng(0)
  # Means 8 apart on orthogonal axes, unit noise: the Bayes error is ~1e-8.
  means = 8.0 * np.eye(4, 20)
  train_x, train_y = _blobs(400, rng, means)
  test_x, test_y = _blobs(400, rng, means)
  result = lp.linear_probe(train_x, train_y, test_x, test_y, **PROBE)
  assert set(result) == {"train_accuracy", "test_accuracy"}
  assert result["train_accuracy"] > 0.98
  assert result["test_accuracy"] > 0.98


def test_random_labels_give_chance_test_accuracy():
  rng = np.random.default_rng(1)
  train_x = rng.normal(size=(400, 20)).astype(np.float32)
  test_x = rng.normal(size=(2000, 20)).astype(np.float32)
  train_y = rng.integers(0, 4, size=400)
  test_y = rng.integers(0, 4, size=2000)
  result = lp.linear_probe(train_x, train_y, test_x, test_y, **PROBE)
  # Chance is 0.25; 2000 test points give a binomial std of sqrt(0.25 * 0.75 / 2000) = 0.01.
  assert result["test_accuracy"] < 0.4
  # It can fit some of the noise of the 400 training points (20 dims, 4 classes).
  assert result["train_accuracy"] > result["test_accuracy"]


def test_standardize_uses_train_statistics():
  rng = np.random.default_rng(2)
  scale = np.array([0.1, 1.0, 100.0], np.float32)
  offset = np.array([-5.0, 0.0, 3.0], np.float32)
  train = (rng.normal(size=(200, 3)) * scale + offset).astype(np.float32)
  test = (rng.normal(size=(30, 3)) * scale + offset).astype(np.float32)
  train_s, test_s = lp.standardize(train, test)
  np.testing.assert_allclose(train_s.mean(0), 0.0, atol=1e-4)
  np.testing.assert_allclose(train_s.std(0), 1.0, rtol=1e-3)
  train64 = train.astype(np.float64)
  expected_test = (test - train64.mean(0)) / train64.std(0)
  np.testing.assert_allclose(test_s, expected_test, rtol=1e-3, atol=1e-3)
