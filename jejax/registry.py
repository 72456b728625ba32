"""Registration by name: a method or backbone is one module that registers itself.

A `Registry` belongs to one package (`jejax.methods`, `jejax.models`). Its modules call
`registry.register(name, defaults)` at import time; the first lookup imports every
module of the package, so a new file there is found without editing any table, and
`--config.method=<name>` reaches it (as big_vision finds `big_vision.models.<name>`).
Code outside jejax registers the same way before the config is built.

The defaults are the entry's config block: `jejax.config.base_config` adds one block per
registered entry, so `--config.<name>.<field>=...` works from the command line.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Entry:
  """What a name stands for: `value` (a method class, a backbone builder) and the
  default values of its config block."""
  name: str
  value: Any
  defaults: dict[str, Any] = field(default_factory=dict)


def _origin(value: Any) -> str:
  return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', value)}"


class Registry:
  """Names of one kind (`kind`, for messages) found in the modules of `package`."""

  def __init__(self, kind: str, package: str):
    self.kind = kind
    self.package = package
    self._entries: dict[str, Entry] = {}
    self._discovered = False

  def register(self, name: str, defaults: dict[str, Any] | None = None) -> Callable:
    """A decorator: `@registry.register("simclr", {"temperature": 0.1})` on a class or
    function registers it under `name` with its config block's defaults."""
    if not name.isidentifier():
      raise ValueError(f"{self.kind} name {name!r} must be a Python identifier "
                       "(it names a config block)")

    def decorate(value):
      previous = self._entries.get(name)
      # The same definition again (a reloaded module, a re-run notebook cell) replaces
      # the entry; another one under a taken name is a mistake.
      if previous is not None and _origin(previous.value) != _origin(value):
        raise ValueError(f"{self.kind} {name!r} is already registered by "
                         f"{_origin(previous.value)}")
      self._entries[name] = Entry(name, value, dict(defaults or {}))
      return value
    return decorate

  def _discover(self) -> None:
    if self._discovered:
      return
    package = importlib.import_module(self.package)
    for module in pkgutil.iter_modules(package.__path__):
      importlib.import_module(f"{self.package}.{module.name}")
    self._discovered = True

  def get(self, name: str) -> Entry:
    """The entry of `name`; a ValueError listing the known names if there is none."""
    self._discover()
    if name not in self._entries:
      raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
    return self._entries[name]

  def names(self) -> list[str]:
    self._discover()
    return sorted(self._entries)

  def entries(self) -> list[Entry]:
    return [self._entries[name] for name in self.names()]

  def __contains__(self, name: str) -> bool:
    self._discover()
    return name in self._entries

  def unregister(self, name: str) -> None:
    """Removes `name` (tests register throwaway entries)."""
    self._entries.pop(name, None)
