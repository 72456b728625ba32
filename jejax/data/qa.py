"""Question answering about Fashion-MNIST images, offline: questions whose answers are the
image's class and its measured attribute levels (`captions.py`).

Four kinds of question (`QUESTION_KINDS`), asked as text and tokenized byte by byte
(`tokenizer.py`, `QUESTION_LENGTH` tokens):

| kind | example | answer |
|---|---|---|
| what_class | "what is the garment?" | the class name ("ankle boot") |
| which_level | "is it dark, grey or light?", "what is its size?" | the attribute's level word |
| is_class | "is this a coat?" (the true class half of the time) | yes / no |
| is_level | "is it patterned?" (the true level half of the time) | yes / no |

The attribute of a which_level or is_level question is one of the five, uniformly. The
answers come from one fixed vocabulary (`ANSWERS`, 24 words: the class names, the level
words, yes, no). No question can be answered from the question alone beyond chance
(classes and levels are balanced per class, yes and no drawn half and half), nor from the
image alone (it does not say what is asked), so the task needs both: a question-only
model is right about 0.38 of the time, an image-only one about 0.25 (the expected values
for a model that knows everything its input can tell; see `chance_accuracies`).

Splits: train questions are about the Fashion-MNIST train images, test questions about
the test images, which no train question shows (held-out images). The attribute
thresholds are fitted on the train images only (`captions.fit_thresholds`).

Determinism: each image gets `per_image` questions; example i asks question i % per_image
about image i // per_image. Every draw is made for the whole split at once from a
generator seeded by (seed, split), as the captions are, so example i is a pure function
of (seed, split, i) and the image's label and levels.

Spoken questions are not made here: the questions use a small, fixed set of strings
(`question_strings`, 68), so speaking them is cheap (`speech.speak`), but a speech tower
in the QA experiment is not.

Example:
  >>> train, test = load_qa(per_image=4)
  >>> batch = test.get_batch(np.arange(2))
  >>> tokenizer.decode(batch['question']), [ANSWERS[a] for a in batch['answer']]
  (['is the garment wide?', 'is it dark, grey or light?'], ['yes', 'dark'])
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from jejax.data import tokenizer
from jejax.data.captions import (ATTRIBUTE_WORDS, ATTRIBUTES, CLASS_NAMES, a_or_an,
                                 attribute_levels, fit_thresholds, measure_attributes)
from jejax.data.fashion_mnist import load_fashion_mnist

QUESTION_KINDS = ("what_class", "which_level", "is_class", "is_level")
YES, NO = "yes", "no"
ANSWERS: tuple[str, ...] = (CLASS_NAMES + tuple(w for a in ATTRIBUTES for w in ATTRIBUTE_WORDS[a])
                            + (YES, NO))
QUESTION_LENGTH = 40  # tokens, begin and end included; the longest question has 30 bytes

WHAT_CLASS_TEMPLATES = ("what is the garment?", "what is this?",
                        "what kind of clothing is this?", "what is shown in the picture?")
# Per attribute: the options named ("is it dark, grey or light?") or the attribute named.
WHICH_LEVEL_TEMPLATES = ("is it {options}?", "what is its {attribute}?")
IS_CLASS_TEMPLATES = ("is it a {cls}?", "is this a {cls}?", "is the garment a {cls}?")
IS_LEVEL_TEMPLATES = ("is it {word}?", "is the garment {word}?")
TEMPLATES = {"what_class": WHAT_CLASS_TEMPLATES, "which_level": WHICH_LEVEL_TEMPLATES,
             "is_class": IS_CLASS_TEMPLATES, "is_level": IS_LEVEL_TEMPLATES}

# Independent of the captions' generators (seeded by (seed, 0 or 1)).
_SPLIT_STREAMS = {"train": 20, "test": 21}


def _options(words: tuple[str, ...]) -> str:
  """('dark', 'grey', 'light') -> 'dark, grey or light'."""
  return ", ".join(words[:-1]) + " or " + words[-1]


def _question(kind: int, template: int, attribute: int, asked: int) -> str:
  """The text of a question; `asked` is the class (is_class) or level (is_level) named."""
  name = QUESTION_KINDS[kind]
  text = TEMPLATES[name][template]
  if name == "which_level":
    words = ATTRIBUTE_WORDS[ATTRIBUTES[attribute]]
    return text.format(options=_options(words), attribute=ATTRIBUTES[attribute])
  if name == "is_class":
    return a_or_an(text.format(cls=CLASS_NAMES[asked]))
  if name == "is_level":
    return text.format(word=ATTRIBUTE_WORDS[ATTRIBUTES[attribute]][asked])
  return text


def question_strings() -> list[str]:
  """Every distinct question text, sorted."""
  texts = set(WHAT_CLASS_TEMPLATES)
  for a, attribute in enumerate(ATTRIBUTES):
    levels = len(ATTRIBUTE_WORDS[attribute])
    texts |= {_question(1, t, a, 0) for t in range(len(WHICH_LEVEL_TEMPLATES))}
    texts |= {_question(3, t, a, k) for t in range(len(IS_LEVEL_TEMPLATES))
              for k in range(levels)}
  texts |= {_question(2, t, 0, c) for t in range(len(IS_CLASS_TEMPLATES))
            for c in range(len(CLASS_NAMES))}
  return sorted(texts)


class Questions(NamedTuple):
  """n * per_image questions about n images.

  Attributes:
    image: (m,) int32, the image (its index in the split) each question is about.
    kind: (m,) int32 index into `QUESTION_KINDS`.
    attribute: (m,) int32 index into `ATTRIBUTES`; -1 for the class questions.
    texts: m strings.
    answer: (m,) int32 index into `ANSWERS`.
  """
  image: np.ndarray
  kind: np.ndarray
  attribute: np.ndarray
  texts: list[str]
  answer: np.ndarray


def make_questions(labels: np.ndarray, levels: np.ndarray, *, seed: int, split: str,
                   per_image: int) -> Questions:
  """`per_image` questions about each image, answered from its label and levels.

  Args:
    labels: (n,) int classes of the split's images, in order.
    levels: (n, 5) int attribute levels (`captions.attribute_levels`).
    seed: question seed.
    split: 'train' or 'test' (different generators).
    per_image: questions per image; question j of image i is example i * per_image + j.
  """
  labels, levels = np.asarray(labels), np.asarray(levels)
  if split not in _SPLIT_STREAMS:
    raise ValueError(f"split {split!r}; choose one of {sorted(_SPLIT_STREAMS)}")
  if per_image < 1:
    raise ValueError(f"per_image={per_image} must be at least 1")
  rng = np.random.default_rng([seed, _SPLIT_STREAMS[split]])
  shape = (len(labels), per_image)
  kind = rng.integers(len(QUESTION_KINDS), size=shape)
  attribute = rng.integers(len(ATTRIBUTES), size=shape)
  template_u, other_u = rng.random(shape), rng.random(shape)
  truthful = rng.random(shape) < 0.5  # a yes/no question names the true class or level
  kind, attribute, template_u, other_u, truthful = (
      x.ravel() for x in (kind, attribute, template_u, other_u, truthful))
  image = np.repeat(np.arange(len(labels), dtype=np.int32), per_image)
  label = labels[image]
  level = levels[image, attribute]
  num_levels = np.array([len(ATTRIBUTE_WORDS[a]) for a in ATTRIBUTES])[attribute]
  num_templates = np.array([len(TEMPLATES[k]) for k in QUESTION_KINDS])[kind]
  template = (template_u * num_templates).astype(np.int64)
  # A false statement names one of the other classes (levels) uniformly.
  wrong_class = (label + 1 + (other_u * (len(CLASS_NAMES) - 1)).astype(np.int64)) % len(
      CLASS_NAMES)
  wrong_level = (level + 1 + (other_u * (num_levels - 1)).astype(np.int64)) % num_levels
  asked = np.where(kind == 2, np.where(truthful, label, wrong_class),
                   np.where(truthful, level, wrong_level))
  words = [[ANSWERS.index(w) for w in ATTRIBUTE_WORDS[a]] for a in ATTRIBUTES]
  word_index = np.array([w + [-1] * (3 - len(w)) for w in words])  # (5, 3) -> ANSWERS
  level_word = word_index[attribute, level]
  answer = np.select([kind == 0, kind == 1, truthful], [label, level_word, ANSWERS.index(YES)],
                     ANSWERS.index(NO))
  texts = [_question(*args) for args in zip(kind, template, attribute, asked)]
  return Questions(image, kind.astype(np.int32),
                   np.where(kind % 2 == 0, -1, attribute).astype(np.int32), texts,
                   answer.astype(np.int32))


@dataclasses.dataclass(frozen=True, eq=False)
class QASource:
  """Random access to the questions of one split: `len`, `get_batch(indices) -> dict`:

  | key | shape, dtype |
  |---|---|
  | image | (b, 28, 28, 1) uint8, the image asked about |
  | label, attributes | (b,) int32 class, (b, 5) int32 levels of that image |
  | question, question_mask | (b, QUESTION_LENGTH) int32 byte tokens, bool |
  | answer | (b,) int32 index into `ANSWERS` |
  | kind, attribute | (b,) int32, as in `Questions` |
  | image_index | (b,) int32, the image's index in its Fashion-MNIST split |
  """
  images: np.ndarray  # (n, 28, 28, 1) uint8
  labels: np.ndarray  # (n,)
  levels: np.ndarray  # (n, 5)
  questions: Questions
  tokens: np.ndarray  # (m, QUESTION_LENGTH) int32
  name: str

  def __len__(self) -> int:
    return len(self.questions.answer)

  @property
  def num_answers(self) -> int:
    return len(ANSWERS)

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    image = self.questions.image[indices]
    tokens = self.tokens[indices]
    return {"image": self.images[image], "label": self.labels[image].astype(np.int32),
            "attributes": self.levels[image].astype(np.int32), "question": tokens,
            "question_mask": tokens != tokenizer.PAD_ID,
            "answer": self.questions.answer[indices], "kind": self.questions.kind[indices],
            "attribute": self.questions.attribute[indices], "image_index": image}


def qa_sources(train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
               test_labels: np.ndarray, *, seed: int = 0,
               per_image: int = 4) -> tuple[QASource, QASource]:
  """The train and test QA sources of two image splits ((n, 28, 28[, 1]) uint8 and (n,)
  labels); the attribute thresholds are fitted on the train images."""
  splits = {"train": (train_images, train_labels), "test": (test_images, test_labels)}
  measured = {s: measure_attributes(images) for s, (images, _) in splits.items()}
  thresholds = fit_thresholds(measured["train"], np.asarray(train_labels))
  sources = []
  for split, (images, labels) in splits.items():
    labels = np.asarray(labels)
    levels = attribute_levels(measured[split], labels, thresholds)
    questions = make_questions(labels, levels, seed=seed, split=split, per_image=per_image)
    tokens, _ = tokenizer.encode(questions.texts, QUESTION_LENGTH)
    images = np.asarray(images).reshape(len(labels), *np.shape(images)[1:3], 1)
    sources.append(QASource(images, labels, levels, questions, tokens,
                            name=f"fashion_mnist_qa/{split}"))
  return sources[0], sources[1]


def load_qa(*, seed: int = 0, per_image: int = 4,
            data_dir: str | None = None) -> tuple[QASource, QASource]:
  """The train and test QA sources of Fashion-MNIST (`load_fashion_mnist`): 60,000 train
  and 10,000 test images, `per_image` questions each."""
  train, test = load_fashion_mnist("train", data_dir), load_fashion_mnist("test", data_dir)
  return qa_sources(train.images, train.labels, test.images, test.labels, seed=seed,
                    per_image=per_image)


def lookup_baselines(train: QASource, test: QASource) -> dict[str, float]:
  """Test accuracy of two lookup tables fitted on the train questions: the most frequent
  answer of each question text (question only), and of each image description, its class
  and five levels (image only; everything an image tells about its answers). What a
  model that sees one input only can reach, and what a fused model must beat. A key
  that no train question has gets the most frequent train answer."""
  def accuracy(train_keys: np.ndarray, test_keys: np.ndarray) -> float:
    keys, group = np.unique(train_keys, axis=0, return_inverse=True)
    counts = np.zeros((len(keys), len(ANSWERS)), np.int64)
    np.add.at(counts, (group.ravel(), train.questions.answer), 1)
    table = {tuple(k): a for k, a in zip(keys.tolist(), counts.argmax(axis=1))}
    fallback = int(np.bincount(train.questions.answer, minlength=len(ANSWERS)).argmax())
    guess = np.array([table.get(tuple(k), fallback) for k in test_keys.tolist()])
    return float(np.mean(guess == test.questions.answer))

  texts = sorted(set(train.questions.texts) | set(test.questions.texts))
  text_id = {t: i for i, t in enumerate(texts)}
  question_keys = [np.array([[text_id[t]] for t in source.questions.texts])
                   for source in (train, test)]
  image_keys = [np.concatenate([source.labels[:, None], source.levels], axis=1)[
      source.questions.image] for source in (train, test)]
  return {"question_only": accuracy(*question_keys), "image_only": accuracy(*image_keys)}
