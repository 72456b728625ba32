"""The base config, the experiment configs, and `validate`'s messages naming the field."""

import importlib.util
import pathlib
import re

import pytest

from jejax import config
from jejax.train import build

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_base_config_validates_and_is_returned_unchanged():
  c = config.base_config()
  assert config.validate(c) is c
  assert c.method in build.METHODS


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
    ("eval.every_epochs", -1.0),
])
def test_bad_value_raises_naming_the_field(field, value):
  c = config.base_config()
  _set(c, field, value)
  with pytest.raises(ValueError, match=re.escape(f"config.{field}=")):
    config.validate(c)


@pytest.mark.parametrize("method, field, missing, present", [
    ("swav", "model.num_prototypes", 0, 30),
    ("byol", "model.predictor_hidden", (), (64,)),
    ("simsiam", "model.predictor_hidden", (), (64,)),
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
