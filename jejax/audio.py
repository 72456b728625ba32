"""Log-mel spectrograms in JAX, for speech on the device inside the train step.

`log_mel_spectrogram` is a pure, jittable function `(B, T) waveforms -> (B, frames, mels)`:

1. frames of `window_length` samples every `hop_length` samples, no padding:
   frames = 1 + (T - window_length) // hop_length (298 for 3 s at 16 kHz);
2. a periodic Hann window (`scipy.signal.get_window('hann', n)`, torch's
   `hann_window` default);
3. `rfft` of n_fft points (the window zero-padded at the end; the magnitude is the same
   as with centred padding), power |X|^2;
4. a mel filterbank (`mel_filterbank`): Slaney's mel scale (linear below 1 kHz,
   logarithmic above) with Slaney's area normalisation, as librosa's default and
   Whisper's front end;
5. natural log, floored at `floor` so that silence (zero padding) stays finite.

Defaults: 16 kHz, 25 ms window (400), 10 ms hop (160), n_fft 512, 64 mel bins from 0 to
8 kHz. With 64 bins the linear part of the scale spaces the filters 47 Hz apart, wider
than the 31.25 Hz FFT bins, so every filter spans at least two bins.

Reference: Slaney, Auditory Toolbox (Interval Research TR 1998-010), `mfcc.m`; librosa
`filters.mel(htk=False, norm='slaney')`.

Example:
  >>> waveforms = jnp.zeros((8, 48000))
  >>> jax.jit(log_mel_spectrogram)(waveforms).shape
  (8, 298, 64)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

SAMPLE_RATE = 16000

# Slaney's scale: 3 mels per 200/3 Hz below 1 kHz, then a log step of ln(6.4) / 27.
_F_BREAK = 1000.0
_MEL_BREAK = 15.0
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: ArrayLike) -> np.ndarray:
  """Slaney's mel scale: linear (f / (200/3)) below 1 kHz, logarithmic above."""
  hz = np.asarray(hz, np.float64)
  log_part = _MEL_BREAK + np.log(np.maximum(hz, _F_BREAK) / _F_BREAK) / _LOG_STEP
  return np.where(hz < _F_BREAK, hz / (200.0 / 3.0), log_part)


def mel_to_hz(mel: ArrayLike) -> np.ndarray:
  """The inverse of `hz_to_mel`."""
  mel = np.asarray(mel, np.float64)
  log_part = _F_BREAK * np.exp(_LOG_STEP * (np.maximum(mel, _MEL_BREAK) - _MEL_BREAK))
  return np.where(mel < _MEL_BREAK, mel * (200.0 / 3.0), log_part)


def mel_filterbank(*, num_mels: int = 64, n_fft: int = 512, sample_rate: int = SAMPLE_RATE,
                   f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
  """Triangular filters on Slaney's mel scale, area-normalised (Slaney's norm).

  Filter m rises from Hz edge m to edge m+1 and falls to edge m+2, where the
  num_mels + 2 edges are equally spaced in mel from f_min to f_max; its height is
  2 / (edge[m+2] - edge[m]), so every filter has the same area.

  Returns:
    (n_fft // 2 + 1, num_mels) float64: power spectrum (..., bins) @ it -> (..., mels).
  """
  f_max = sample_rate / 2 if f_max is None else f_max
  if not 0 <= f_min < f_max <= sample_rate / 2:
    raise ValueError(
        f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}, "
        f"sample_rate={sample_rate}")
  edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), num_mels + 2))
  bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)  # (n_fft // 2 + 1,)
  lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # (num_mels,) each
  rising = (bins[:, None] - lower) / (center - lower)
  falling = (upper - bins[:, None]) / (upper - center)
  weights = np.maximum(0.0, np.minimum(rising, falling))
  return weights * (2.0 / (upper - lower))


def frame_count(num_samples: int, *, window_length: int = 400, hop_length: int = 160) -> int:
  """Frames `log_mel_spectrogram` makes of `num_samples` samples."""
  if num_samples < window_length:
    raise ValueError(f"{num_samples} samples are fewer than one window ({window_length})")
  return 1 + (num_samples - window_length) // hop_length


def log_mel_spectrogram(waveforms: ArrayLike, *, sample_rate: int = SAMPLE_RATE,
                        window_length: int = 400, hop_length: int = 160, n_fft: int = 512,
                        num_mels: int = 64, f_min: float = 0.0, f_max: float | None = None,
                        floor: float = 1e-10) -> jax.Array:
  """Log-mel spectrogram of a batch of waveforms (see the module docstring).

  Args:
    waveforms: (B, T) float, e.g. in [-1, 1] at `sample_rate`; T >= window_length.
    floor: smallest mel power before the log; log(floor) is the value of silence.

  Returns:
    (B, frames, num_mels) float32, frames = `frame_count(T, ...)`.
  """
  if window_length > n_fft:
    raise ValueError(f"window_length {window_length} is longer than n_fft {n_fft}")
  waveforms = jnp.asarray(waveforms, jnp.float32)
  if waveforms.ndim != 2:
    raise ValueError(f"waveforms must be (B, T), got shape {waveforms.shape}")
  frames = frame_count(waveforms.shape[1], window_length=window_length,
                       hop_length=hop_length)
  # (frames, window_length) sample indices; a gather, which XLA fuses with the window.
  index = hop_length * np.arange(frames)[:, None] + np.arange(window_length)
  # Periodic Hann: 0.5 - 0.5 cos(2 pi n / N), n < N.
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window_length) / window_length)
  windowed = waveforms[:, index] * window.astype(np.float32)  # (B, frames, window)
  spectrum = jnp.fft.rfft(windowed, n=n_fft, axis=-1)  # (B, frames, n_fft // 2 + 1)
  power = jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2
  filters = mel_filterbank(num_mels=num_mels, n_fft=n_fft, sample_rate=sample_rate,
                           f_min=f_min, f_max=f_max).astype(np.float32)
  # HIGHEST: on TPUs the default precision multiplies f32 matrices in bf16 passes.
  mel = jnp.matmul(power, filters, precision=jax.lax.Precision.HIGHEST)  # (B, frames, mels)
  return jnp.log(jnp.maximum(mel, floor))


def valid_frames(lengths: ArrayLike, num_frames: int, *, hop_length: int = 160) -> jax.Array:
  """(B,) samples of sound at the start of each clip (the rest zero padding) -> (B, frames)
  bool: True on the frames of `log_mel_spectrogram` that start inside the sound."""
  starts = hop_length * jnp.arange(num_frames)  # (frames,)
  return starts[None, :] < jnp.asarray(lengths)[:, None]
