"""WAV reading (8/16/24-bit, stereo), mix-down, resampling to 16 kHz keeps a sine's
frequency, and files that are not audio fail naming the file."""

import gzip
import wave

import numpy as np
import pytest

from jejax.data import CorruptDataError, audio_io


def write_wav(path, samples, rate, sample_width=2):
  """samples (frames, channels) float in [-1, 1) -> a PCM WAV file."""
  scaled = np.round(samples * 2.0 ** (8 * sample_width - 1))
  if sample_width == 1:
    data = (scaled + 128).astype(np.uint8).tobytes()
  elif sample_width == 3:
    data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in scaled.ravel())
  else:
    data = scaled.astype(f"<i{sample_width}").tobytes()
  with wave.open(str(path), "wb") as f:
    f.setnchannels(samples.shape[1])
    f.setsampwidth(sample_width)
    f.setframerate(rate)
    f.writeframes(data)


def peak_frequency(x, rate):
  spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
  return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)]


@pytest.mark.parametrize("rate", [44100, 8000, 22050])
def test_resampling_keeps_a_sines_frequency(rate):
  f = 1000.0
  x = np.sin(2 * np.pi * f * np.arange(rate) / rate)  # 1 s
  y = audio_io.resample(x, rate, 16000)
  assert y.dtype == np.float32 and len(y) == 16000
  assert abs(peak_frequency(y, 16000) - f) <= 1.0  # 1 Hz bins
  # Negative control: reading the samples as if they were 16 kHz moves the tone.
  assert abs(peak_frequency(x.astype(np.float32), 16000) - f * 16000 / rate) <= 1.0
  np.testing.assert_allclose(np.abs(y[1000:-1000]).max(), 1.0, atol=0.01)  # no gain change


def test_resampling_removes_what_16khz_cannot_hold():
  rate = 44100
  x = np.sin(2 * np.pi * 12000 * np.arange(rate) / rate)  # above the new Nyquist, 8 kHz
  # Away from the ends, where the filter sees the zeros beyond the signal: < -60 dB.
  assert np.abs(audio_io.resample(x, rate, 16000)[100:-100]).max() < 1e-3


@pytest.mark.parametrize("sample_width", [1, 2, 3, 4])
def test_stereo_file_at_44khz_to_16khz_mono(tmp_path, sample_width):
  t = np.arange(44100) / 44100
  left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 440 * t)
  write_wav(tmp_path / "stereo.wav", np.stack([left, right], 1), 44100, sample_width)
  samples, rate = audio_io.read_wav(tmp_path / "stereo.wav")
  assert rate == 44100 and samples.shape == (44100, 2) and samples.dtype == np.float32
  np.testing.assert_allclose(samples[:, 0], left, atol=2.0 ** (1 - 8 * sample_width))
  mono = audio_io.load_audio(tmp_path / "stereo.wav")
  assert mono.shape == (16000,)
  assert abs(peak_frequency(mono, 16000) - 440) <= 1.0
  np.testing.assert_allclose(np.abs(mono[1000:-1000]).max(), 0.375, atol=0.01)  # the mean


def test_mix_down():
  samples = np.array([[1.0, -1.0], [0.5, 0.0]], np.float32)
  np.testing.assert_array_equal(audio_io.mix_down(samples), [0.0, 0.25])
  np.testing.assert_array_equal(audio_io.mix_down(samples[:, :1]), samples[:, 0])
  with pytest.raises(ValueError, match="frames, channels"):
    audio_io.mix_down(samples[:, 0])


# mtime=0: the same bytes in every test process (pytest-xdist compares the test ids).
@pytest.mark.parametrize("content", [b"", b"hello, not audio\n",
                                     gzip.compress(b"\0" * 64, mtime=0),
                                     b"RIFF\x10\0\0\0WAVEfmt "],
                         ids=["empty", "text", "gzip", "truncated_wav_header"])
def test_a_file_that_is_not_audio_names_itself(tmp_path, content):
  path = tmp_path / "notes.wav"
  path.write_bytes(content)
  with pytest.raises(CorruptDataError, match="notes.wav: not a PCM WAV audio file"):
    audio_io.load_audio(path)


def test_bytes_are_named_by_the_caller():
  with pytest.raises(CorruptDataError, match="espeak output: not a PCM WAV"):
    audio_io.read_wav(b"nonsense", name="espeak output")
