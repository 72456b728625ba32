"""The base config, the experiment configs, and `validate`'s messages naming the field."""

import importlib.util
import pathlib
import re

import pytest

from jejax import config
from jejax.checks import ConfigError
from jejax.methods import METHODS
from jejax.methods.views import view_recipes

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_base_config_validates_and_is_returned_unchanged():
  c = config.base_config()
  assert config.validate(c) is c
  assert c.method in METHODS


def _set(c, field, value):
  *parents, name = field.split(".")
  for parent in parents:
    c = c[parent]
  c[name] = value


@pytest.mark.parametrize("field, value", [
    ("method", "moco_v9"),
    ("batch_size", 0),
    ("simclr.temperature", -0.1),
    ("byol.base_momentum", 1.5),
    ("byol.base_momentum", -0.1),
    ("optim.name", "adagrad_xl"),
    ("model.backbone", "vgg11"),
    ("vicreg.var_weight", -1.0),
    ("barlow_twins.off_diagonal_weight", -0.01),
    ("log_every_steps", 0),
    ("optim.base_batch_size", 0),
    ("optim.warmup_start_fraction", 1.5),
    ("eval.every_epochs", -1.0),
    ("moco_v2.temperature", -0.2),
    ("moco_v3.temperature", 0.0),
    ("dino.student_temperature", -0.1),
    ("dino.teacher_temperature", -0.04),
    ("dino.warmup_teacher_temperature", 0.0),
    ("moco_v2.momentum", 1.01),
    ("moco_v3.base_momentum", -0.5),
    ("dino.base_momentum", 2.0),
    ("dino.center_momentum", -0.1),
    ("dino.freeze_last_layer_epochs", -1.0),
    ("augment.num_small_crops", -1),
    ("data.workers", -1),
])
def test_bad_value_raises_naming_the_field(field, value):
  # A method's block is checked when that method trains: its experiment config.
  block = field.split(".")[0]
  c = (config.load(REPO / "experiments" / "configs" / f"{block}.py") if block in METHODS
       else config.base_config())
  _set(c, field, value)
  with pytest.raises(ValueError, match=re.escape(f"config.{field}=")):
    config.validate(c)


@pytest.mark.parametrize("method, field, missing, present", [
    ("swav", "model.num_prototypes", 0, 30),
    ("byol", "model.predictor_hidden", (), (64,)),
    ("simsiam", "model.predictor_hidden", (), (64,)),
    ("moco_v3", "model.predictor_hidden", (), (64,)),
    ("dino", "model.num_prototypes", 0, 64),
])
def test_method_requires_its_head(method, field, missing, present):
  c = config.base_config()
  c.method = method
  _set(c, field, missing)
  with pytest.raises(ValueError, match=re.escape(f"config.{field}=")):
    config.validate(c)
  _set(c, field, present)
  assert config.validate(c) is c


@pytest.mark.parametrize("momentum", [0.0, 0.996, 1.0])
def test_momentum_bounds_are_inclusive(momentum):
  c = config.base_config()
  c.byol.base_momentum = momentum
  config.validate(c)


@pytest.mark.parametrize("path", sorted((REPO / "experiments" / "configs").glob("*.py")),
                         ids=lambda p: p.stem)
def test_experiment_configs_validate(path):
  spec = importlib.util.spec_from_file_location(f"{path.stem}_experiment_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  assert config.validate(c) is c
  assert c.method == path.stem


@pytest.mark.parametrize("queue_size, ok", [(128, False), (384, False), (256, True),
                                            (4096, True)])
def test_moco_queue_must_hold_whole_batches(queue_size, ok):
  c = config.base_config()
  c.method, c.batch_size, c.moco_v2.queue_size = "moco_v2", 256, queue_size
  if ok:
    assert config.validate(c) is c
  else:
    with pytest.raises(ValueError, match=r"config.moco_v2.queue_size=.*batches of 256"):
      config.validate(c)


def test_the_moco_queue_is_not_checked_for_other_methods():
  c = config.base_config()
  c.method, c.batch_size = "simclr", 96  # 65536 is not a multiple of 96
  assert config.validate(c) is c


def test_multi_crop_is_refused_for_two_view_methods_and_bad_crops():
  c = config.base_config()
  c.augment.num_small_crops = 2
  with pytest.raises(ValueError, match="multi-crop is for swav and dino"):
    config.validate(c)
  c.method, c.model.num_prototypes = "dino", 16
  assert config.validate(c) is c
  c.augment.small_crop_scale = (0.5, 0.2)
  with pytest.raises(ValueError, match="config.augment.small_crop_scale="):
    config.validate(c)
  c.augment.small_crop_scale = (0.05, 0.4)
  c.augment.small_crop_size = 40
  with pytest.raises(ValueError, match="larger than the 28 px images"):
    view_recipes(c, 28)


@pytest.mark.parametrize("field, value, message", [
    ("convnet.conv_chunk", -1, r"config.model.convnet.conv_chunk=-1: must be >= 0"),
    ("vit.pixel_std", (0.0,), r"config.model.vit.pixel_std=\(0.0,\): must be positive"),
    ("vit.pixel_std", (0.3, 0.3), r"one per channel as pixel_mean=\(0.0,\)"),
])
def test_bad_backbone_settings_are_config_errors(field, value, message):
  c = config.base_config()
  block, name = field.split(".")
  c.model[block][name] = value
  with pytest.raises(ConfigError, match=message):
    config.validate(c)
