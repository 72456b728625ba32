"""Command line: train and evaluate any method from a config file.

  python -m jejax.main --config experiments/configs/simclr.py --config.epochs=5 \
      --workdir runs/simclr

Running it again with the same --workdir resumes from the latest checkpoint there. Ctrl-C
or SIGTERM stop it after the current step, with a checkpoint of that step.

Several hosts (or processes) train one run when each runs the same command with
`--config.distributed.initialize=True` and a --workdir they all see. On Cloud TPU pods,
SLURM, Open MPI and Kubernetes JAX reads the process layout from the environment;
elsewhere give it, e.g. for process 1 of 2:

  python -m jejax.main --config ... --workdir /shared/run --config.distributed.initialize=True \
      --config.distributed.coordinator_address=host0:1234 \
      --config.distributed.num_processes=2 --config.distributed.process_id=1

The process joins the run in `jejax.train.loop.train`, before anything touches a device.
A multi-host run may resume on another number of hosts or devices (set
config.num_devices to match); the global batch is the same.

jejax's own errors (a bad config value, missing data, a refused resume or checkpoint, a
workdir in use, a diverged run) print as `error: ...` and `hint: ...` on stderr, with
exit status 2; anything else keeps its traceback.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from jejax import errors
from jejax.job import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/simclr.py", "Path to a config file with get_config().",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "Run directory (resumes if it "
                               "holds checkpoints).")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  try:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except errors.JejaxError as error:
    errors.exit_with(error)


def run() -> None:
  app.run(main)


if __name__ == "__main__":
  run()
