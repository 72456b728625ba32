"""The multimodal towers: shapes, padding that does not change the output (with a negative
control: without the mask it does), the tokenizer's vocabulary, and the joint model's
parameters (names, initial logit scale and bias, their parameter groups)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax import config as config_lib
from jejax.audio import log_mel_spectrogram, valid_frames
from jejax.data import tokenizer
from jejax.models import TOWERS, AudioViT, ConvNet, MultimodalModel, TextTransformer
from jejax.train import optim

CAPTIONS = ["a photo of a dark small sandal", "this coat is wide and patterned"]


def _text(pool):
  return TextTransformer(vocab_size=tokenizer.VOCAB_SIZE, width=16, depth=1, num_heads=2,
                         pool=pool)


def test_text_vocabulary_is_the_tokenizers():
  assert TOWERS.get("text").defaults["vocab_size"] == tokenizer.VOCAB_SIZE


@pytest.mark.parametrize("pool", ["end", "mean"])
def test_text_padding_does_not_change_the_features(pool):
  model = _text(pool)
  tokens, mask = tokenizer.encode(CAPTIONS, 72)
  params = model.init(jax.random.key(0), tokens, mask)
  features = model.apply(params, tokens, mask)
  assert features.shape == (2, 16) and features.dtype == jnp.float32
  # Less padding, and garbage ids where the mask is False: the same features.
  short, short_mask = tokenizer.encode(CAPTIONS, 40)
  np.testing.assert_allclose(model.apply(params, short, short_mask), features, atol=1e-5)
  garbage = np.where(mask, tokens, np.random.default_rng(0).integers(3, 259, tokens.shape))
  np.testing.assert_allclose(model.apply(params, garbage, mask), features, atol=1e-5)
  # Negative control: the same garbage seen (mask all True) changes them.
  seen = model.apply(params, garbage, np.ones_like(mask))
  assert np.max(np.abs(seen - features)) > 1e-3


def test_text_context_length_cuts_long_texts():
  model = TextTransformer(vocab_size=tokenizer.VOCAB_SIZE, context_length=12, width=16,
                          depth=1, num_heads=2, pool="mean")
  tokens, mask = tokenizer.encode(CAPTIONS, 72)
  params = model.init(jax.random.key(0), tokens, mask)
  np.testing.assert_allclose(model.apply(params, tokens, mask),
                             model.apply(params, tokens[:, :12], mask[:, :12]), atol=1e-6)


def _speech(seed=0, length=30000):
  """(2, 48000) waveforms: `length` samples of tones in white noise (every mel bin well
  above the log floor), then zeros."""
  rng = np.random.default_rng(seed)
  t = np.arange(48000) / 16000
  waves = np.stack([0.5 * np.sin(2 * np.pi * f * t) + 0.05 * rng.normal(size=48000)
                    for f in (300.0, 1200.0)]).astype(np.float32)
  waves[:, length:] = 0
  return waves, np.full(2, length, np.int32)


def test_audio_features_ignore_the_tokens_after_the_sound():
  model = AudioViT(size="nano", patch_size=16)
  waves, lengths = _speech()
  log_mel = log_mel_spectrogram(waves)  # (2, 298, 64)
  valid = valid_frames(lengths, log_mel.shape[1])
  params = model.init(jax.random.key(0), log_mel, valid)
  features = model.apply(params, log_mel, valid)
  assert log_mel.shape == (2, 298, 64) and features.shape == (2, 48)
  # Sound ends in frame 187: token rows 0..11 start inside it (frames < 192); rows from
  # 12 (frames 192 on) are padding, whatever they hold.
  garbage = log_mel.at[:, 192:].set(np.random.default_rng(1).normal(size=(2, 106, 64)) * 5)
  np.testing.assert_allclose(model.apply(params, garbage, valid), features, atol=1e-5)
  # Negative controls: a change inside the sound, or the same garbage marked valid, shows.
  inside = log_mel.at[:, 40:50].add(3.0)
  assert np.max(np.abs(model.apply(params, inside, valid) - features)) > 1e-3
  all_valid = jnp.ones_like(valid)
  assert np.max(np.abs(model.apply(params, garbage, all_valid)
                       - model.apply(params, log_mel, all_valid))) > 1e-3


def test_audio_features_do_not_depend_on_loudness():
  # Each clip is standardised over its sound: a gain is a constant in the log domain.
  # (The sound fills whole tokens, 12 rows of 16 frames: a token that straddles its end
  # would hold silence at the log floor, which a gain does not shift.)
  model = AudioViT(size="nano", patch_size=16)
  waves, lengths = _speech(length=160 * 192)
  log_mel = log_mel_spectrogram(waves)
  valid = valid_frames(lengths, log_mel.shape[1])
  params = model.init(jax.random.key(0), log_mel, valid)
  np.testing.assert_allclose(model.apply(params, log_mel_spectrogram(0.25 * waves), valid),
                             model.apply(params, log_mel, valid), atol=1e-4)


def test_joint_model_parameters_and_their_groups():
  model = MultimodalModel(image_tower=ConvNet((8, 16)), text_tower=_text("end"),
                          audio_tower=AudioViT(size="nano"), embed_dim=12,
                          logit_scale_init=float(np.log(1 / 0.07)), logit_bias_init=-10.0)
  tokens, mask = tokenizer.encode(CAPTIONS, 72)
  waves, lengths = _speech()
  log_mel = log_mel_spectrogram(waves)
  variables = model.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)), tokens, mask, log_mel,
                         valid_frames(lengths, 298))
  params = variables["params"]
  assert set(params) == {"image_tower", "text_tower", "audio_tower", "image_projection",
                         "text_projection", "audio_projection", "logit_scale", "logit_bias",
                         "audio_logit_scale"}
  np.testing.assert_allclose(np.exp(params["logit_scale"]), 1 / 0.07, rtol=1e-6)
  np.testing.assert_allclose(np.exp(params["audio_logit_scale"]), 20.0, rtol=1e-6)
  assert float(params["logit_bias"]) == -10.0
  out = model.apply(variables, jnp.zeros((2, 28, 28, 1)), tokens, mask, log_mel,
                    valid_frames(lengths, 298), train=False)
  assert {k: out[k].shape for k in ("image", "text", "audio")} == {
      "image": (2, 12), "text": (2, 12), "audio": (2, 12)}
  # No weight decay on the logit parameters; '^image_tower/' freezes the image tower only.
  decay = optim.decay_mask(params)
  assert not any(decay[k] for k in ("logit_scale", "logit_bias", "audio_logit_scale"))
  assert decay["text_projection"]["kernel"]
  labels = optim.frozen_labels(params, ("^image_tower/",))
  assert set(jax.tree.leaves(labels["image_tower"])) == {"frozen"}
  assert set(jax.tree.leaves({k: v for k, v in labels.items() if k != "image_tower"})) == {
      "trainable"}


def test_tower_blocks_are_in_the_base_config():
  c = config_lib.base_config()
  assert c.model.text.to_dict() == TOWERS.get("text").defaults
  assert c.model.audio.to_dict() == TOWERS.get("audio").defaults
