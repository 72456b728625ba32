"""DeCUR on the one train step, on the tiny multimodal data: the same loss and update on 1
and on 8 devices for image-text and image-speech, the step's loss is `decur_loss` of the
two views of each modality with the configured common dimensions, the views differ, and
configs are checked."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax import config as config_lib
from jejax import losses
from jejax.methods import Setup
from jejax.train import build
from jejax.train.step import init_state
from tests.methods.multimodal_steps import (BATCH, assert_config_error, batches, build_method,
                                            max_change, run_steps, tiny_multimodal_config)

DATA = {"text": "fashion_mnist_captions", "audio": "fashion_mnist_binding"}


def small_config(tiny_config, other="text", **block):
  c = tiny_multimodal_config(tiny_config, "decur")
  c.data.name = DATA[other]
  c.decur.modalities = ("image", other)
  for field, value in block.items():
    c.decur[field] = value
  return config_lib.validate(c)


@pytest.mark.parametrize("other", ["text", "audio"])
def test_one_and_eight_devices_agree(tiny_config, other):
  c = small_config(tiny_config, other)
  initial, state1, metrics1 = run_steps(c, 1)
  _, state8, metrics8 = run_steps(c, 8)
  for name in ("loss", "common", "unique", "intra_1", "intra_2"):
    np.testing.assert_allclose([m[name] for m in metrics8], [m[name] for m in metrics1],
                               rtol=1e-5, err_msg=name)
  for group in ("image_tower", "image_projector", f"{other}_tower", f"{other}_projector"):
    assert max_change(state1.params[group], initial.params[group]) > 1e-4, group  # moved
  for name in ("params", "batch_stats", "opt_state"):
    for a, b in zip(jax.tree.leaves(getattr(state1, name)),
                    jax.tree.leaves(getattr(state8, name))):
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("other, fraction, common_dim", [("text", 0.75, 12),
                                                         ("audio", 0.5, 8)])
def test_the_loss_is_decur_of_both_views_of_both_modalities(tiny_config, other, fraction,
                                                            common_dim):
  c = small_config(tiny_config, other, common_fraction=fraction)
  method, optimizer, example = build_method(c)
  assert method.common_dim == common_dim  # of model.embed_dim = 16
  state = init_state(method, optimizer, jax.random.key(0), example)
  batch = jax.tree.map(jnp.asarray, batches(c.data.name)[0])
  inputs = jax.jit(method.prepare)(jax.random.key(1), batch)
  # The two views of every modality differ (images: crops; text: deleted bytes; speech:
  # a time mask), and both views of a caption keep its first and last token.
  for name in ("image", other):
    assert not np.array_equal(inputs[name][0], inputs[name][1]), name
  outputs, _ = jax.jit(method.forward)(state.params, state.batch_stats, inputs)
  for z in (*outputs["image"], *outputs[other]):
    assert z.shape == (BATCH, 16)
  loss, metrics, _ = method.loss(outputs, None, inputs, state)
  (a, a_view), (b, b_view) = outputs["image"], outputs[other]
  want, _ = losses.decur_loss(a, a_view, b, b_view, common_dim=common_dim)
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  # Not the loss of other pairings: views of one modality against the other's.
  wrong, _ = losses.decur_loss(a, b, a_view, b_view, common_dim=common_dim)
  assert abs(float(wrong) - float(want)) > 1e-3


def test_the_image_speech_run_reads_the_speech_images(tiny_config):
  # The (image, speech) pairs of the binding data: the images spoken about, not the
  # images of the (disjoint) caption pairs.
  c = small_config(tiny_config, "audio")
  method, _, example = build_method(c)
  batch = jax.tree.map(jnp.asarray, example)
  views = lambda b: method.prepare(jax.random.key(0), b)["image"][0]  # noqa: E731
  np.testing.assert_array_equal(views({**batch, "image": batch["image"] * 0}), views(batch))
  assert not np.array_equal(views({**batch, "speech_image": batch["image"]}), views(batch))


@pytest.mark.parametrize("field, value, message", [
    ("decur.modalities", ("image", "video"), "one of"),
    ("decur.common_fraction", 1.5, "must lie in [0, 1]"),
    ("decur.text_deletion", 1.0, "must lie in [0, 1)"),
    ("augment.num_small_crops", 2, "no small crops"),
])
def test_config_errors_name_the_field(tiny_config, field, value, message):
  assert_config_error(small_config(tiny_config), field, value, message)


def test_batches_without_speech_are_refused(tiny_config):
  c = small_config(tiny_config, "audio")
  c.data.name = "fashion_mnist_captions"
  example = {k: v[:2] for k, v in batches("fashion_mnist_captions")[0].items()}
  with pytest.raises(ValueError, match=r"lack \['speech_image', 'audio', 'audio_length'\]"):
    build.build_method(c, Setup(total_steps=10, steps_per_epoch=5, example_batch=example))
