"""Questions about images: every answer agrees with a reading of the question text against
the image's label and levels (an independent parser), the kinds and yes/no answers are
balanced, the questions are a pure function of (seed, split, index), the test images are
held out (thresholds from the train images only), and the lookup baselines match their
expected values."""

import re

import numpy as np
import pytest

from jejax.data import captions, qa, tokenizer

N_TRAIN, N_TEST, PER_IMAGE = 2000, 500, 4


def _images(n, seed):
  """Random grayscale images of random classes, each class present. Train and test draw
  from disjoint value ranges (train pixels even, test pixels odd) so no image is in both."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 128, (n, 28, 28)).astype(np.uint8) * 2 + (seed % 2)
  # A random rectangle of foreground, so that size, shape and symmetry vary.
  for image, (r, c, h, w) in zip(images, rng.integers([0, 0, 4, 4], [10, 10, 18, 18], (n, 4))):
    image[:r] = image[:, :c] = seed % 2
    image[r + h:] = image[:, c + w:] = seed % 2
  return images, np.arange(n) % 10


@pytest.fixture(scope="module")
def sources():
  (train_images, train_labels), (test_images, test_labels) = _images(N_TRAIN, 0), _images(N_TEST, 1)
  return qa.qa_sources(train_images, train_labels, test_images, test_labels, seed=0,
                       per_image=PER_IMAGE)


def _expected_answer(text: str, label: int, levels: np.ndarray) -> str:
  """The answer read from the question's words, independently of `qa`'s templates."""
  cls = captions.CLASS_NAMES[label]
  words = {a: captions.ATTRIBUTE_WORDS[a][levels[i]] for i, a in enumerate(captions.ATTRIBUTES)}
  if match := re.fullmatch(r"is (?:it|this|the garment) an? (.+)\?", text):
    assert match[1] in captions.CLASS_NAMES
    return "yes" if match[1] == cls else "no"
  if match := re.fullmatch(r"what is its (\w+)\?", text):
    return words[match[1]]
  if match := re.fullmatch(r"is it ((?:\w+, )*\w+) or (\w+)\?", text):
    options = match[1].split(", ") + [match[2]]
    (attribute,) = [a for a in captions.ATTRIBUTES
                    if list(captions.ATTRIBUTE_WORDS[a]) == options]
    return words[attribute]
  if match := re.fullmatch(r"is (?:it|the garment) (\w+)\?", text):
    (attribute,) = [a for a in captions.ATTRIBUTES if match[1] in captions.ATTRIBUTE_WORDS[a]]
    return "yes" if match[1] == words[attribute] else "no"
  assert text.startswith("what "), text
  return cls


@pytest.mark.parametrize("split", [0, 1])
def test_answers_agree_with_the_label_and_levels(sources, split):
  source = sources[split]
  batch = source.get_batch(np.arange(len(source)))
  texts = tokenizer.decode(batch["question"])
  assert texts == source.questions.texts
  for text, label, levels, answer in zip(texts, batch["label"], batch["attributes"],
                                         batch["answer"]):
    assert qa.ANSWERS[answer] == _expected_answer(text, label, levels), text
  assert batch["question"].shape == (len(source), qa.QUESTION_LENGTH)
  np.testing.assert_array_equal(batch["question_mask"], batch["question"] != tokenizer.PAD_ID)
  assert set(texts) <= set(qa.question_strings())


def test_answers_and_question_strings():
  assert len(qa.ANSWERS) == len(set(qa.ANSWERS)) == 10 + 12 + 2
  strings = qa.question_strings()
  assert len(strings) == 4 + 5 * 2 + 3 * 10 + 2 * 12
  assert max(len(s.encode()) for s in strings) + 2 <= qa.QUESTION_LENGTH
  assert "is the garment an ankle boot?" in strings and "is it a coat?" in strings


def test_kinds_and_yes_no_are_balanced(sources):
  questions = sources[0].questions
  m = len(questions.answer)
  kinds = np.bincount(questions.kind, minlength=4) / m
  np.testing.assert_allclose(kinds, 0.25, atol=0.02)  # 8000 draws: std 0.005
  yes_no = questions.kind >= 2
  yes = np.mean(questions.answer[yes_no] == qa.ANSWERS.index("yes"))
  assert abs(yes - 0.5) < 0.03
  asks_attribute = questions.kind % 2 == 1
  assert np.all(questions.attribute[asks_attribute] >= 0)
  assert np.all(questions.attribute[~asks_attribute] == -1)
  np.testing.assert_array_equal(questions.image, np.repeat(np.arange(N_TRAIN), PER_IMAGE))


def test_questions_are_a_function_of_seed_split_and_index(sources):
  source = sources[0]
  labels, levels = source.labels, source.levels
  again = qa.make_questions(labels, levels, seed=0, split="train", per_image=PER_IMAGE)
  assert again.texts == source.questions.texts
  np.testing.assert_array_equal(again.answer, source.questions.answer)
  other_seed = qa.make_questions(labels, levels, seed=1, split="train", per_image=PER_IMAGE)
  other_split = qa.make_questions(labels, levels, seed=0, split="test", per_image=PER_IMAGE)
  for other in (other_seed, other_split):
    assert np.mean(np.array(other.texts) != np.array(again.texts)) > 0.5
  # A batch is the same rows whatever else is asked with it.
  idx = np.array([5, 17, 3])
  batch = source.get_batch(idx)
  for j, i in enumerate(idx):
    single = source.get_batch(np.array([i]))
    for key in batch:
      np.testing.assert_array_equal(batch[key][j], single[key][0])
  with pytest.raises(ValueError, match="split"):
    qa.make_questions(labels, levels, seed=0, split="val", per_image=1)


def test_test_images_are_held_out(sources):
  train, test = sources
  (train_images, _), (test_images, test_labels) = _images(N_TRAIN, 0), _images(N_TEST, 1)
  batch = test.get_batch(np.arange(len(test)))
  np.testing.assert_array_equal(batch["image"][..., 0], test_images[batch["image_index"]])
  train_set = {image.tobytes() for image in train_images}
  assert not any(image.tobytes() in train_set for image in batch["image"][..., 0])
  # The test levels use the train images' thresholds: other test images change no train
  # question, and the test levels are those of the train thresholds.
  thresholds = captions.fit_thresholds(captions.measure_attributes(train_images),
                                       np.arange(N_TRAIN) % 10)
  np.testing.assert_array_equal(
      test.levels, captions.attribute_levels(captions.measure_attributes(test_images),
                                             test_labels, thresholds))
  flipped = test_images[:, :, ::-1]
  train2, _ = qa.qa_sources(train_images, np.arange(N_TRAIN) % 10, flipped, test_labels,
                            seed=0, per_image=PER_IMAGE)
  assert train2.questions.texts == train.questions.texts
  np.testing.assert_array_equal(train2.levels, train.levels)


def test_lookup_baselines_reach_their_expected_values(sources):
  # Question only: class questions 1/10, level questions the mean of 1/levels over the
  # attributes (levels balanced per class), yes/no 1/2; image only: the class name,
  # yes and no each answer a quarter of the questions about any image.
  expected_question = 0.25 * (0.1 + np.mean([1 / 3, 1 / 3, 1 / 2, 1 / 2, 1 / 2]) + 0.5 + 0.5)
  baselines = qa.lookup_baselines(*sources)
  assert abs(baselines["question_only"] - expected_question) < 0.04
  assert abs(baselines["image_only"] - 0.25) < 0.04
