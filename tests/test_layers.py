"""jejax's layers, bottom up: array helpers -> losses, models, augmentation, data ->
methods -> train step -> loop, evaluation protocol, commands. An import never goes up a
layer; `theory` stands alone. Checked on the source (every import, also inside functions,
except those under `if TYPE_CHECKING:`)."""

import ast
import pathlib

import pytest

JEJAX = pathlib.Path(__file__).resolve().parents[1] / "jejax"

HELPERS = {"numerics", "types", "registry", "errors", "checks", "parallel"}
# What each unit (a subpackage or a top-level module) may import from jejax.
ALLOWED = {
    "numerics": set(), "types": set(), "registry": set(), "errors": set(),
    "checks": {"errors"},
    "parallel": set(), "theory": set(),
    "losses": {"numerics", "types"},
    "models": {"numerics", "types", "registry"},
    "augment": {"numerics", "types"},
    "audio": {"numerics", "types"},
    "data": HELPERS,
    "eval": HELPERS | {"data"},
    "methods": HELPERS | {"losses", "models", "augment", "audio"},
    "train": HELPERS | {"losses", "models", "augment", "audio", "data", "eval", "methods",
                        "config"},
    "config": HELPERS | {"data", "methods", "models", "train"},
}
COMMANDS = {"job", "main", "embed", "embed_multimodal", "__init__"}  # the top: may import anything


def _unit(path: pathlib.Path) -> str:
  relative = path.relative_to(JEJAX)
  return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imported_units(source: str) -> set[str]:
  """The jejax units that `source` imports."""
  tree = ast.parse(source)
  type_checking = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", None) == "TYPE_CHECKING"
                   for node in ast.walk(block)}
  units = set()
  for node in ast.walk(tree):
    if id(node) in type_checking:
      continue
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jejax"):
      names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    elif isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    else:
      continue
    for name in names:
      parts = name.split(".")
      if parts[0] == "jejax" and len(parts) > 1 and (
          (JEJAX / parts[1]).is_dir() or (JEJAX / f"{parts[1]}.py").is_file()):
        units.add(parts[1])
  return units


SOURCES = sorted(JEJAX.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(JEJAX)))
def test_imports_stay_within_the_layers_below(path):
  unit = _unit(path)
  if unit in COMMANDS:
    return
  assert unit in ALLOWED, f"{unit}: a new unit of jejax needs its place in ALLOWED"
  upward = _imported_units(path.read_text()) - ALLOWED[unit] - {unit}
  assert not upward, f"{path.relative_to(JEJAX)} imports {sorted(upward)} from above its layer"


def test_the_check_sees_upward_imports_and_skips_type_checking_ones():
  """Negative control: a loss module importing a model, also inside a function, is
  caught; an import for type annotations only is not an import at run time."""
  source = ("from typing import TYPE_CHECKING\n"
            "from jejax.numerics import l2_normalize\n"
            "if TYPE_CHECKING:\n  from jejax.train.state import TrainState\n"
            "def f():\n  import jejax.models.vit\n")
  assert _imported_units(source) - ALLOWED["losses"] == {"models"}
