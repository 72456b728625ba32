"""Type aliases shared across jejax."""

from typing import Any

PyTree = Any  # a nested structure of arrays: params, optimizer state, method state
