"""CLIP, SigLIP and ImageBind-style binding on the one train step, on the tiny multimodal
data: the same loss and update on 1 and on 8 devices (the ring losses on 8 against the
dense ones on 1), the learnable logit parameters get gradients and are clamped as
open_clip's, gradient accumulation equals the whole batch, a frozen image tower stays
put, the binding run never reads a speech-text pair, and configs are checked."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax import config as config_lib
from jejax import losses
from jejax.checks import ConfigError
from jejax.methods import Setup
from jejax.train import build
from jejax.train.step import accumulated_loss_and_grads, init_state, loss_and_grads
from tests.methods.multimodal_steps import (assert_config_error, batches, build_method,
                                            max_change, run_steps, tiny_multimodal_config)


def small_config(tiny_config, method: str, **block):
  c = tiny_multimodal_config(tiny_config, method)
  if method == "imagebind":  # frozen towers need pretrained ones: their own test below
    c.model.pretrained, c.optim.frozen = None, ()
  for field, value in block.items():
    c[method][field] = value
  return config_lib.validate(c)


@functools.lru_cache(maxsize=None)
def _one_device(tiny_config, method):
  return run_steps(small_config(tiny_config, method), 1)


@pytest.mark.parametrize("method, block", [
    ("clip", {}), ("clip", {"loss_impl": "ring"}),
    ("siglip", {"loss_impl": "ring", "chunk_size": 1}), ("imagebind", {})],
    ids=["clip", "clip-ring", "siglip-ring-chunked", "imagebind"])
def test_one_and_eight_devices_agree(tiny_config, method, block):
  initial, state1, metrics1 = _one_device(tiny_config, method)  # dense, 1 device
  _, state8, metrics8 = run_steps(small_config(tiny_config, method, **block), 8)
  np.testing.assert_allclose([m["loss"] for m in metrics8], [m["loss"] for m in metrics1],
                             rtol=1e-5)
  assert max_change(state1.params, initial.params) > 1e-3  # the update is real
  for name in ("logit_scale", "logit_bias", "audio_logit_scale"):
    if name in initial.params and not (name == "audio_logit_scale"):
      assert abs(float(state1.params[name] - initial.params[name])) > 1e-4, name
  for name in ("params", "batch_stats", "opt_state"):
    for a, b in zip(jax.tree.leaves(getattr(state1, name)), jax.tree.leaves(getattr(state8, name))):
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)


def _grads(c):
  method, optimizer, example = build_method(c)
  state = init_state(method, optimizer, jax.random.key(0), example)
  batch = jax.tree.map(jnp.asarray, batches(c.data.name)[0])
  inputs = jax.jit(method.prepare)(jax.random.key(1), batch)
  return method, state, inputs, jax.jit(functools.partial(loss_and_grads, method=method))(
      state, inputs)


@pytest.mark.parametrize("learn", [False, True])
def test_binding_logit_scales_learn_as_configured(tiny_config, learn):
  c = small_config(tiny_config, "imagebind", learn_audio_temperature=learn)
  _, _, _, result = _grads(c)
  assert abs(float(result.grads["logit_scale"])) > 1e-5  # text: learnt, as CLIP's
  assert (abs(float(result.grads["audio_logit_scale"])) > 1e-5) == learn  # ImageBind: fixed
  assert float(result.metrics["audio_logit_scale"]) == pytest.approx(20.0)


def test_binding_without_image_text_is_clip_on_the_speech_pairs(tiny_config):
  c = small_config(tiny_config, "imagebind", image_text=False, learn_audio_temperature=True)
  method, state, inputs, result = _grads(c)
  outputs, _ = jax.jit(method.forward)(state.params, state.batch_stats, inputs)
  want = losses.clip_loss(outputs["audio_anchor"], outputs["audio"], temperature=1 / 20)
  np.testing.assert_allclose(result.loss, want, rtol=1e-5)
  assert "loss_image_text" not in result.metrics and "image" not in outputs
  # The text tower is left alone; the image tower and the audio scale learn.
  moved = lambda group: any(np.any(g) for g in jax.tree.leaves(result.grads[group]))  # noqa: E731
  assert not any(moved(group) for group in ("text_tower", "text_projection", "logit_scale"))
  assert moved("image_tower") and moved("audio_logit_scale")
  # Negative control: with the pair, the loss is another.
  _, _, _, paired = _grads(small_config(tiny_config, "imagebind"))
  assert abs(float(paired.loss) - float(result.loss)) > 1e-2


def test_logit_scale_is_clamped_after_the_update(tiny_config):
  method, optimizer, example = build_method(small_config(tiny_config, "siglip"))
  state = init_state(method, optimizer, jax.random.key(0), example)
  for value, want in ((6.0, np.log(100.0)), (-1.0, 0.0), (3.0, 3.0)):
    clamped = method.update(state.replace(params={**state.params, "logit_scale": value}), None)
    np.testing.assert_allclose(clamped.params["logit_scale"], want, rtol=1e-6)
  assert float(clamped.params["logit_bias"]) == -10.0  # the bias is not clamped


def test_accumulated_gradients_equal_the_whole_batch(tiny_config):
  # The logit parameters leave `forward` broadcast over the batch; split into
  # microbatches and merged, they must still give the whole batch's gradient. (A ViT
  # image tower: no BatchNorm, whose statistics would differ per microbatch.)
  c = small_config(tiny_config, "clip")
  c.model.backbone = "vit"
  method, state, inputs, whole = _grads(c)
  split = jax.jit(functools.partial(accumulated_loss_and_grads, method=method,
                                    accumulation_steps=2))(state, inputs)
  np.testing.assert_allclose(split.loss, whole.loss, rtol=1e-5)
  np.testing.assert_allclose(split.grads["logit_scale"], whole.grads["logit_scale"], rtol=1e-4)
  for a, b in zip(jax.tree.leaves(split.grads), jax.tree.leaves(whole.grads)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * max(1.0, np.abs(b).max()))


ALL_FROZEN = ("^image_tower/", "^image_projection/", "^text_tower/", "^text_projection/")


def frozen_binding_config(tiny_config, frozen=ALL_FROZEN):
  c = small_config(tiny_config, "imagebind")
  c.model.pretrained, c.optim.frozen = "/nonexistent/run", frozen
  return config_lib.validate(c)


@pytest.mark.parametrize("frozen", [("^image_tower/",), ("^image_projection/",), ALL_FROZEN])
def test_frozen_towers_stay_put(tiny_config, frozen):
  c = frozen_binding_config(tiny_config, frozen)
  c.optim.weight_decay = 0.0  # then only a gradient moves a trainable group
  initial, state, metrics = run_steps(c, 1)
  groups = [p.strip("^/") for p in frozen]
  for group in groups:
    jax.tree.map(np.testing.assert_array_equal, state.params[group], initial.params[group])
  if "image_tower" in groups:  # a frozen tower runs in inference mode
    jax.tree.map(np.testing.assert_array_equal, state.batch_stats, initial.batch_stats)
  # A frozen projection still passes its trainable tower the gradient.
  for group in {"image_tower", "image_projection", "text_tower", "audio_tower",
                "audio_projection"} - set(groups):
    assert max_change(state.params[group], initial.params[group]) > 1e-5, group
  # With image and text frozen the image-text pair is left out of the loss.
  assert ("loss_image_text" in metrics[-1]) == (frozen != ALL_FROZEN)


@pytest.mark.parametrize("anchor, read, unread", [
    ("image", "speech_image", "speech_text"), ("text", "speech_text", "speech_image")])
def test_binding_reads_only_its_anchor(tiny_config, anchor, read, unread):
  # The binding run never sees a speech-text pair: its inputs do not hold one.
  c = small_config(tiny_config, "imagebind", audio_anchor=anchor)
  method, _, example = build_method(c)
  inputs = method.prepare(jax.random.key(0), jax.tree.map(jnp.asarray, example))
  assert read in inputs and unread not in inputs and not any(unread in k for k in inputs)


@pytest.mark.parametrize("field, value, message", [
    ("imagebind.audio_anchor", "speech", "one of"),
    ("model.pretrained", None, "frozen image_tower, image_projection, text_tower, "
     "text_projection (optim.frozen) need pretrained values"),
    ("imagebind.audio_temperature", 0.0, "must lie in (0, 1]"),
])
def test_binding_config_errors_name_the_field(tiny_config, field, value, message):
  assert_config_error(frozen_binding_config(tiny_config), field, value, message)


@pytest.mark.parametrize("method", ["clip", "siglip"])
def test_clip_and_siglip_refuse_frozen_towers(tiny_config, method):
  # They run every tower in training mode: a frozen one's BatchNorm statistics would drift.
  c = small_config(tiny_config, method)
  c.optim.frozen = ("^image_tower/",)
  with pytest.raises(ConfigError, match=re.escape("config.optim.frozen=") + ".*imagebind"):
    config_lib.validate(c)


@pytest.mark.parametrize("method", ["clip", "siglip"])
def test_ring_chunk_must_divide_a_device_rows(tiny_config, method):
  c = small_config(tiny_config, method)
  c[method].loss_impl, c[method].chunk_size = "ring", 3  # 16 pairs on 2 devices: 8 each
  with pytest.raises(ConfigError, match=f"config.{method}.chunk_size=3: must divide the 8"):
    config_lib.validate(c)


def test_image_only_data_is_refused_naming_it(tiny_config):
  c = small_config(tiny_config, "clip")
  c.data.name = "fashion_mnist"
  example = {"image": np.zeros((2, 28, 28, 1), np.uint8), "label": np.zeros(2, np.int32)}
  with pytest.raises(ValueError, match=r"config.data.name='fashion_mnist' lack \['text', "
                     r"'text_mask'\]"):
    build.build_method(c, Setup(10, 5, example))
