"""Command line: train and evaluate any method from a config file.

  python -m jejax.main --config experiments/configs/simclr.py --config.epochs=5 \
      --workdir runs/simclr
"""

from absl import app, flags
from ml_collections import config_flags

from jejax.train.loop import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/simclr.py", "Path to a config file with get_config().",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "Run directory (resumes if it "
                               "holds checkpoints).")


def main(argv=None) -> None:
  if argv is not None and len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run() -> None:
  app.run(main)


if __name__ == "__main__":
  run()
