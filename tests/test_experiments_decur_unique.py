"""experiments/decur_unique.py: an attribute is probed only on the examples whose caption
leaves it out. Synthetic features give the class and, for each attribute, its level where
the caption is silent on it and a wrong level where the caption names it: the probes
read the class and every unmentioned attribute exactly, where a probe over all examples
(the negative control) cannot. The speech-only factors against hand values, shared by
train and held-out voices, and probed where the examples have them (features without
them: at chance, the control)."""

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import decur_unique  # noqa: E402

from jejax.data import captions, speech  # noqa: E402
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


def test_speech_factors_are_shared_by_train_and_held_out_voices():
  voices = np.array([0, 99, 100, 799])  # accent * 100 + variant
  factors = decur_unique.speech_factors({
      "voice": voices, "rate": np.array([160, 183, 184, 230]),
      "pitch": np.array([20, 40, 41, 80])})
  np.testing.assert_array_equal(factors["accent"], [0, 0, 1, 7])
  np.testing.assert_array_equal(factors["rate"], [0, 0, 1, 2])  # 160-183, 184-207, 208-230
  np.testing.assert_array_equal(factors["pitch"], [0, 0, 1, 2])  # 20-40, 41-60, 61-80
  edges = decur_unique.speech_factors({"voice": voices[:2], "rate": np.array([207, 208]),
                                       "pitch": np.array([60, 61])})
  assert edges["rate"].tolist() == [1, 2] and edges["pitch"].tolist() == [1, 2]
  # Every accent is spoken by train and by held-out voices, so an accent probe fitted on
  # train clips has every test class; the voices themselves are disjoint (the control).
  def accents(voices):
    n = len(voices)
    return set(decur_unique.speech_factors({"voice": np.array(voices), "rate": np.full(n, 160),
                                            "pitch": np.full(n, 20)})["accent"].tolist())
  assert accents(speech.TRAIN_VOICES) == accents(speech.HELD_OUT_VOICES) == set(range(8))
  assert not set(speech.TRAIN_VOICES) & set(speech.HELD_OUT_VOICES)


def test_speech_factors_are_probed_when_the_examples_have_them():
  rng = np.random.default_rng(2)
  parts = []
  for n, seed in ((600, 0), (300, 1)):
    x, y = synthetic(n, seed)
    y |= {"accent": rng.integers(0, 8, n), "rate": rng.integers(0, 3, n),
          "pitch": rng.integers(0, 3, n)}
    speech_features = np.concatenate([np.eye(8)[y["accent"]], np.eye(3)[y["rate"]],
                                      np.eye(3)[y["pitch"]]], 1)
    parts.append((x, np.concatenate([x, speech_features], 1).astype(np.float32), y))
  (train_x, train_with, train_y), (test_x, test_with, test_y) = parts
  row = decur_unique.probe_row(train_with, test_with, train_y, test_y, epochs=100)
  assert len(row) == 1 + len(captions.ATTRIBUTES) + len(decur_unique.SPEECH_FACTORS)
  assert min(row) > 0.97, row
  # Negative control: features without the speech factors probe them at about chance.
  row = decur_unique.probe_row(train_x, test_x, train_y, test_y, epochs=100)
  assert row[-3] < 0.3 and max(row[-2:]) < 0.5, row
