"""Type aliases shared across jejax, and the names of pytree paths."""

from typing import Any

PyTree = Any  # a nested structure of arrays: params, optimizer state, method state


def path_name(path: tuple) -> str:
  """'params/backbone/Conv_0/kernel' for a key path of dicts, dataclasses or tuples (as
  `jax.tree_util.tree_leaves_with_path` gives)."""
  names = []
  for key in path:
    for attribute in ("key", "name", "idx"):
      if hasattr(key, attribute):
        names.append(str(getattr(key, attribute)))
        break
    else:
      names.append(str(key))
  return "/".join(names)
