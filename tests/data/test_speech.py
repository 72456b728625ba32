"""espeak-ng speech: voices and their held-out split, synthesis, fixed-length clips."""

import shutil

import numpy as np
import pytest

from jejax.data import DataNotFoundError, speech

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng absent: apt-get install -y espeak-ng")


def test_held_out_voices_are_whole_variants_in_every_accent():
  held_out, train = set(speech.HELD_OUT_VOICES), set(speech.TRAIN_VOICES)
  assert not held_out & train and held_out | train == set(range(len(speech.VOICES)))
  assert len(speech.VOICES) == 800 and len(held_out) == 160
  held_out_variants = {speech.VOICES[v].split("+")[1] for v in held_out}
  train_variants = {speech.VOICES[v].split("+")[1] for v in train}
  assert held_out_variants == set(speech.HELD_OUT_VARIANTS)
  assert not held_out_variants & train_variants
  assert {speech.VOICES[v].split("+")[0] for v in held_out} == set(speech.VOICE_ACCENTS)


@needs_espeak
def test_synthesis_is_deterministic_and_follows_its_settings():
  voice = speech.TRAIN_VOICES[0]
  slow = speech.synthesize("a dark small sandal", voice=voice, rate=160, pitch=50)
  again = speech.synthesize("a dark small sandal", voice=voice, rate=160, pitch=50)
  fast = speech.synthesize("a dark small sandal", voice=voice, rate=230, pitch=50)
  other = speech.synthesize("a dark small sandal", voice=speech.TRAIN_VOICES[1], rate=160,
                            pitch=50)
  assert slow.dtype == np.float32 and np.abs(slow).max() <= 1
  np.testing.assert_array_equal(slow, again)
  length = speech.speech_length(slow)
  assert 0.5 * 16000 < length < 2.5 * 16000
  # 230 vs 160 words per minute: about 160 / 230 of the time.
  assert 0.55 < speech.speech_length(fast) / length < 0.85
  assert len(other) != len(slow) or not np.array_equal(other, slow)


@needs_espeak
def test_speak_pads_and_trims_in_order():
  texts = ["a bag", "a photo of a light large wide patterned pullover", "a coat"]
  audio, lengths = speech.speak(texts, np.array(speech.TRAIN_VOICES[:3]), np.full(3, 175),
                                np.full(3, 50), num_samples=24000)
  assert audio.shape == (3, 24000) and audio.dtype == np.int16
  assert lengths[1] > 24000 > lengths[0]  # the long one is cut at 1.5 s
  # After the speech: espeak-ng's closing pause (below -60 dBFS), then zero padding.
  assert np.abs(audio[0, lengths[0]:]).max() <= 32 and (audio[0, -1000:] == 0).all()
  assert np.abs(audio[0, :lengths[0]]).max() > 1000 and np.abs(audio[1, -1000:]).max() > 32
  one_worker, _ = speech.speak(texts, np.array(speech.TRAIN_VOICES[:3]), np.full(3, 175),
                               np.full(3, 50), num_samples=24000, workers=1)
  np.testing.assert_array_equal(audio, one_worker)
  with pytest.raises(ValueError, match="3 texts need as many"):
    speech.speak(texts, np.zeros(2, int), np.zeros(3, int), np.zeros(3, int), num_samples=10)


def test_missing_espeak_says_how_to_install(monkeypatch):
  speech.check_espeak.cache_clear()
  monkeypatch.setattr(speech.shutil, "which", lambda name: None)
  try:
    with pytest.raises(DataNotFoundError, match="apt-get install -y espeak-ng"):
      speech.check_espeak()
  finally:
    speech.check_espeak.cache_clear()


@needs_espeak
def test_espeak_has_every_variant():
  assert speech.check_espeak().startswith("eSpeak NG text-to-speech")
