"""View recipes: config validation, full pipelines, identity view, sharding independence."""

import dataclasses

import chex
import jax
import numpy as np
import pytest

from jejax import augment
from jejax.parallel import data_sharding, make_mesh

SIZE = 16


def _uint8_images(n, channels, size=SIZE, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), np.uint8)


# Module-level jits: tests that use the same config and shapes share one compilation.
augment_batch = jax.jit(augment.augment_batch, static_argnames="cfg")
make_views = jax.jit(augment.make_views, static_argnames="recipes")

RECIPES = {
    "simclr": augment.simclr_views(SIZE)[0],
    "byol_1": augment.byol_views(SIZE)[0],
    "byol_2": augment.byol_views(SIZE)[1],
}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_views_are_float_and_a_function_of_the_key(recipe, channels):
  images = _uint8_images(16, channels)
  cfg = RECIPES[recipe]
  views = augment_batch(jax.random.key(0), images, cfg=cfg)
  chex.assert_shape(views, (16, SIZE, SIZE, channels))
  assert views.dtype == np.float32
  assert float(views.min()) >= 0.0 and float(views.max()) <= 1.0
  np.testing.assert_array_equal(views, augment_batch(jax.random.key(0), images, cfg=cfg))
  other = augment_batch(jax.random.key(1), images, cfg=cfg)
  assert not np.any(np.all(np.asarray(views) == np.asarray(other), axis=(1, 2, 3)))


def test_make_views_folds_the_view_index_into_the_key():
  # A cheap recipe keeps compilation short; the keying is the same for every recipe.
  cfg = augment.ViewConfig(out_size=12, crop_scale=(0.08, 1.0), flip_prob=0.5)
  images = _uint8_images(16, 3)
  key = jax.random.key(0)
  views = make_views(key, images, recipes=(cfg, cfg))
  assert len(views) == 2
  chex.assert_shape(views, (16, 12, 12, 3))
  assert not np.any(np.all(np.asarray(views[0]) == np.asarray(views[1]), axis=(1, 2, 3)))
  for v, view in enumerate(views):
    np.testing.assert_array_equal(
        view, augment_batch(jax.random.fold_in(key, v), images, cfg=cfg))


@pytest.mark.parametrize("channels, dtype", [(1, np.uint8), (3, np.float32)])
def test_identity_view_is_the_identity(channels, dtype):
  images = _uint8_images(8, channels)
  floats = images.astype(np.float32) / np.float32(255.0)
  out = augment_batch(jax.random.key(0), images if dtype == np.uint8 else floats,
                      cfg=augment.identity_view(SIZE))
  # uint8 -> float may divide by 255 as a multiplication by its reciprocal (1 ulp).
  np.testing.assert_allclose(out, floats, atol=1e-6 if dtype == np.uint8 else 0, rtol=0)


def test_augment_batch_does_not_depend_on_sharding():
  mesh = make_mesh(8)
  images = _uint8_images(16, 3)
  cfg = RECIPES["byol_2"]  # every op of the pipeline
  key = jax.random.key(0)
  single = augment_batch(key, images, cfg=cfg)
  sharded = augment_batch(key, jax.device_put(images, data_sharding(mesh)), cfg=cfg)
  assert len(sharded.sharding.device_set) == 8
  np.testing.assert_allclose(sharded, single, atol=1e-6, rtol=0)


def test_recipes_follow_the_papers():
  simclr, simclr_again = augment.simclr_views(32, color_strength=0.5, blur=False)
  assert simclr == simclr_again
  assert (simclr.brightness, simclr.contrast, simclr.saturation, simclr.hue) == (
      0.4, 0.4, 0.4, 0.1)
  assert (simclr.jitter_prob, simclr.grayscale_prob, simclr.blur_prob) == (0.8, 0.2, 0.0)
  assert augment.simclr_views(32)[0].blur_prob == 0.5
  view1, view2 = augment.byol_views(32)
  assert (view1.blur_prob, view1.solarize_prob, view2.blur_prob, view2.solarize_prob) == (
      1.0, 0.0, 0.1, 0.2)
  for view in (simclr, view1, view2):
    assert view.crop_scale == (0.08, 1.0) and view.flip_prob == 0.5
  # Configs are static jit arguments: hashable, and equal configs hash equal.
  assert hash(view1) == hash(dataclasses.replace(view2, blur_prob=1.0, solarize_prob=0.0))


@pytest.mark.parametrize("field, value", [
    ("flip_prob", 1.5),
    ("solarize_prob", -0.1),
    ("jitter_prob", float("nan")),
    ("crop_scale", (0.0, 1.0)),
    ("crop_scale", (0.5, 0.2)),
    ("crop_scale", (0.5, 1.2)),
    ("crop_ratio", (4 / 3, 3 / 4)),
    ("blur_sigma", (0.0, 1.0)),
    ("brightness", -0.1),
    ("hue", 0.6),
    ("noise_prob", 1.5),
    ("noise_std", -0.1),
    ("out_size", 0),
])
def test_view_config_rejects_bad_values(field, value):
  with pytest.raises(ValueError, match=field):
    dataclasses.replace(augment.identity_view(SIZE), **{field: value})


def test_view_config_turns_lists_into_tuples():
  cfg = augment.ViewConfig(out_size=SIZE, crop_scale=[0.5, 1.0])
  assert cfg.crop_scale == (0.5, 1.0)
  hash(cfg)


def test_noise_comes_last_and_leaves_the_other_draws_alone():
  # With std 0 the noise stage adds nothing, so the view must be the recipe's own view
  # (to float rounding: XLA fuses the program differently): the noise draws its own key
  # and takes none of the other stages' draws, which would move pixels by tenths.
  images = _uint8_images(8, 1)
  cfg = RECIPES["byol_2"]
  silent = dataclasses.replace(cfg, noise_prob=1.0, noise_std=0.0)
  key = jax.random.key(3)
  np.testing.assert_allclose(augment_batch(key, images, cfg=silent),
                             augment_batch(key, images, cfg=cfg), atol=1e-6)
  noisy = augment_batch(key, images, cfg=dataclasses.replace(silent, noise_std=0.2))
  assert 0.1 < float(np.std(noisy - augment_batch(key, images, cfg=cfg))) < 0.2
