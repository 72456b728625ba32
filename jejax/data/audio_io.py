"""Audio on the host: WAV files and bytes to 16 kHz mono float32 waveforms.

`read_wav` parses PCM WAV (8, 16, 24 or 32-bit integers) with the standard library's
`wave`; `mix_down` averages channels; `resample` changes the rate with a polyphase
windowed-sinc filter (`scipy.signal.resample_poly`: a Kaiser-windowed FIR low-pass at
the lower Nyquist frequency, applied at the up/down rational factor, as audio
libraries' band-limited resamplers do); `load_audio` does all three for one file.

Example:
  >>> waveform = load_audio('speech.wav')  # any rate, any channels
  >>> waveform.dtype, waveform.ndim
  (dtype('float32'), 1)
"""

from __future__ import annotations

import io
import math
import os
import wave

import numpy as np
from scipy import signal

from jejax.data.errors import CorruptDataError

SAMPLE_RATE = 16000


def _pcm_to_float(data: bytes, sample_width: int, channels: int) -> np.ndarray:
  """Little-endian PCM bytes -> (frames, channels) float32 in [-1, 1)."""
  if sample_width == 1:  # 8-bit WAV is unsigned, centred on 128
    values = np.frombuffer(data, np.uint8).astype(np.float32) - 128.0
  elif sample_width == 3:  # 24-bit: widen each sample to 4 bytes, sign from the top one
    raw = np.frombuffer(data, np.uint8).reshape(-1, 3)
    padded = np.zeros((len(raw), 4), np.uint8)
    padded[:, 1:] = raw
    values = padded.view("<i4")[:, 0].astype(np.float32) / 256.0
  else:
    values = np.frombuffer(data, f"<i{sample_width}").astype(np.float32)
  frames = len(values) // channels  # a cut-off last frame is dropped
  return values[:frames * channels].reshape(frames, channels) / 2.0 ** (8 * sample_width - 1)


def read_wav(source: str | os.PathLike | bytes, *, name: str | None = None
             ) -> tuple[np.ndarray, int]:
  """A PCM WAV file, or its bytes -> (samples (frames, channels) float32, sample rate).

  A header whose frame count is larger than the data (as espeak-ng writes when it
  streams to stdout) reads the frames that are there.

  Args:
    source: a path, or the file's bytes.
    name: how errors name bytes (a path names itself).

  Raises:
    CorruptDataError: naming the file, for anything that is not a readable PCM WAV
      (another format, text, an empty or truncated file, compressed or float WAV).
  """
  name = name or (os.fspath(source) if not isinstance(source, bytes) else "<bytes>")
  try:
    with wave.open(io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source),
                   "rb") as f:
      channels, sample_width, rate = f.getnchannels(), f.getsampwidth(), f.getframerate()
      data = f.readframes(f.getnframes())
  except (wave.Error, EOFError) as e:
    raise CorruptDataError(f"{name}: not a PCM WAV audio file ({e})") from e
  if sample_width not in (1, 2, 3, 4) or channels < 1 or rate <= 0:
    raise CorruptDataError(
        f"{name}: unsupported WAV layout ({channels} channels, {8 * sample_width}-bit, "
        f"{rate} Hz)")
  return _pcm_to_float(data, sample_width, channels), rate


def mix_down(samples: np.ndarray) -> np.ndarray:
  """(frames, channels) -> (frames,): the mean of the channels (a mono file passes
  through unchanged)."""
  samples = np.asarray(samples)
  if samples.ndim != 2:
    raise ValueError(f"samples must be (frames, channels), got shape {samples.shape}")
  return samples.mean(axis=1, dtype=np.float32)


def resample(waveform: np.ndarray, rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
  """(..., T) at `rate` -> (..., T * target_rate / rate rounded up) float32 at
  `target_rate`, band-limited (polyphase windowed sinc, `scipy.signal.resample_poly`)."""
  if rate <= 0 or target_rate <= 0:
    raise ValueError(f"sample rates must be positive, got {rate} -> {target_rate}")
  waveform = np.asarray(waveform, np.float32)
  if rate == target_rate:
    return waveform
  g = math.gcd(rate, target_rate)
  return signal.resample_poly(waveform, target_rate // g, rate // g, axis=-1).astype(np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """A WAV file as a mono float32 waveform (T,) at `sample_rate`: `read_wav`,
  `mix_down`, `resample`. Raises `CorruptDataError` naming the file if it is not audio."""
  samples, rate = read_wav(path)
  return resample(mix_down(samples), rate, sample_rate)
