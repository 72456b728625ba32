"""Two processes on localhost, 2 CPU devices each, train as one run over a 4-device mesh:
each loads only its own rows of every global batch, and the run ends where a single
process on 4 devices ends, for SimCLR (negatives gathered across processes) and BYOL
(EMA target); the multi-process evaluation gathers the same features.

Tolerance: the two runs compute the same global-batch program, but XLA partitions it
differently for 1 and 2 processes (and the cross-process all-reduces go through gloo),
so float32 sums may be ordered differently: rtol 1e-5, atol 1e-6, as for 1 vs 8 devices
(`test_step_equivalence.py`). The parameters move by far more than that in 3 steps.

Also, without launching anything: the `distributed` config's validation, and the parts of
per-process reading that one process can check.
"""

import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jejax import config as config_lib
from jejax import parallel
from jejax.data import batch_indices, eval_batches, get_source, process_rows
from jejax.train import loop

WORKER = Path(__file__).with_name("multihost_worker.py")
METHODS = ("simclr", "byol")
NUM_PROCESSES = 2
BATCH = 16
STEPS = 3
EVAL_LIMIT = 280  # eval batches of 64: the last holds 24 examples, none of process 1's rows
TIMEOUT_S = 300  # both workers took ~130 s on 2 cores shared with a load of ~8


def multihost_config(tiny_config, method: str):
  c = tiny_config(method, BATCH)
  c.num_devices = 0  # every device of every process: 2 x 2
  c.num_steps = 10
  c.optim.name = "lars"  # as in test_step_equivalence: the first steps move the params
  c.optim.learning_rate = 0.5
  c.optim.warmup_epochs = 0.0
  c.byol.base_momentum = 0.9  # the EMA target visibly moves in 3 steps
  c.eval.batch_size = 64
  return c


def free_port() -> int:
  # The port is released before the coordinator binds it; a collision is unlikely.
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def worker_env() -> dict[str, str]:
  env = dict(os.environ)
  # This test process has 8 fake devices (conftest); each worker gets 2.
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
  env["JAX_PLATFORMS"] = "cpu"
  env["TF_CPP_MIN_LOG_LEVEL"] = "3"
  return env


def launch(workdir: Path) -> list[subprocess.Popen]:
  """Starts the workers, each logging to WORKDIR/process<i>.log."""
  address = f"localhost:{free_port()}"
  procs = []
  for i in range(NUM_PROCESSES):
    with open(workdir / f"process{i}.log", "w") as out:
      procs.append(subprocess.Popen(
          [sys.executable, str(WORKER), address, str(NUM_PROCESSES), str(i), str(workdir)],
          stdout=out, stderr=subprocess.STDOUT, env=worker_env()))
  return procs


def wait(procs: list[subprocess.Popen], workdir: Path, deadline: float) -> None:
  """Waits for the workers; fails with their logs if one fails or hangs."""
  try:
    # A failed process leaves the other waiting at a collective: stop at the first one.
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
      if any(p.returncode not in (None, 0) for p in procs):
        break
      time.sleep(0.5)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  codes = [p.returncode for p in procs]
  if codes != [0] * NUM_PROCESSES:
    logs = [workdir / f"process{i}.log" for i in range(NUM_PROCESSES)]
    tails = "\n".join(f"--- process {i} (exit {code}), last lines of {log}:\n"
                      + "\n".join(log.read_text().splitlines()[-40:])
                      for i, (code, log) in enumerate(zip(codes, logs)))
    pytest.fail(f"multi-process run failed or passed {TIMEOUT_S} s:\n{tails}")


def assert_states_close(actual, expected):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for name in ("params", "batch_stats", "target_params", "opt_state", "method_state"):
    for a, b in zip(jax.tree.leaves(getattr(actual, name)),
                    jax.tree.leaves(getattr(expected, name))):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def run_both(tiny_config, workdir: Path):
  """The workers' results, and a single process's on 4 devices, per method."""
  configs = {m: multihost_config(tiny_config, m) for m in METHODS}
  job = {"configs": configs, "steps": STEPS, "eval_limit": EVAL_LIMIT}
  (workdir / "job.pkl").write_bytes(pickle.dumps(job))
  deadline = time.monotonic() + TIMEOUT_S
  procs = launch(workdir)
  try:
    # Meanwhile, the reference: this process's time would otherwise be spent waiting.
    reference = {}
    for method, c in configs.items():
      c.num_devices = 4  # of this process's 8
      run, state, records = loop.train(c, workdir / f"single_{method}", stop_at_step=STEPS)
      features, labels = run.features(state, run.test_source, limit=EVAL_LIMIT)
      reference[method] = {"state": jax.device_get(state),
                           "losses": [r["loss"] for r in records],
                           "initial": jax.device_get(run.initial_state()),
                           "features": features,
                           "labels": labels, "num_examples": len(run.train_source),
                           "seed": c.seed}
  finally:
    wait(procs, workdir, deadline)
  processes = [pickle.loads((workdir / f"process{i}.pkl").read_bytes())
               for i in range(NUM_PROCESSES)]
  return processes, reference


_RUNS = []  # computed once for all tests of this file


@pytest.fixture
def runs(tiny_config, tmp_path_factory):
  # Function-scoped because `tiny_config` is; the runs themselves happen once, and a
  # failure is reported once, not re-run by every test.
  if not _RUNS:
    try:
      _RUNS.append(run_both(tiny_config, tmp_path_factory.mktemp("multihost")))
    except BaseException as e:
      _RUNS.append(e)
      raise
  if isinstance(_RUNS[0], BaseException):
    pytest.fail(f"the runs failed in an earlier test: {_RUNS[0]}")
  return _RUNS[0]


def test_two_processes_form_one_mesh(runs):
  processes, _ = runs
  for result in processes:
    for method in METHODS:
      assert result[method]["process_count"] == NUM_PROCESSES
      assert result[method]["local_device_count"] == 2
      assert result[method]["device_count"] == 4


@pytest.mark.parametrize("method", METHODS)
def test_each_process_loads_its_own_half_of_every_global_batch(runs, method):
  processes, reference = runs
  ref = reference[method]
  for step in range(STEPS):
    expected = batch_indices(ref["num_examples"], BATCH, ref["seed"], step)
    # The mesh's devices are ordered by process: process p holds rows [8p, 8p + 8).
    for p, result in enumerate(processes):
      loaded = result[method]["train_requests"][step]
      assert loaded == list(expected[p * BATCH // 2:(p + 1) * BATCH // 2]), (p, step)


@pytest.mark.parametrize("method", METHODS)
def test_two_processes_train_like_one(runs, method):
  processes, reference = runs
  ref = reference[method]
  assert max(float(np.max(np.abs(a - b))) for a, b in zip(
      jax.tree.leaves(ref["state"].params), jax.tree.leaves(ref["initial"].params))) > 1e-3
  for result in processes:
    got = result[method]
    assert int(got["state"].step) == STEPS
    np.testing.assert_allclose(got["losses"], ref["losses"], rtol=1e-5)
    assert_states_close(got["state"], ref["state"])
  # The processes hold one replicated state: bitwise the same on both.
  for a, b in zip(jax.tree.leaves(processes[0][method]["state"]),
                  jax.tree.leaves(processes[1][method]["state"])):
    np.testing.assert_array_equal(a, b)


def test_evaluation_gathers_the_features_of_every_process(runs):
  processes, reference = runs
  for method in METHODS:
    ref = reference[method]
    for result in processes:
      got = result[method]
      assert got["features"].shape == ref["features"].shape == (EVAL_LIMIT,
                                                                ref["features"].shape[1])
      np.testing.assert_array_equal(got["labels"], ref["labels"])
      np.testing.assert_allclose(got["features"], ref["features"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("initialize, field, value, message", [
    # Each process would train alone, on the whole batch, into the same workdir.
    (False, "process_id", 1, "distributed.initialize must be True"),
    (True, "coordinator_address", "localhost", "host:port"),
    (True, "num_processes", 0, ">= 1"),
    (True, "process_id", 2, r"\[0, num_processes=2\)"),
])
def test_bad_distributed_settings_are_refused(initialize, field, value, message, tiny_config):
  c = tiny_config("simclr")
  c.distributed.update(initialize=initialize, coordinator_address="localhost:1234",
                       num_processes=2, process_id=0)
  c.distributed[field] = value
  with pytest.raises(ValueError, match=f"distributed.*{message}"):
    config_lib.validate(c)


def test_joining_a_run_after_devices_are_in_use_is_refused():
  jax.devices()  # this process's backend is up: JAX refuses before contacting anyone
  with pytest.raises(RuntimeError, match="before any JAX computation"):
    parallel.initialize_distributed("localhost:1234", 2, 1)


def test_one_process_holds_every_row():
  mesh = parallel.make_mesh(8)
  np.testing.assert_array_equal(process_rows(parallel.data_sharding(mesh), 16), np.arange(16))
  np.testing.assert_array_equal(process_rows(parallel.replicated(mesh), 16), np.arange(16))


def test_a_process_share_of_the_last_eval_batch_may_be_empty():
  # As process 1 of 2 would read, with batches of 4: rows 2 and 3 of each.
  with tfds.testing.mock_data(num_examples=6):
    source = get_source("cifar10", "test")
    batches = list(eval_batches(source, 4, rows=np.array([2, 3])))
  assert [b["mask"].tolist() for b in batches] == [[True, True], [False, False]]
  for batch in batches:
    assert batch["image"].shape == (2, 32, 32, 3) and batch["label"].shape == (2,)
