"""One process of the multi-process test (`test_multihost.py` launches two of these).

  python multihost_worker.py COORDINATOR NUM_PROCESSES PROCESS_ID WORKDIR

Reads WORKDIR/job.pkl ({'configs': {method: ConfigDict}, 'steps': int, 'eval_limit':
int}), trains each method for `steps` steps in WORKDIR/<method> as one process of the
run, and writes WORKDIR/process<PROCESS_ID>.pkl: per method the final state (host numpy),
the logged losses, the example indices this process loaded for each train step, and the
features of the first `eval_limit` test examples. Not collected by pytest (its name
does not start with test_).
"""

import pickle
import sys
from pathlib import Path


class RecordingSource:
  """A source that records the indices of every `get_batch` call."""

  def __init__(self, source):
    self.source = source
    self.requests = []

  def __getattr__(self, name):
    return getattr(self.source, name)

  def __len__(self):
    return len(self.source)

  def get_batch(self, indices):
    self.requests.append(list(map(int, indices)))
    return self.source.get_batch(indices)


def main(coordinator: str, num_processes: int, process_id: int, workdir: Path) -> None:
  # Imported here: nothing may touch a device before `train` joins the run.
  import jax

  from jejax import data
  from jejax.train import loop

  job = pickle.loads((workdir / "job.pkl").read_bytes())
  results = {}
  for method, c in job["configs"].items():
    c.distributed.initialize = True
    c.distributed.coordinator_address = coordinator
    c.distributed.num_processes = num_processes
    c.distributed.process_id = process_id
    train_source = RecordingSource(data.get_source(c.data.name, "train"))
    run, state, records = loop.train(c, workdir / method, train_source=train_source,
                                     stop_at_step=job["steps"])
    features, labels = run.features(state, run.test_source, limit=job["eval_limit"])
    results[method] = {
        "state": jax.device_get(state),
        "losses": [r["loss"] for r in records],
        # The first request is the two examples the run reads to learn the batch layout.
        "train_requests": train_source.requests[1:job["steps"] + 1],
        "features": features, "labels": labels,
        "process_count": jax.process_count(), "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
    }
  (workdir / f"process{process_id}.pkl").write_bytes(pickle.dumps(results))


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
