"""Log-mel spectrogram against a float64 NumPy reference written here from the formulas
(loops, no shared code), hand values of Slaney's mel scale, sines in their mel bins."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax import audio


def reference_log_mel(x, *, window, rate=16000, win=400, hop=160, n_fft=512, mels=64,
                      floor=1e-10):
  """float64 log-mel, one frame and one filter at a time.

  Slaney's mel scale (Auditory Toolbox): f < 1 kHz -> 3 f / 200; above,
  15 + 27 * log(f / 1000) / log(6.4). Filter m is a triangle over mel points m, m+1,
  m+2 (equally spaced from 0 to rate / 2), of peak height 2 / (width in Hz)."""
  def mel(f):
    return 3 * f / 200 if f < 1000 else 15 + 27 * np.log(f / 1000) / np.log(6.4)

  def hz(m):
    return 200 * m / 3 if m < 15 else 1000 * 6.4 ** ((m - 15) / 27)

  points = [hz(mel(0.0) + k * (mel(rate / 2) - mel(0.0)) / (mels + 1)) for k in range(mels + 2)]
  freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
  bank = np.zeros((mels, len(freqs)))
  for m in range(mels):
    lo, mid, hi = points[m:m + 3]
    for k, f in enumerate(freqs):
      if lo < f <= mid:
        bank[m, k] = (f - lo) / (mid - lo)
      elif mid < f < hi:
        bank[m, k] = (hi - f) / (hi - mid)
    bank[m] *= 2 / (hi - lo)
  out = []
  for start in range(0, len(x) - win + 1, hop):
    power = np.abs(np.fft.rfft(x[start:start + win] * window, n=n_fft)) ** 2
    out.append(np.log(np.maximum(bank @ power, floor)))
  return np.array(out)


def periodic_hann(n):
  return np.hanning(n + 1)[:-1]  # the symmetric window of n + 1 points, last one dropped


def test_against_float64_reference():
  rng = np.random.default_rng(0)
  t = np.arange(8000) / 16000
  waveforms = np.stack([0.1 * rng.standard_normal(8000),
                        0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(8000)])
  ours = np.asarray(jax.jit(audio.log_mel_spectrogram)(waveforms))
  assert ours.shape == (2, audio.frame_count(8000), 64) == (2, 48, 64)
  for x, got in zip(waveforms, ours):
    want = reference_log_mel(x, window=periodic_hann(400))
    np.testing.assert_allclose(got, want, atol=5e-4)
    # Negative control: a rectangular window is far off, so the tolerance is telling.
    assert np.abs(got - reference_log_mel(x, window=np.ones(400))).max() > 0.5


def test_slaney_mel_scale_hand_values():
  np.testing.assert_allclose(audio.hz_to_mel([0, 200 / 3, 1000, 6400]), [0, 1, 15, 42])
  f = np.array([50.0, 999.0, 1000.0, 2500.0, 8000.0])
  np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel(f)), f)


def test_filterbank_shape_and_coverage():
  bank = audio.mel_filterbank()
  assert bank.shape == (257, 64)
  assert ((bank > 0).sum(0) >= 2).all()  # no empty filter
  with pytest.raises(ValueError, match="f_max"):
    audio.mel_filterbank(f_max=9000)


def test_sine_peaks_in_its_mel_bin():
  edges = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(8000), 66))
  t = np.arange(16000) / 16000
  for m in (3, 12, 30, 50, 62):
    f = edges[m + 1]  # filter m's centre
    spectrogram = audio.log_mel_spectrogram(np.sin(2 * np.pi * f * t)[None])
    assert int(jnp.argmax(spectrogram[0].mean(0))) == m, (m, f)


def test_silence_is_the_floor_and_bad_shapes_fail():
  out = audio.log_mel_spectrogram(jnp.zeros((1, 800)), floor=1e-8)
  np.testing.assert_allclose(out, np.log(1e-8), rtol=1e-6)
  with pytest.raises(ValueError, match=r"\(B, T\)"):
    audio.log_mel_spectrogram(jnp.zeros(800))
  with pytest.raises(ValueError, match="fewer than one window"):
    audio.log_mel_spectrogram(jnp.zeros((1, 399)))
