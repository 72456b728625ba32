"""Speech synthesised offline by espeak-ng, in many voices, rates and pitches.

Debian's `espeak-ng` (1.51, `apt-get install -y espeak-ng`) speaks English in 8 accents,
each combinable with 100 voice variants (`+m3`, `+f2`, `+whisper`, `+klatt`, ...): 800
voices (`VOICES`, id = accent * 100 + variant). A voice is `{accent}+{variant}`; rate
(words per minute) and pitch (0-99) are drawn per clip.

Held-out voices: every fifth variant (`VOICE_VARIANTS[::5]`, 20 of 100) in every accent
is never used for training, only for evaluation, so a test clip's voice variant is one
the model has not heard in any accent (`HELD_OUT_VOICES`, `TRAIN_VOICES`).

espeak-ng runs as a subprocess that writes a 22,050 Hz 16-bit mono WAV to stdout (its
header's frame count is a placeholder, see `audio_io.read_wav`), which is resampled to
16 kHz. `speak` runs two at a time: two threads each wait on one espeak-ng process, so
two cores synthesise, as a pool of two processes would, without forking a Python process
that may hold JAX's threads (fork after JAX starts can deadlock) or spawning interpreters
that import jejax again. espeak-ng's output is a pure function of its text and settings,
so every build gives the same samples.

Example:
  >>> waveform = synthesize('a dark sandal', voice=TRAIN_VOICES[0], rate=175, pitch=50)
  >>> waveform.dtype, waveform.shape[0] / 16000 < 2
  (dtype('float32'), True)
"""

from __future__ import annotations

import concurrent.futures
import functools
import shutil
import subprocess
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from jejax.data.audio_io import SAMPLE_RATE, mix_down, read_wav, resample
from jejax.data.errors import DataError, DataNotFoundError

# English accents of espeak-ng 1.51 (`espeak-ng --voices=en`, its MBROLA voices aside).
VOICE_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                 "en-gb-x-gbcwmd", "en-029", "en-us-nyc")

# The variant files of espeak-ng 1.51 (`espeak-data/voices/!v/`, sorted), without
# "Mr serious", whose name has a space. Fixed here, not listed at run time, so that a
# voice id means the same voice on every machine.
VOICE_VARIANTS = (
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Demonic", "Denis",
    "Diogo", "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario",
    "Michael", "Mike", "Nguyen", "RicishayMax", "RicishayMax2", "RicishayMax3",
    "Storm", "Tweaky", "UniRobot", "adam", "anika", "anikaRobot", "announcer",
    "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "croak", "david",
    "ed", "edward", "edward2", "f1", "f2", "f3", "f4", "f5", "fast", "grandma",
    "grandpa", "gustave", "iven", "iven2", "iven3", "iven4", "john", "kaukovalta",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "linda", "m1", "m2",
    "m3", "m4", "m5", "m6", "m7", "m8", "marcelo", "max", "michel", "miguel",
    "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "robosoft",
    "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7",
    "robosoft8", "sandro", "shelby", "steph", "steph2", "steph3", "travis", "victor",
    "whisper", "whisperf", "zac",
)

# voice id -> espeak-ng's -v argument.
VOICES = tuple(f"{accent}+{variant}"
               for accent in VOICE_ACCENTS for variant in VOICE_VARIANTS)
HELD_OUT_VARIANTS = VOICE_VARIANTS[::5]
HELD_OUT_VOICES = tuple(v for v in range(len(VOICES)) if v % len(VOICE_VARIANTS) % 5 == 0)
TRAIN_VOICES = tuple(v for v in range(len(VOICES)) if v % len(VOICE_VARIANTS) % 5 != 0)

# Ranges the builders draw from (inclusive); espeak-ng's defaults are 175 and 50.
RATES = (160, 230)
PITCHES = (20, 80)

# Where speech ends: the last sample above -60 dBFS (silence after it is espeak-ng's
# closing pause).
_SILENCE = 2.0 ** -10

_INSTALL = ("install it with `apt-get install -y espeak-ng` (Debian/Ubuntu; `make data` "
            "does this), or your system's espeak-ng 1.51 package")


@functools.lru_cache(maxsize=None)
def check_espeak() -> str:
  """espeak-ng's version ('eSpeak NG text-to-speech: 1.51'), after checking that it runs
  and has every variant of `VOICE_VARIANTS`.

  Raises:
    DataNotFoundError: espeak-ng is not installed, or lacks some variants (another
      version); says how to install it.
  """
  if shutil.which("espeak-ng") is None:
    raise DataNotFoundError(f"espeak-ng is not installed: {_INSTALL}")
  # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/...": the path is no part of it.
  version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                           check=True).stdout.split("Data at")[0].strip()
  listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True,
                           text=True, check=True).stdout
  # A row names the file, "!v/<variant>" (the file name, not the display name), then
  # maybe other languages.
  files = {line.split("!v/")[1].split()[0] for line in listing.splitlines() if "!v/" in line}
  missing = [v for v in VOICE_VARIANTS if v not in files]
  if missing:
    raise DataNotFoundError(
        f"{version} lacks the voice variants {missing}; jejax's voices are those of "
        f"espeak-ng 1.51: {_INSTALL}")
  return version


def synthesize(text: str, *, voice: int, rate: int, pitch: int) -> np.ndarray:
  """`text` spoken by voice id `voice` at `rate` words per minute and `pitch` (0-99):
  (T,) float32 in [-1, 1] at 16 kHz, espeak-ng's closing pause included.

  Raises:
    DataError: espeak-ng failed or wrote no audio; names the text and voice.
  """
  if not 0 <= voice < len(VOICES):
    raise ValueError(f"voice id {voice} outside [0, {len(VOICES)})")
  # The text goes through stdin, so a text that starts with '-' is not an option.
  command = ["espeak-ng", "-v", VOICES[voice], "-s", str(rate), "-p", str(pitch), "--stdout"]
  result = subprocess.run(command, input=text.encode("utf-8"), capture_output=True)
  what = f"espeak-ng, voice {VOICES[voice]}, rate {rate}, pitch {pitch}, text {text!r}"
  if result.returncode != 0 or not result.stdout:
    raise DataError(f"{what}: exit {result.returncode}, {result.stderr.decode().strip()}")
  samples, sample_rate = read_wav(result.stdout, name=f"output of {what}")
  return resample(mix_down(samples), sample_rate, SAMPLE_RATE)


def speech_length(waveform: np.ndarray) -> int:
  """Samples up to the end of the speech: the last sample above -60 dBFS, + 1."""
  loud = np.flatnonzero(np.abs(waveform) > _SILENCE)
  return int(loud[-1]) + 1 if len(loud) else 0


def _fixed_length(waveform: np.ndarray, num_samples: int) -> np.ndarray:
  """(T,) float -> (num_samples,) int16: trimmed at the end, or zero-padded."""
  out = np.zeros(num_samples, np.int16)
  clip = np.clip(np.round(waveform[:num_samples] * 32768.0), -32768, 32767)
  out[:len(clip)] = clip.astype(np.int16)
  return out


def speak(texts: Sequence[str], voices: np.ndarray, rates: np.ndarray, pitches: np.ndarray,
          *, num_samples: int, workers: int = 2, progress: bool = False,
          desc: str = "speech", out: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
  """Synthesises n clips, `workers` espeak-ng processes at a time.

  Args:
    texts: n strings.
    voices, rates, pitches: (n,) int each.
    num_samples: length of every clip at 16 kHz (e.g. 48,000 for 3 s).
    progress: show a tqdm bar labelled `desc`.
    out: (n, num_samples) int16 to write the clips into, e.g. a memory-mapped .npy
      file, so that gigabytes of speech need not fit in memory.

  Returns:
    audio: (n, num_samples) int16 (PCM; divide by 32768 for [-1, 1]), trimmed at the
      end or zero-padded; `out` when given.
    speech_lengths: (n,) int32, samples up to the end of the speech before trimming
      (`speech_length`); above num_samples where the end was cut.
  """
  n = len(texts)
  if not len(voices) == len(rates) == len(pitches) == n:
    raise ValueError(
        f"{n} texts need as many voices, rates and pitches, got {len(voices)}, "
        f"{len(rates)}, {len(pitches)}")
  audio = np.zeros((n, num_samples), np.int16) if out is None else out
  if audio.shape != (n, num_samples) or audio.dtype != np.int16:
    raise ValueError(f"out must be ({n}, {num_samples}) int16, got {audio.dtype} "
                     f"{audio.shape}")
  check_espeak()

  def clip(i: int) -> tuple[np.ndarray, int]:
    waveform = synthesize(texts[i], voice=int(voices[i]), rate=int(rates[i]),
                          pitch=int(pitches[i]))
    return _fixed_length(waveform, num_samples), speech_length(waveform)

  lengths = np.zeros(n, np.int32)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    # map keeps the order of the inputs, whichever clip finishes first.
    results = pool.map(clip, range(n))
    for i, (waveform, length) in enumerate(
        tqdm(results, total=n, desc=desc, disable=not progress, unit="clip")):
      audio[i], lengths[i] = waveform, length
  return audio, lengths
