"""`model.pretrained`: a run's backbone taken from another run's checkpoint, found by its
arrays wherever it sits (a SimCLR backbone into a binding model's image tower), with the
arrays at the same paths (a CLIP run's towers, projections and scale); a checkpoint of
another backbone, or none, is refused naming it."""

import jax
import numpy as np
import optax
import pytest

from jejax.methods import Setup
from jejax.train import build, pretrained
from jejax.train.checkpoint import Checkpointer, CheckpointMismatchError
from jejax.train.step import init_state

IMAGE = np.zeros((2, 28, 28, 1), np.uint8)


def _init(method, key, example):
  return init_state(method, optax.sgd(0.1), key, example)


def saved_simclr_run(tiny_config, workdir, widths):
  """A SimCLR state (its params moved off their init) saved as a run's checkpoint."""
  c = tiny_config("simclr")
  c.model.convnet.widths = widths
  method = build.build_method(c, Setup(10, 5, {"image": IMAGE}))
  state = _init(method, jax.random.key(3), {"image": IMAGE})
  state = state.replace(params=jax.tree.map(lambda p: p + 0.5, state.params),
                        batch_stats=jax.tree.map(lambda s: s + 0.25, state.batch_stats))
  checkpointer = Checkpointer(workdir / "checkpoints", every_steps=1, keep=1)
  checkpointer.save(state, 7, force=True)
  checkpointer.wait_until_finished()
  return jax.device_get(state)


EXAMPLE = {"image": IMAGE, "label": np.zeros(2, np.int32), "text": np.ones((2, 72), np.int32),
           "text_mask": np.ones((2, 72), bool), "speech_image": IMAGE,
           "audio": np.zeros((2, 48000), np.float32), "audio_length": np.full(2, 48000, np.int32)}


def tower_state(tiny_config, method, pretrained_path=None, key=0, text_width=16):
  c = tiny_config(method)
  c.model.text.width, c.model.text.depth, c.model.text.num_heads = text_width, 1, 2
  c.model.audio.size = "nano"
  c.model.pretrained = None if pretrained_path is None else str(pretrained_path)
  built = build.build_method(c, Setup(10, 5, EXAMPLE))
  return c, jax.device_get(_init(built, jax.random.key(key), EXAMPLE))


def binding_state(tiny_config, pretrained_path, frozen=("^image_tower/",)):
  c, state = tower_state(tiny_config, "imagebind", pretrained_path)
  c.optim.frozen = frozen  # the config's (all four groups) needs a CLIP run
  return c, state


def test_the_backbone_is_found_and_grafted(tiny_config, tmp_path):
  simclr = saved_simclr_run(tiny_config, tmp_path, (8, 16))
  c, state = binding_state(tiny_config, tmp_path)  # the workdir: its checkpoints/ is used
  grafted, taken = pretrained.with_pretrained(state, c, (28, 28, 1))
  assert taken == ["image_tower"]
  jax.tree.map(np.testing.assert_array_equal, grafted.params["image_tower"],
               simclr.params["backbone"])
  jax.tree.map(np.testing.assert_array_equal, grafted.batch_stats["image_tower"],
               simclr.batch_stats["backbone"])
  for name in set(state.params) - {"image_tower"}:  # everything else as initialised
    jax.tree.map(np.testing.assert_array_equal, grafted.params[name], state.params[name])


def test_a_checkpoint_of_another_backbone_is_refused(tiny_config, tmp_path):
  saved_simclr_run(tiny_config, tmp_path, (8, 32))  # wider than the config's (8, 16)
  c, state = binding_state(tiny_config, tmp_path / "checkpoints")
  with pytest.raises(CheckpointMismatchError,
                     match=r"checkpoints \(step 7\) holds no group of arrays shaped like "
                           r"config.model.backbone='convnet'.*groups \['backbone', "
                           r"'projector'\]"):
    pretrained.with_pretrained(state, c, (28, 28, 1))


def test_no_checkpoint_is_refused_naming_the_path(tiny_config, tmp_path):
  c, state = binding_state(tiny_config, tmp_path / "nothing")
  with pytest.raises(FileNotFoundError, match="config.model.pretrained=.*nothing.*no checkpoint"):
    pretrained.with_pretrained(state, c, (28, 28, 1))


ALL_FROZEN = ("^image_tower/", "^image_projection/", "^text_tower/", "^text_projection/")


def save_clip_run(tiny_config, path, text_width=16):
  _, clip = tower_state(tiny_config, "clip", key=5, text_width=text_width)
  clip = clip.replace(params=jax.tree.map(lambda p: p + 0.5, clip.params))
  checkpointer = Checkpointer(path / "checkpoints", every_steps=1, keep=1)
  checkpointer.save(clip, 3, force=True)
  checkpointer.wait_until_finished()
  return clip


def test_frozen_arrays_missing_from_the_checkpoint_are_refused(tiny_config, tmp_path):
  # A CLIP run with a wider text tower: its text tower cannot be taken. Left trainable,
  # that is fine (the binding run trains its own); frozen, it would stay random for good.
  save_clip_run(tiny_config, tmp_path, text_width=32)
  c, state = binding_state(tiny_config, tmp_path, frozen=())
  _, taken = pretrained.with_pretrained(state, c, (28, 28, 1))
  assert "text_tower" not in taken and "image_tower" in taken
  c.optim.frozen = ("^image_tower/", "^text_tower/")
  with pytest.raises(CheckpointMismatchError, match=r"frozen arrays .* text_tower/"):
    pretrained.with_pretrained(state, c, (28, 28, 1))
  c.optim.frozen = ("^image_tower/",)  # all of it came from the checkpoint
  pretrained.with_pretrained(state, c, (28, 28, 1))


def test_a_clip_run_gives_its_towers_projections_and_scale(tiny_config, tmp_path):
  clip = save_clip_run(tiny_config, tmp_path)
  c, state = binding_state(tiny_config, tmp_path, frozen=ALL_FROZEN)
  grafted, taken = pretrained.with_pretrained(state, c, (28, 28, 1))
  assert taken == ["image_projection", "image_tower", "logit_scale", "text_projection",
                   "text_tower"]
  for name in taken:
    jax.tree.map(np.testing.assert_array_equal, grafted.params[name], clip.params[name])
  for name in ("audio_tower", "audio_projection", "audio_logit_scale"):  # not in CLIP
    jax.tree.map(np.testing.assert_array_equal, grafted.params[name], state.params[name])
