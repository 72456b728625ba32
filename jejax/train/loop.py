"""The training loop: resume, the jitted step over the batches, logs, checkpoints, the
kNN monitor. `train(config, workdir)` runs it; `jejax.job.train_and_evaluate` adds the
final evaluation and outputs (the main job), `jejax.main` parses flags and calls that.

Several processes (`config.distributed`) run the same program on one mesh: each feeds
its devices' rows of every batch, all of them save checkpoints together (orbax writes
each shard once, from the process that holds it; `workdir` must be one directory all
processes see), and evaluation gathers the features to every process. Only process 0
writes config.json, metrics.jsonl, plots and summary.json, prints, and shows progress.

What can go wrong is handled in modules of its own: the workdir is locked while a run uses
it (`lock`), a non-finite step stops the run before anything of it is saved (`nonfinite`),
an unreadable checkpoint is set aside on resume (`checkpoint`), and the metrics log stays
valid JSON with TensorBoard events beside it (`metrics_log`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
from tqdm.auto import tqdm

from jejax import config as config_lib
from jejax import data, parallel
from jejax.data.sources import Source
from jejax.errors import JejaxError
from jejax.eval import protocol
from jejax.train import checkpoint, lock, metrics_log, nonfinite, pretrained
from jejax.train.run import Run

METRICS_FILE = metrics_log.METRICS_FILE


class ResumeRefusedError(JejaxError, ValueError):
  """The workdir holds a run with other training settings."""
  hint = ("run it with the settings it was started with (its config.json lists them), or "
          "give this run a new --workdir")


@contextlib.contextmanager
def _deferred_interrupts():
  """While active, SIGINT and SIGTERM append their name to the yielded list instead of
  stopping the program mid-step; the loop checks it after each step's log and save.
  Outside the main thread (where handlers cannot be set) it yields an empty list."""
  received: list[str] = []
  if threading.current_thread() is not threading.main_thread():
    yield received
    return
  previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
  for sig in previous:
    signal.signal(sig, lambda signum, _: received.append(signal.Signals(signum).name))
  try:
    yield received
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)


def _check_same_config(c: ml_collections.ConfigDict, path: Path) -> None:
  """A run resumed with other training settings would silently change its schedule
  mid-run; only evaluation, logging and checkpoint settings, and the device and process
  layout, may change (the global batch of a step does not depend on the layout, and
  the checkpoint is restored onto the new mesh)."""
  saved = json.loads(path.read_text())
  current = json.loads(c.to_json_best_effort())
  # skip_nonfinite may change so that a diverged run can resume with it; shard_state and
  # the device layout, since a checkpoint is restored onto any layout.
  free = {"eval", "checkpoint", "log_every_steps", "progress_bar", "num_devices",
          "distributed", "skip_nonfinite", "shard_state"}
  for config in (saved, current):
    # How many processes decode the data does not change a batch.
    config.get("data", {}).pop("workers", None)
  changed = sorted(k for k in set(saved) | set(current)
                   if k not in free and saved.get(k) != current.get(k))
  if changed:
    raise ResumeRefusedError(f"{path.parent} holds a run with other settings for {changed}; "
                             "resuming it with these would change it mid-run")


def _agree_to_stop(interrupted: list[str], can_sync: bool) -> bool:
  """Whether to stop after this step. With several processes all must stop after the
  same step, so they agree through a collective, and only where `can_sync` (logging
  steps, where the loop waits for the device anyway): a signal to any of them stops
  all at the next logging step."""
  if jax.process_count() == 1:
    return bool(interrupted)
  return can_sync and parallel.any_process(bool(interrupted))


def train(c: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
          train_source: Source | None = None, test_source: Source | None = None,
          stop_at_step: int | None = None) -> tuple[Run, Any, list[dict]]:
  """Trains (resuming from the latest checkpoint in `workdir`) up to the run's length,
  or up to `stop_at_step`, saving a checkpoint there. Returns the run, the final state and
  the metric records. An interruption (Ctrl-C, SIGTERM via KeyboardInterrupt) saves the
  state reached before it is re-raised, so nothing is lost. The sources default to
  `config.data`'s.

  Refusals are `JejaxError`s: `ConfigError` (a bad value), `DataError`,
  `lock.WorkdirLockedError` (another run uses `workdir`), `ResumeRefusedError` (`workdir`
  holds a run with other training settings), `CheckpointMismatchError` and
  `UnreadableCheckpointsError` (on resuming), and `nonfinite.NonFiniteError` (a NaN or
  inf; the latest checkpoint, which is finite, is kept).

  With `config.distributed.initialize`, this process first joins the multi-process run
  (before anything touches a device); every process calls `train` alike and gets the
  same state and records."""
  config_lib.validate(c)
  if c.distributed.initialize:
    d = c.distributed
    parallel.initialize_distributed(d.coordinator_address, d.num_processes, d.process_id)
  run = Run(c, workdir, train_source=train_source, test_source=test_source)
  run.workdir.mkdir(parents=True, exist_ok=True)
  # One run at a time in a workdir; the kernel releases the lock however the process ends.
  with lock.hold_for_run(run.workdir):
    return _train(run, stop_at_step)


def _train(run: Run, stop_at_step: int | None) -> tuple[Run, Any, list[dict]]:
  """`train` of a built run whose workdir this process holds."""
  c = run.config
  main = parallel.is_main_process()
  config_path = run.workdir / "config.json"
  checkpoints = run.workdir / "checkpoints"
  if config_path.exists() and checkpoints.exists() and any(checkpoints.iterdir()):
    _check_same_config(c, config_path)

  checkpointer = checkpoint.Checkpointer(checkpoints,
                                         every_steps=c.checkpoint.every_steps,
                                         keep=c.checkpoint.keep)
  restored = checkpointer.restore_latest(run.abstract_state)
  if restored is not None:
    state = restored
  elif c.model.pretrained is not None:  # a fresh run starts from another run's arrays
    initial, taken = pretrained.with_pretrained(jax.device_get(run.initial_state()), c,
                                                run.image_shape)
    state = jax.device_put(initial, run.state_shardings)
    if main:
      print(f"initialised {', '.join(taken)} from {c.model.pretrained}")
  else:
    state = run.initial_state()
  start = int(state.step)
  end = run.total_steps if stop_at_step is None else min(stop_at_step, run.total_steps)
  records = metrics_log.read_records(run.workdir / METRICS_FILE, start)
  parallel.sync("jejax.train: run files read")  # before process 0 rewrites them
  if main:
    config_path.write_text(c.to_json_best_effort(indent=2) + "\n")
    if restored is not None:
      print(f"resumed from step {start} in {run.workdir / 'checkpoints'}")

  eval_every = max(1, round(c.eval.every_epochs * run.steps_per_epoch)) if c.eval.every_epochs else 0
  sharding = parallel.data_sharding(run.mesh)
  batches = data.prefetch_to_device(
      data.train_batches(run.train_source, c.batch_size, seed=c.seed, start_step=start,
                         num_steps=end - start,
                         rows=data.process_rows(sharding, c.batch_size),
                         workers=c.data.workers),
      sharding, global_batch_size=c.batch_size)
  progress = tqdm(total=end, initial=start, desc=f"{c.method} train", unit="step",
                  disable=not (c.progress_bar and main), dynamic_ncols=True,
                  mininterval=0.1 if sys.stderr.isatty() else 30.0)  # log files: rarely
  window_start, window_steps = time.perf_counter(), 0
  nonfinite_steps = nonfinite.NonFiniteSteps()
  try:
    # Only process 0 writes the log: the records are the same on every process.
    with metrics_log.MetricsLog(run.workdir, records, start_step=start, enabled=main) as log, \
        _deferred_interrupts() as interrupted:
      for step in range(start + 1, end + 1):
        state, metrics = run.step_fn(state, next(batches), run.step_rng)
        nonfinite_steps.add(metrics.pop("finite"), step)
        window_steps += 1
        progress.update(1)
        record = None
        log_step = step % c.log_every_steps == 0 or step == run.total_steps
        eval_step = eval_every and (step % eval_every == 0 or step == run.total_steps)
        # Read (waiting for the device) where the loop waits anyway and before anything
        # that needs a whole state: an evaluation, a checkpoint, the end.
        bad_steps = (nonfinite_steps.read() if log_step or eval_step or step == end
                     or checkpointer.due(step) else (0, None))
        diverged = bad_steps[0] > 0 and not c.skip_nonfinite
        if log_step:
          metrics = {k: float(v) for k, v in parallel.to_host(metrics).items()}
          elapsed = time.perf_counter() - window_start
          record = {"step": step, "epoch": step / run.steps_per_epoch, **metrics,
                    "learning_rate": float(run.schedule(step - 1)),
                    "images_per_second": window_steps * c.batch_size / elapsed}
          if c.skip_nonfinite:
            record["skipped_steps"] = bad_steps[0]
            if bad_steps[0] and main:
              progress.write(f"step {step}: {bad_steps[0]} non-finite steps skipped so far "
                             f"(the first: step {bad_steps[1]})")
          window_start, window_steps = time.perf_counter(), 0
          progress.set_postfix(loss=f"{metrics['loss']:.4f}",
                               img_s=f"{record['images_per_second']:.0f}")
        if eval_step and not diverged:
          record = record or {"step": step, "epoch": step / run.steps_per_epoch}
          record["knn_accuracy"] = protocol.knn_monitor(
              functools.partial(run.features, state), run.train_source, run.test_source,
              c.eval, train_limit=c.eval.monitor_train_examples)
          if main:
            progress.write(f"step {step}: kNN accuracy {record['knn_accuracy']:.4f} "
                           f"({c.eval.monitor_train_examples} train examples as the bank)")
          window_start, window_steps = time.perf_counter(), 0  # eval time is not training
        if record is not None:
          records.append(record)
          log.write(record)
        if diverged:  # before the save below: the latest checkpoint stays the finite one
          checkpointer.wait_until_finished()
          raise nonfinite.error(bad_steps, step, checkpointer.latest_step(),
                                checkpointer.directory)
        checkpointer.save(state, step)
        if _agree_to_stop(interrupted, can_sync=log_step or step == end):
          raise KeyboardInterrupt(interrupted[0] if interrupted else "another process")
  except KeyboardInterrupt:
    # Signals are deferred to the end of a step (above), so the state is whole here; an
    # interrupt raised inside a step by other means finds it donated to that step, and
    # the latest saved checkpoint is then what survives.
    whole = not any(leaf.is_deleted() for leaf in jax.tree.leaves(state))
    if whole and (c.skip_nonfinite or nonfinite_steps.read()[0] == 0):
      checkpointer.save(state, int(state.step), force=True)
    checkpointer.wait_until_finished()
    if main:
      print(f"\ninterrupted: latest checkpoint is step {checkpointer.latest_step()} in "
            f"{run.workdir / 'checkpoints'}")
    raise
  finally:
    progress.close()
    batches.close()  # stops the decoding workers, if any
  checkpointer.save(state, int(state.step), force=True)
  checkpointer.wait_until_finished()
  return run, state, records
