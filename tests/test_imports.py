"""Every public subpackage imports on its own, first, in a fresh interpreter (as a notebook
would), so an import cycle cannot hide behind the order the tests import things."""

import subprocess
import sys

import pytest

PACKAGES = ["jejax", "jejax.losses", "jejax.models", "jejax.augment", "jejax.methods",
            "jejax.train", "jejax.data", "jejax.eval", "jejax.config", "jejax.main"]


@pytest.mark.parametrize("name", PACKAGES)
def test_imports_alone(name):
  result = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
