"""experiments/ijepa_tokens.py: the share of token variance that position explains, and
tokens whose mean is the feature the evaluation reads."""

import sys
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import ijepa_tokens  # noqa: E402

from jejax.models import ViT  # noqa: E402
from jejax.models.jepa import IJEPAModel, Predictor  # noqa: E402


def test_position_share_is_one_for_position_alone_and_zero_for_content_alone():
  rng = np.random.default_rng(0)
  by_position = rng.normal(size=(1, 9, 4))  # (1, N, D): the same at every image
  content = rng.normal(size=(50, 1, 4))  # (n, 1, D): the same at every position
  assert np.isclose(ijepa_tokens.position_share(np.broadcast_to(by_position, (50, 9, 4))), 1.0)
  assert np.isclose(ijepa_tokens.position_share(np.broadcast_to(content, (50, 9, 4))), 0.0)


def test_position_share_is_the_between_positions_part_of_the_total_variance():
  rng = np.random.default_rng(1)
  tokens = rng.normal(size=(40, 6, 3)) + 2.0 * rng.normal(size=(1, 6, 3))
  # Law of total variance, in float64 with explicit loops: total = between + within.
  grand = tokens.mean(axis=(0, 1))
  within = sum(((tokens[:, t] - tokens[:, t].mean(0)) ** 2).mean(0).sum() for t in range(6)) / 6
  total = ((tokens - grand) ** 2).mean(axis=(0, 1)).sum()
  assert np.isclose(ijepa_tokens.position_share(tokens), 1 - within / total)


def test_the_mean_of_the_tokens_is_the_evaluated_feature():
  encoder = ViT(width=16, depth=1, num_heads=2, patch_size=4)
  model = IJEPAModel(encoder, Predictor(8, 1, 2, 16))
  images = jax.random.uniform(jax.random.key(0), (3, 8, 12, 1))
  variables = model.init(jax.random.key(1), images, method="features")
  tokens = ijepa_tokens.encoder_tokens(model, variables, images)  # (3, 2 * 3 * 16)
  assert tokens.shape == (3, 6 * 16)
  np.testing.assert_allclose(tokens.reshape(3, 6, 16).mean(axis=1),
                             model.apply(variables, images, method="features"),
                             rtol=1e-5, atol=1e-6)
