"""Attributes measured from pixels (hand-made images, hand values), per-class thresholds on
the real train split, captions that name the class and the measured levels."""

import os
import re

import numpy as np
import pytest

from jejax.data import captions, load_fashion_mnist

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
needs_fashion_mnist = pytest.mark.skipif(
    not os.path.isdir(DEBIAN_DIR), reason=f"{DEBIAN_DIR} absent: make data")
TONE, SIZE, SHAPE, SYMMETRY, TEXTURE = range(5)


def square(side, value, size=28):
  """A centred side x side square of `value` on black."""
  image = np.zeros((size, size), np.uint8)
  start = (size - side) // 2
  image[start:start + side, start:start + side] = value
  return image


@pytest.fixture(scope="module")
def train_measurements():
  """The real train split's labels, measurements and thresholds."""
  train = load_fashion_mnist("train")
  measured = captions.measure_attributes(train.images)
  return train.labels, measured, captions.fit_thresholds(measured, train.labels)


def test_hand_values():
  wide = np.zeros((28, 28), np.uint8)
  wide[10:14, 2:26] = 200  # 24 wide, 4 high, centred
  left = np.zeros((28, 28), np.uint8)
  left[5:15, 2:12] = 200  # all in the left half: its mirror does not overlap it
  checker = square(20, 100)
  checker[4:24, 4:24] += (np.indices((20, 20)).sum(0) % 2 * 100).astype(np.uint8)
  m = captions.measure_attributes(np.stack([square(26, 250), square(6, 60), wide, left,
                                            checker, np.zeros((28, 28), np.uint8)]))
  np.testing.assert_allclose(m[0, [TONE, SIZE, SYMMETRY, TEXTURE]], [250, 676 / 784, 0, 0])
  np.testing.assert_allclose(m[1, [TONE, SIZE]], [60, 36 / 784])
  np.testing.assert_allclose(m[[0, 2], SHAPE], [1, 24 / 4])  # w / h exactly
  assert m[3, SYMMETRY] == 1.0
  # Every interior pixel of a checkerboard of 100 / 200 differs by 100 from both neighbours.
  np.testing.assert_allclose(m[4, TEXTURE], 100)
  np.testing.assert_allclose(m[5], [0, 0, 1, 0, 0])  # no foreground


def test_faint_pixels_are_not_foreground():
  image = square(10, captions.FOREGROUND_THRESHOLD)
  assert captions.measure_attributes(image[None])[0, SIZE] == 0
  image[9, 9] += 1
  assert captions.measure_attributes(image[None])[0, SIZE] == 1 / 784


def test_measure_rejects_colour_and_float_images():
  with pytest.raises(ValueError, match="grayscale uint8"):
    captions.measure_attributes(np.zeros((2, 28, 28, 3), np.uint8))
  with pytest.raises(ValueError, match="grayscale uint8"):
    captions.measure_attributes(np.zeros((2, 28, 28), np.float32))


@needs_fashion_mnist
def test_bright_large_square_and_dark_small_square_under_every_class(train_measurements):
  *_, train_thresholds = train_measurements
  images = np.stack([square(26, 250), square(6, 60)])
  for c in range(10):
    levels = captions.attribute_levels(
        captions.measure_attributes(images), np.array([c, c]), train_thresholds)
    assert [captions.ATTRIBUTE_LEVELS["tone"][k] for k in levels[:, TONE]] == ["light", "dark"]
    assert [captions.ATTRIBUTE_LEVELS["size"][k] for k in levels[:, SIZE]] == ["large", "small"]


@needs_fashion_mnist
def test_every_class_has_every_level_in_about_equal_parts(train_measurements):
  train_labels, train_measured, thresholds = train_measurements
  test = load_fashion_mnist("test")
  for labels, measured, atol in ((train_labels, train_measured, 0.03),
                                 (test.labels, captions.measure_attributes(test.images), 0.07)):
    # Train: the quantiles themselves, up to ties; test: a new sample of each class.
    levels = captions.attribute_levels(measured, labels, thresholds)
    for a, name in enumerate(captions.ATTRIBUTES):
      k = len(captions.ATTRIBUTE_LEVELS[name])
      for c in range(10):
        shares = np.bincount(levels[labels == c, a], minlength=k) / np.sum(labels == c)
        np.testing.assert_allclose(shares, 1 / k, atol=atol, err_msg=f"{name}, class {c}")
  # Negative control: thresholds fitted over all classes at once leave classes with
  # almost no images at some level (sandals are small).
  one_class = np.zeros_like(train_labels)
  pooled = captions.fit_thresholds(train_measured, one_class, num_classes=1)
  pooled_levels = captions.attribute_levels(train_measured, one_class, pooled)
  assert np.mean(pooled_levels[train_labels == 5, SIZE] == 2) < 0.02


def test_fit_thresholds_needs_every_class():
  with pytest.raises(ValueError, match=r"classes \[2\]"):
    captions.fit_thresholds(np.zeros((4, 5)), np.array([0, 1, 0, 1]), num_classes=3)


def test_levels_count_the_thresholds_exceeded():
  thresholds = {name: np.array([[1.0, 2.0][:len(levels) - 1]])
                for name, levels in captions.ATTRIBUTE_LEVELS.items()}
  measured = np.array([[0.5] * 5, [1.0] * 5, [1.5] * 5, [2.5] * 5])
  levels = captions.attribute_levels(measured, np.zeros(4, int), thresholds)
  np.testing.assert_array_equal(levels[:, TONE], [0, 1, 1, 2])  # a tie counts as above
  np.testing.assert_array_equal(levels[:, SHAPE], [0, 1, 1, 1])


def word(text, w):
  return re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text) is not None


def random_captions(n=500, seed=0, split="train"):
  rng = np.random.default_rng(123)
  labels = rng.integers(0, 10, n)
  levels = np.stack([rng.integers(0, len(captions.ATTRIBUTE_LEVELS[a]), n)
                     for a in captions.ATTRIBUTES], axis=1)
  return labels, levels, captions.make_captions(labels, levels, seed=seed, split=split)


def test_captions_name_the_class_and_the_measured_levels():
  labels, levels, made = random_captions()
  assert (made.mentions.sum(1) == captions.ATTRIBUTES_PER_CAPTION).all()
  assert set(made.template.tolist()) == set(range(len(captions.CAPTION_TEMPLATES)))
  for caption, label, level, mentions in zip(made.captions, labels, levels, made.mentions):
    assert word(caption, captions.CLASS_NAMES[label]), caption
    # word() does not find "shirt" in "t-shirt".
    assert sum(word(caption, n) for n in captions.CLASS_NAMES) == 1, caption
    for a, name in enumerate(captions.ATTRIBUTES):
      words = captions.ATTRIBUTE_WORDS[name]
      said = [w for w in words if word(caption, w)]
      # The measured level's word when the attribute is named, no word of it otherwise.
      assert said == ([words[level[a]]] if mentions[a] else []), (caption, name, level)
    assert not re.search(r"\ba [aeiou]", caption), caption  # "an ankle boot"
    assert caption.isascii()


def test_captions_are_a_function_of_seed_split_and_image():
  _, _, made = random_captions()
  _, _, again = random_captions()
  assert made.captions == again.captions
  _, _, other_seed = random_captions(seed=1)
  _, _, other_split = random_captions(split="test")
  assert np.mean([a != b for a, b in zip(made.captions, other_seed.captions)]) > 0.5
  assert np.mean([a != b for a, b in zip(made.captions, other_split.captions)]) > 0.5
  with pytest.raises(ValueError, match="split 'val'"):
    random_captions(split="val")


def test_class_prompts():
  prompts = captions.class_prompts()
  assert len(prompts) == 10 and {len(p) for p in prompts} == {len(captions.ZERO_SHOT_TEMPLATES)}
  assert prompts[9][0] == "a photo of an ankle boot."
  assert prompts[5][1] == "a picture of a sandal."
  for name, class_prompts in zip(captions.CLASS_NAMES, prompts):
    assert all(word(p, name) for p in class_prompts)


def test_a_becomes_an_before_a_vowel_only_as_a_word():
  assert captions.a_or_an("a asymmetric coat, a dark bag") == "an asymmetric coat, a dark bag"
  # Not inside a word ("a" ending "sofa"), not before a consonant, not twice.
  assert captions.a_or_an("a sofa is a bag") == "a sofa is a bag"
  assert captions.a_or_an("an ankle boot") == "an ankle boot"
