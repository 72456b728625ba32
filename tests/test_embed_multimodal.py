"""The embed_multimodal command on a tiny binding run (trained a step by the main loop
from a SimCLR backbone, frozen): zero-shot and retrieval tables for audio files and
captions; audio at another rate and channel count embeds as its 16 kHz mono original;
bad input is refused naming it, with nothing written. On tiny DeCUR runs (image-text and
image-speech, a step each): the space compared is the one DeCUR's loss aligns (the
common block of its cross-correlation), what a run has a tower for works, and what it
has none for is refused saying so."""

import json
import wave

import jax
import numpy as np
import optax
import pytest
from scipy import signal

from jejax import data, embed_multimodal, losses
from jejax.data.paired import BUILDS
from jejax.methods import Setup
from jejax.train import build, loop
from jejax.train.checkpoint import Checkpointer
from jejax.train.step import init_state
from tests.methods.multimodal_steps import tiny_multimodal_config


def write_wav(path, samples: np.ndarray, rate: int) -> None:
  """(frames,) or (frames, channels) float in [-1, 1] -> a 16-bit PCM WAV."""
  samples = samples.reshape(len(samples), -1)
  with wave.open(str(path), "wb") as f:
    f.setnchannels(samples.shape[1])
    f.setsampwidth(2)
    f.setframerate(rate)
    f.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_config):
  """(binding run workdir, SimCLR workdir whose backbone it took)."""
  root = tmp_path_factory.mktemp("runs")
  c = tiny_config("simclr")
  image = np.zeros((2, 28, 28, 1), np.uint8)
  simclr = build.build_method(c, Setup(10, 5, {"image": image}))
  state = init_state(simclr, optax.sgd(0.1), jax.random.key(3), {"image": image})
  checkpointer = Checkpointer(root / "simclr" / "checkpoints", every_steps=1, keep=1)
  checkpointer.save(state, 1, force=True)
  checkpointer.wait_until_finished()
  (root / "simclr" / "config.json").write_text(c.to_json_best_effort())

  c = tiny_config("imagebind")
  c.data.multimodal_build = "tiny"
  c.model.text.width, c.model.text.depth, c.model.text.num_heads = 16, 1, 2
  c.model.audio.size = "nano"
  c.model.pretrained = str(root / "simclr")
  c.optim.frozen = ("^image_tower/",)  # SimCLR has a backbone, no text tower or projection
  c.num_steps = 1
  run, trained, _ = loop.train(c, root / "binding")
  # The loop took the image tower from the SimCLR checkpoint, and it stayed frozen.
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(trained.params["image_tower"]),
               jax.device_get(state.params["backbone"]))
  return root / "binding", root / "simclr"


def test_audio_at_another_rate_and_channel_count_embeds_like_the_original(runs, tmp_path,
                                                                          capsys):
  workdir, _ = runs
  test = data.load_multimodal("test", "speech", config=data.multimodal.TINY, progress=False)
  clip = test.get_batch(np.array([0]))
  sound = clip["audio"][0, :clip["audio_length"][0]]
  audio = tmp_path / "audio"
  audio.mkdir()
  write_wav(audio / "a_16k_mono.wav", sound, 16000)
  loud_left = signal.resample_poly(sound, 441, 160)  # 44.1 kHz
  write_wav(audio / "b_44k_stereo.wav", np.stack([0.8 * loud_left, 0.6 * loud_left], 1), 44100)
  out = tmp_path / "embeddings.npz"
  assert embed_multimodal.main(["--workdir", str(workdir), "--audio-dir", str(audio),
                                "--zero-shot", "--out", str(out)]) == 0
  table = capsys.readouterr().out
  assert "a_16k_mono.wav" in table and "b_44k_stereo.wav" in table and "runner-up" in table
  e = np.load(out)["embeddings"]
  cosine = e[0] @ e[1] / np.linalg.norm(e[0]) / np.linalg.norm(e[1])
  assert cosine > 0.99, cosine  # resampled, mixed down, 0.7x as loud: the same clip


def test_captions_zero_shot_and_retrieval(runs, tmp_path, capsys):
  workdir, _ = runs
  captions = tmp_path / "captions.txt"
  captions.write_text("a photo of a dark small sandal\nthis coat is wide and patterned\n")
  assert embed_multimodal.main(["--workdir", str(workdir), "--captions", str(captions)]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[1].split()[:2] == ["input", "class"] and len(lines) == 5  # header, rule, 2
  assert embed_multimodal.main(["--workdir", str(workdir), "--captions", str(captions),
                                "--retrieve", "--top", "3"]) == 0
  table = capsys.readouterr().out
  assert table.count("test image") == 6


@pytest.mark.parametrize("case", ["not_audio", "empty_caption", "long_caption", "no_wavs"])
def test_bad_input_is_refused_naming_it_and_nothing_is_written(runs, tmp_path, capsys, case):
  workdir, _ = runs
  if case == "not_audio":
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "notes.wav").write_text("these are not samples")
    args, named = ["--audio-dir", str(tmp_path / "clips")], "notes.wav: not a PCM WAV"
  elif case == "no_wavs":
    (tmp_path / "clips").mkdir()
    args, named = ["--audio-dir", str(tmp_path / "clips")], "clips: no .wav files"
  else:
    text = "a dress\n\nan ankle boot\n" if case == "empty_caption" else "x" * 60 + "\n"
    (tmp_path / "captions.txt").write_text(text)
    args = ["--captions", str(tmp_path / "captions.txt")]
    named = ("captions.txt, line 2: empty caption" if case == "empty_caption"
             else "captions.txt, line 1: caption of 62 tokens")
  out = tmp_path / "out.npz"
  refused(["--workdir", str(workdir), *args, "--out", str(out)], named, capsys)
  assert not out.exists()


def refused(argv, named, capsys):
  """The command exits with status 2, printing one error line that names the input and a
  hint, no traceback."""
  with pytest.raises(SystemExit) as exit_info:
    embed_multimodal.main(argv)
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and named in err.splitlines()[0], err
  assert "hint: " in err and "Traceback" not in err


def test_another_model_or_method_is_refused(runs, tmp_path, capsys):
  workdir, simclr = runs
  captions = tmp_path / "captions.txt"
  captions.write_text("a dress\n")
  # The run's checkpoint read with a config of a wider text tower.
  other = json.loads((workdir / "config.json").read_text())
  other["model"]["text"]["width"] = 32
  (tmp_path / "other.json").write_text(json.dumps(other))
  refused(["--workdir", str(workdir), "--config", str(tmp_path / "other.json"),
           "--captions", str(captions)], "does not match the config", capsys)
  refused(["--workdir", str(simclr), "--captions", str(captions)], "is a simclr run", capsys)


@pytest.fixture(scope="module")
def decur_runs(tmp_path_factory, tiny_config):
  """{'text': workdir, 'audio': workdir} of DeCUR runs on images and captions, and on
  images and speech, trained a step each."""
  root = tmp_path_factory.mktemp("decur")
  workdirs = {}
  for other, name in (("text", "fashion_mnist_captions"), ("audio", "fashion_mnist_binding")):
    c = tiny_multimodal_config(tiny_config, "decur")
    c.data.name, c.decur.modalities, c.num_steps = name, ("image", other), 1
    loop.train(c, root / other)
    workdirs[other] = root / other
  return workdirs


@pytest.mark.parametrize("other", ["text", "audio"])
def test_decur_space_is_the_common_block_its_loss_aligns(decur_runs, other):
  # Over the statistics' own pairs, the mean product of the two modalities' common-space
  # embeddings is the common block of the loss's cross-correlation of the raw ones.
  run, raw, _ = embed_multimodal.load_run(decur_runs[other])
  build = BUILDS["tiny"]
  space = embed_multimodal.common_space(raw, build, count=64)
  pairs = data.load_multimodal("train", {"text": "text", "audio": "speech"}[other],
                               config=build, progress=False).get_batch(np.arange(64))
  embed = lambda e: (e.images(pairs["image"]),  # noqa: E731
                     e.texts(pairs["text"], pairs["text_mask"]) if other == "text"
                     else e.audio(pairs["audio"], pairs["audio_length"]))
  (image, second), (raw_image, raw_second) = embed(space), embed(raw)
  k = run.method.common_dim
  assert image.shape == second.shape == (64, k) and raw_image.shape[1] == 16 > k
  want = losses.cross_correlation(raw_image, raw_second)[:k, :k]
  np.testing.assert_allclose(image.T @ second / 64, want, atol=1e-4)
  # The raw embeddings' cosines are not those of the space (offsets, unique dimensions).
  assert not np.allclose(image.T @ second / 64, raw_image[:, :k].T @ raw_second[:, :k] / 64,
                         atol=1e-2)


def test_decur_image_text_run_classifies_and_retrieves_captions(decur_runs, tmp_path, capsys):
  captions = tmp_path / "captions.txt"
  captions.write_text("a photo of a dark small sandal\nthis coat is wide and patterned\n")
  workdir = str(decur_runs["text"])
  assert embed_multimodal.main(["--workdir", workdir, "--captions", str(captions)]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[1].split()[:2] == ["input", "class"] and len(lines) == 5
  assert embed_multimodal.main(["--workdir", workdir, "--captions", str(captions),
                                "--retrieve", "--top", "3"]) == 0
  assert capsys.readouterr().out.count("test image") == 6
  (tmp_path / "clips").mkdir()
  refused(["--workdir", workdir, "--audio-dir", str(tmp_path / "clips")],
          "run of image, text: no audio tower for --audio-dir", capsys)


def test_decur_image_speech_run_retrieves_images_for_audio(decur_runs, tmp_path, capsys):
  test = data.load_multimodal("test", "speech", config=data.multimodal.TINY, progress=False)
  clips = test.get_batch(np.arange(2))
  audio = tmp_path / "audio"
  audio.mkdir()
  for i in range(2):
    write_wav(audio / f"{i}.wav", clips["audio"][i, :clips["audio_length"][i]], 16000)
  workdir = str(decur_runs["audio"])
  assert embed_multimodal.main(["--workdir", workdir, "--audio-dir", str(audio),
                                "--retrieve", "--top", "3"]) == 0
  assert capsys.readouterr().out.count("test image") == 6
  refused(["--workdir", workdir, "--audio-dir", str(audio)],
          "no text tower to embed the class prompts of --zero-shot; use --retrieve", capsys)
  (tmp_path / "captions.txt").write_text("a dress\n")
  refused(["--workdir", workdir, "--captions", str(tmp_path / "captions.txt"), "--retrieve"],
          "run of image, audio: no text tower for --captions", capsys)
