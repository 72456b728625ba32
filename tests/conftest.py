"""Every test process sees 8 fake CPU devices, so 1-vs-8-device tests need no subprocess.
The `tiny_config` fixture shrinks an experiment config to a test-sized model."""

import atexit
import os
import pathlib
import shutil
import tempfile

import pytest

# The tests compile hundreds of tiny programs, so compiling, not running, takes most of
# their time; LLVM at -O1 compiles faster than XLA's default -O2 (tests/train/
# test_step_equivalence.py: 224 s against 295 s on 2 cores, the same tests passing). The
# library itself keeps XLA's default.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    " --xla_backend_optimization_level=1").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Every run builds its own jitted step, so tests that train several runs of one config
# (resume, 1 vs 8 devices, the loop) compile the same program again and again. XLA's
# persistent cache, keyed by the program and its compile options, compiles each once per
# session. The pytest-xdist workers and the subprocesses the tests start inherit the
# variables from the first process, so they share one directory, removed at its exit.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jejax-tests-xla-")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXPERIMENT_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "configs"


def experiment_config(method: str):
  """`experiments/configs/<method>.py`'s config."""
  from jejax import config as config_lib  # after XLA_FLAGS is set above
  return config_lib.load(EXPERIMENT_CONFIGS / f"{method}.py")


@pytest.fixture(scope="session")
def tiny_config():
  """`tiny_config(method, batch_size=16)`: the method's experiment config (its views,
  heads and hyperparameters) with a model small enough for tests: two conv stages,
  32-wide heads, 16-d embeddings, 12 prototypes, a queue of 4 batches, 8 px small crops;
  for ViT methods a 48-wide, 2-block ViT and a 1-block predictor or decoder; on 2
  devices (tests that compare device counts build their own meshes: 8 fake devices on 2
  cores make every collective wait for 8 threads)."""
  def make(method: str, batch_size: int = 16):
    c = experiment_config(method)
    c.num_devices = 2
    c.batch_size = batch_size
    c.model.convnet.widths = (8, 16)
    c.model.projector_hidden = (32,) * len(c.model.projector_hidden)
    c.model.embed_dim = 16
    if c.model.predictor_hidden:
      c.model.predictor_hidden = (32,)
    if c.model.num_prototypes:
      c.model.num_prototypes = 12
    c.moco_v2.queue_size = 4 * batch_size
    c.model.vit.size = "nano"
    c.ijepa.predictor_width, c.ijepa.predictor_depth = 24, 1
    c.mae.decoder_width, c.mae.decoder_depth, c.mae.decoder_heads = 16, 1, 2
    c.augment.small_crop_size = 8
    c.eval.every_epochs = 0.0
    c.checkpoint.every_steps = 100
    c.log_every_steps = 1
    c.progress_bar = False
    return c
  return make
