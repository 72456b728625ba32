"""Command line: train and evaluate any method from a config file.

  python -m jejax.main --config experiments/configs/simclr.py --config.epochs=5 \
      --workdir runs/simclr

Running it again with the same --workdir resumes from the latest checkpoint there. Ctrl-C
or SIGTERM stop it after the current step, with a checkpoint of that step.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from jejax.train.loop import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/simclr.py", "Path to a config file with get_config().",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "Run directory (resumes if it "
                               "holds checkpoints).")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run() -> None:
  app.run(main)


if __name__ == "__main__":
  run()
