"""Config checks that name the field: a bad value stops a run before any data is read.

  require(c.batch_size > 0, "batch_size", c.batch_size, "must be positive")
  -> ConfigError: config.batch_size=0: must be positive
"""

from __future__ import annotations

from typing import Any

from jejax.errors import JejaxError


class ConfigError(JejaxError, ValueError):
  """A config value that jejax cannot train or evaluate with; the message names it."""
  hint = "fix that value on the command line (--config.<field>=...) or in the config file"


def require(ok: bool, field: str, value: Any, why: str) -> None:
  """Raises ConfigError('config.<field>=<value>: <why>') unless `ok`."""
  if not ok:
    raise ConfigError(f"config.{field}={value!r}: {why}")


def require_positive(block: dict[str, Any], prefix: str, *names: str) -> None:
  for name in names:
    require(block[name] > 0, f"{prefix}.{name}", block[name], "must be positive")


def require_non_negative(block: dict[str, Any], prefix: str, *names: str) -> None:
  for name in names:
    require(block[name] >= 0, f"{prefix}.{name}", block[name], "must be >= 0")


def require_temperature(block: dict[str, Any], prefix: str, *names: str) -> None:
  for name in names:
    require(block[name] > 0, f"{prefix}.{name}", block[name], "a temperature must be positive")


def require_momentum(block: dict[str, Any], prefix: str, *names: str) -> None:
  for name in names:
    require(0.0 <= block[name] <= 1.0, f"{prefix}.{name}", block[name],
            "an EMA momentum must lie in [0, 1]")


def require_interval(block: dict[str, Any], prefix: str, name: str, *, low: float = 0.0,
                     high: float = 1.0) -> None:
  """(a, b) with low < a <= b <= high."""
  value = tuple(block[name])
  require(len(value) == 2 and low < value[0] <= value[1] <= high, f"{prefix}.{name}", value,
          f"must be (a, b) with {low:g} < a <= b <= {high:g}")
