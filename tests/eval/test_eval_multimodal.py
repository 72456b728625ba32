"""Zero-shot classification and cross-modal retrieval on hand-built embeddings: CLIP's
prompt ensembling, recall@k with one partner or a relevance matrix, both against values
worked out by hand, chance recall against an enumeration of every ranking, and the whole
evaluation of the tiny test split through a class oracle and through noise."""

import itertools
import os
import shutil

import numpy as np
import pytest

from jejax.data import multimodal as multimodal_data
from jejax.data import tokenizer
from jejax.data.captions import CLASS_NAMES, caption_describes
from jejax.eval import multimodal


def test_class_embedding_is_the_normalised_mean_of_normalised_prompts():
  # Class 0: prompts along x (length 5) and y (length 1): unit mean (1, 1) / sqrt 2, the
  # long prompt does not outweigh the short one. Class 1: one direction twice.
  prompts = np.array([[[5.0, 0.0], [0.0, 1.0]], [[0.0, -2.0], [0.0, -3.0]]])
  np.testing.assert_allclose(multimodal.class_embeddings(prompts),
                             [[2 ** -0.5, 2 ** -0.5], [0.0, -1.0]], atol=1e-7)
  with pytest.raises(ValueError, match="classes, prompts, D"):
    multimodal.class_embeddings(prompts[0])


def test_zero_shot_picks_the_most_cosine_similar_class():
  classes = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
  queries = np.array([[10.0, 1.0], [0.1, 0.2], [-3.0, 2.0], [0.0, -1.0]])
  # cosines: q0 -> class 0; q1 -> class 1; q2 -> class 2 (cos .83 vs .55); q3: classes 0
  # and 2 tie at 0 and class 1 is -1, so the lower index, 0, wins.
  np.testing.assert_array_equal(multimodal.zero_shot_predict(queries, classes), [0, 1, 2, 0])
  assert multimodal.zero_shot_accuracy(queries, [0, 1, 2, 2], classes) == 0.75


def test_recall_with_one_partner_each():
  # Query i's partner is gallery i. Query 0: partner ranked 1st; query 1: 2nd (gallery 2 is
  # closer); query 2: 3rd (gallery 0, then 1, are closer).
  queries = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.5, 0.2]])
  gallery = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  gallery[1] = [0.0, 1.0, -0.5]
  scores = queries @ gallery.T
  assert np.argsort(-scores[1])[:2].tolist() == [2, 1]
  np.testing.assert_allclose(list(multimodal.cross_modal_recall(
      queries, gallery, ks=(1, 2, 3)).values()), [1 / 3, 2 / 3, 1.0])


def test_recall_with_a_relevance_matrix():
  queries = np.eye(3)
  gallery = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.9, 0.1, 0.0]])
  relevant = np.array([[False, False, False, True],
                       [True, False, False, False],
                       [False, False, False, False]])  # no right answer: always a miss
  # Query 0 ranks gallery 1 (cos 1), 3 (.99), 0, 2: its answer, 3, is 2nd.
  # Query 1 ranks gallery 0 first: a hit at 1.
  got = multimodal.cross_modal_recall(queries, gallery, ks=(1, 2, 4), relevant=relevant)
  np.testing.assert_allclose([got[1], got[2], got[4]], [1 / 3, 2 / 3, 2 / 3])
  with pytest.raises(ValueError, match=r"relevant must be \(Q, G\)"):
    multimodal.cross_modal_recall(queries, gallery, relevant=relevant.T)
  with pytest.raises(ValueError, match="Q must equal G"):
    multimodal.cross_modal_recall(queries, gallery)


def test_chance_recall_equals_the_mean_over_every_ranking():
  rng = np.random.default_rng(0)
  relevant = rng.random((4, 6)) < 0.3
  relevant[0] = False  # a query with no answer: recall 0 under any ranking
  for k in (1, 2, 3):
    hits = [np.mean([relevant[q, list(order[:k])].any() for q in range(4)])
            for order in itertools.permutations(range(6))]
    np.testing.assert_allclose(multimodal.chance_recall(relevant, (k,))[k], np.mean(hits),
                               rtol=1e-12)
  # One partner each: k / G.
  np.testing.assert_allclose(multimodal.chance_recall(np.eye(50, dtype=bool), (1, 5))[5],
                             0.1)


def test_a_caption_describes_the_images_it_is_true_of():
  labels = np.array([3, 3, 3, 4])
  levels = np.array([[0, 1, 0, 0, 1], [0, 2, 0, 1, 1], [2, 1, 1, 0, 0], [0, 1, 0, 0, 1]])
  mentions = np.zeros((4, 5), bool)
  mentions[0, [0, 4]] = True  # "a dark patterned dress": tone 0, texture 1
  mentions[1, [1, 3]] = True  # size 2, symmetry 1
  mentions[2, [0, 2]] = True  # tone 2, shape 1
  mentions[3, [0, 1]] = True
  want = np.array([[1, 1, 0, 0],    # caption 0 is true of images 0 and 1, not 2 (tone),
                   [0, 1, 0, 0],    # nor 3 (another class)
                   [0, 0, 1, 0],
                   [0, 0, 0, 1]], bool)
  np.testing.assert_array_equal(caption_describes(labels, levels, mentions, chunk=3), want)


class ClassOracle:
  """An `Embed` that maps every image, caption, prompt and clip of the tiny test split to
  the one-hot vector of its class (looked up by content), or to noise (`noise=True`)."""

  def __init__(self, source, noise=False):
    batch = source.get_batch(np.arange(len(source)))
    self.by_image = {x.tobytes(): y for x, y in zip(batch["image"], batch["label"])}
    self.by_audio = {x.tobytes(): y for x, y in zip(batch["audio"], batch["label"])}
    self.noise = np.random.default_rng(0) if noise else None

  def _out(self, labels):
    if self.noise is not None:
      return self.noise.normal(size=(len(labels), 10))
    return np.eye(10)[np.asarray(labels)]

  def images(self, images):
    return self._out([self.by_image[x.tobytes()] for x in images])

  def texts(self, tokens, mask):
    # The longest name first: "t-shirt" before "shirt".
    order = sorted(range(10), key=lambda c: -len(CLASS_NAMES[c]))
    return self._out([next(c for c in order if CLASS_NAMES[c] in text)
                      for text in tokenizer.decode(tokens)])

  def audio(self, waveforms, lengths):
    return self._out([self.by_audio[x.tobytes()] for x in waveforms])


@pytest.fixture(scope="module")
def tiny_test():
  source = multimodal_data.load_multimodal("test", "text_speech", config=multimodal_data.TINY,
                                           progress=False)
  return source, multimodal_data.load_class_prompts(config=multimodal_data.TINY,
                                                    progress=False)


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist")
                    or shutil.which("espeak-ng") is None,
                    reason="Fashion-MNIST or espeak-ng absent: make data")
def test_evaluate_with_a_class_oracle_and_with_noise(tiny_test):
  source, prompts = tiny_test
  oracle = multimodal.evaluate(ClassOracle(source), source, prompts, audio=True)
  assert oracle["image_zero_shot"] == oracle["speech_zero_shot"] == 1.0
  noise = multimodal.evaluate(ClassOracle(source, noise=True), source, prompts, audio=True)
  assert noise["image_zero_shot"] < 0.3 and noise["speech_zero_shot"] < 0.3
  for direction in ("image_to_text", "text_to_image", "speech_to_text", "text_to_speech",
                    "speech_to_image", "image_to_speech"):
    # A class oracle beats chance (it knows the class, not the attributes); noise does not.
    assert oracle[f"{direction}_r10"] > oracle[f"chance_{direction}_r10"] + 0.1, direction
    assert noise[f"{direction}_r10"] < noise[f"chance_{direction}_r10"] + 0.15, direction
