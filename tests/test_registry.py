"""Registration by name: methods and backbones are found without a central table."""

import pytest

from jejax import config
from jejax.methods import METHODS
from jejax.models import BACKBONES
from jejax.registry import Registry


def test_every_method_and_backbone_module_registers_itself():
  # Each module of jejax/methods and jejax/models registers on import; nothing lists them.
  assert {"simclr", "byol", "swav", "dino", "moco_v2", "moco_v3", "simsiam", "vicreg",
          "barlow_twins", "ijepa", "mae"} <= set(METHODS.names())
  assert {"convnet", "resnet18", "resnet50", "vit"} <= set(BACKBONES.names())


def test_the_base_config_has_a_block_of_defaults_per_entry():
  c = config.base_config()
  for entry in METHODS.entries():
    assert c[entry.name].to_dict() == entry.defaults, entry.name
  for entry in BACKBONES.entries():
    assert c.model[entry.name].to_dict() == entry.defaults, entry.name


def test_unknown_names_list_the_known_ones():
  with pytest.raises(ValueError, match="unknown method 'mocco'; known: barlow_twins, byol"):
    METHODS.get("mocco")


def test_a_name_is_registered_once():
  registry = Registry("thing", "jejax.methods")

  def first():
    pass

  def second():
    pass

  registry.register("thing_a", {"x": 1})(first)
  registry.register("thing_a", {"x": 2})(first)  # the same definition again: replaced
  assert registry.get("thing_a").defaults == {"x": 2}
  with pytest.raises(ValueError, match="already registered"):
    registry.register("thing_a")(second)
  with pytest.raises(ValueError, match="identifier"):
    registry.register("not-a-name")
