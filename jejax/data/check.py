"""`python -m jejax.data.check NAME`: exit 0 when both splits of NAME load, else print why
and exit 1. The Makefile uses it to decide whether to install the data."""

import sys

from jejax.data.errors import DataError
from jejax.data.sources import get_source


def main(argv: list[str]) -> int:
  name = argv[1] if len(argv) > 1 else "fashion_mnist"
  try:
    sizes = {split: len(get_source(name, split)) for split in ("train", "test")}
  except DataError as e:
    print(f"{name}: not available yet ({type(e).__name__}: {str(e).splitlines()[0]})")
    return 1
  print(f"{name}: found, {sizes['train']} train and {sizes['test']} test examples")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
