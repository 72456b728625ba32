"""Zero-shot classification and cross-modal retrieval on hand-built embeddings: CLIP's
prompt ensembling, recall@k with one partner or a relevance matrix, both against values
worked out by hand, and chance recall against an enumeration of every ranking."""

import itertools

import numpy as np
import pytest

from jejax.data.captions import caption_describes
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
