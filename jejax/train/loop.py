"""The training loop: data, state, the jitted step, checkpoints, evaluation, outputs.

`train_and_evaluate(config, workdir)` is the whole main job as an importable function;
`jejax.main` only parses flags and calls it.

Several processes (`config.distributed`) run the same program on one mesh: each feeds
its devices' rows of every batch, all of them save checkpoints together (orbax writes
each shard once, from the process that holds it; `workdir` must be one directory all
processes see), and evaluation gathers the features to every process. Only process 0
writes config.json, metrics.jsonl, plots and summary.json, prints, and shows progress.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from jejax import config as config_lib
from jejax import data, parallel
from jejax.eval import diagnostics, plots
from jejax.eval.features import extract_features
from jejax.eval.knn import knn_accuracy
from jejax.eval.linear_probe import linear_probe
from jejax.train import build, checkpoint
from jejax.train.step import init_state, make_step

METRICS_FILE = "metrics.jsonl"


def _schedule_lengths(c: ml_collections.ConfigDict, num_examples: int) -> tuple[int, int]:
  steps_per_epoch = data.steps_per_epoch(num_examples, c.batch_size)
  total_steps = c.num_steps if c.num_steps > 0 else round(c.epochs * steps_per_epoch)
  if total_steps < 1:
    raise ValueError(f"config.epochs={c.epochs} is less than one step of batch "
                     f"{c.batch_size} over {num_examples} examples")
  return steps_per_epoch, total_steps


def _read_records(path: Path, up_to_step: int) -> list[dict]:
  """Records logged up to `up_to_step`: a resumed run drops what the interrupted run
  logged after its last checkpoint, since those steps are run again."""
  if not path.exists():
    return []
  records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  return [r for r in records if r["step"] <= up_to_step]


def _write_records(path: Path, records: list[dict]) -> None:
  path.write_text("".join(json.dumps(r) + "\n" for r in records))


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
  free = {"eval", "checkpoint", "log_every_steps", "progress_bar", "num_devices",
          "distributed"}
  changed = sorted(k for k in set(saved) | set(current)
                   if k not in free and saved.get(k) != current.get(k))
  if changed:
    raise ValueError(f"{path.parent} holds a run with other settings for {changed}; "
                     "resume it with its own config.json or start a new --workdir")


class Run:
  """Everything one run is made of, built from a validated config."""

  def __init__(self, c: ml_collections.ConfigDict, workdir: str | os.PathLike):
    self.config = c
    self.workdir = Path(workdir)
    self.train_source = data.get_source(c.data.name, "train", data_dir=c.data.data_dir,
                                        image_size=c.data.image_size)
    self.test_source = data.get_source(c.data.name, "test", data_dir=c.data.data_dir,
                                       image_size=c.data.image_size)
    self.image_shape = self.train_source.image_shape
    data.validate_image_shape(self.test_source.image_shape, self.image_shape)
    self.mesh = parallel.make_mesh(c.num_devices or None)
    parallel.check_batch_divisible(c.batch_size, self.mesh)
    # Each microbatch of gradient accumulation is split over the data axis too.
    parallel.check_batch_divisible(c.batch_size // c.accumulation_steps, self.mesh)
    self.steps_per_epoch, self.total_steps = _schedule_lengths(c, len(self.train_source))
    self.model = build.build_model(c)
    self.method = build.build_method(c, self.total_steps, self.steps_per_epoch)
    self.optimizer, self.schedule = build.build_optimizer(c, self.total_steps,
                                                          self.steps_per_epoch)
    self.recipes = build.build_views(c, self.image_shape[0])
    init_rng, self.step_rng = jax.random.split(jax.random.key(c.seed))
    # On the host: the step donates the device copy, and the random-init baseline of the
    # final evaluation needs these values again.
    self.initial_state = jax.device_get(init_state(self.model, self.method, self.optimizer,
                                                   init_rng, self.image_shape))
    self.step_fn = make_step(self.mesh, model=self.model, method=self.method,
                             optimizer=self.optimizer, recipes=self.recipes,
                             accumulation_steps=c.accumulation_steps)

  def features(self, state, source, limit=None):
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return extract_features(self.model, variables, source, self.mesh,
                            batch_size=self.config.eval.batch_size, limit=limit)

  def knn(self, state, train_limit=None) -> float:
    e = self.config.eval
    train_x, train_y = self.features(state, self.train_source, limit=train_limit)
    test_x, test_y = self.features(state, self.test_source)
    return knn_accuracy(train_x, train_y, test_x, test_y, k=e.knn_k,
                        temperature=e.knn_temperature,
                        num_classes=self.train_source.num_classes)


def _agree_to_stop(interrupted: list[str], can_sync: bool) -> bool:
  """Whether to stop after this step. With several processes all must stop after the
  same step, so they agree through a collective, and only where `can_sync` (logging
  steps, where the loop waits for the device anyway): a signal to any of them stops
  all at the next logging step."""
  if jax.process_count() == 1:
    return bool(interrupted)
  return can_sync and parallel.any_process(bool(interrupted))


def train(c: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
          stop_at_step: int | None = None) -> tuple[Run, Any, list[dict]]:
  """Trains (resuming from the latest checkpoint in `workdir`) up to the run's length,
  or up to `stop_at_step`, saving a checkpoint there. Returns the run, the final state and
  the metric records. An interruption (Ctrl-C, SIGTERM via KeyboardInterrupt) saves the
  state reached before it is re-raised, so nothing is lost.

  With `config.distributed.initialize`, this process first joins the multi-process run
  (before anything touches a device); every process calls `train` alike and gets the
  same state and records."""
  config_lib.validate(c)
  if c.distributed.initialize:
    d = c.distributed
    parallel.initialize_distributed(d.coordinator_address, d.num_processes, d.process_id)
  run = Run(c, workdir)
  main = parallel.is_main_process()
  run.workdir.mkdir(parents=True, exist_ok=True)
  config_path = run.workdir / "config.json"
  checkpoints = run.workdir / "checkpoints"
  if config_path.exists() and checkpoints.exists() and any(checkpoints.iterdir()):
    _check_same_config(c, config_path)

  checkpointer = checkpoint.Checkpointer(checkpoints,
                                         every_steps=c.checkpoint.every_steps,
                                         keep=c.checkpoint.keep)
  state = parallel.replicate(run.initial_state, run.mesh)
  restored = checkpointer.restore_latest(state)
  state = restored if restored is not None else state
  start = int(state.step)
  end = run.total_steps if stop_at_step is None else min(stop_at_step, run.total_steps)
  metrics_path = run.workdir / METRICS_FILE
  records = _read_records(metrics_path, start)
  parallel.sync("jejax.train: run files read")  # before process 0 rewrites them
  if main:
    config_path.write_text(c.to_json_best_effort(indent=2) + "\n")
    _write_records(metrics_path, records)
    if restored is not None:
      print(f"resumed from step {start} in {run.workdir / 'checkpoints'}")

  eval_every = max(1, round(c.eval.every_epochs * run.steps_per_epoch)) if c.eval.every_epochs else 0
  sharding = parallel.data_sharding(run.mesh)
  batches = data.prefetch_to_device(
      data.train_batches(run.train_source, c.batch_size, seed=c.seed, start_step=start,
                         num_steps=end - start,
                         rows=data.process_rows(sharding, c.batch_size)),
      sharding, global_batch_size=c.batch_size)
  progress = tqdm(total=end, initial=start, desc=f"{c.method} train", unit="step",
                  disable=not (c.progress_bar and main), dynamic_ncols=True,
                  mininterval=0.1 if sys.stderr.isatty() else 30.0)  # log files: rarely
  window_start, window_steps = time.perf_counter(), 0
  try:
    # Other processes log to /dev/null: the records are the same on every process.
    with open(metrics_path if main else os.devnull, "a") as log, \
        _deferred_interrupts() as interrupted:
      for step in range(start + 1, end + 1):
        state, metrics = run.step_fn(state, next(batches), run.step_rng)
        window_steps += 1
        progress.update(1)
        record = None
        log_step = step % c.log_every_steps == 0 or step == run.total_steps
        if log_step:
          metrics = {k: float(v) for k, v in parallel.to_host(metrics).items()}
          elapsed = time.perf_counter() - window_start
          record = {"step": step, "epoch": step / run.steps_per_epoch, **metrics,
                    "learning_rate": float(run.schedule(step - 1)),
                    "images_per_second": window_steps * c.batch_size / elapsed}
          window_start, window_steps = time.perf_counter(), 0
          progress.set_postfix(loss=f"{metrics['loss']:.4f}",
                               img_s=f"{record['images_per_second']:.0f}")
        if eval_every and (step % eval_every == 0 or step == run.total_steps):
          record = record or {"step": step, "epoch": step / run.steps_per_epoch}
          record["knn_accuracy"] = run.knn(state, c.eval.monitor_train_examples)
          if main:
            progress.write(f"step {step}: kNN accuracy {record['knn_accuracy']:.4f} "
                           f"({c.eval.monitor_train_examples} train examples as the bank)")
          window_start, window_steps = time.perf_counter(), 0  # eval time is not training
        if record is not None:
          records.append(record)
          log.write(json.dumps(record) + "\n")
          log.flush()
        checkpointer.save(state, step)
        if _agree_to_stop(interrupted, can_sync=log_step or step == end):
          raise KeyboardInterrupt(interrupted[0] if interrupted else "another process")
  except KeyboardInterrupt:
    # Signals are deferred to the end of a step (above), so the state is whole here; an
    # interrupt raised inside a step by other means finds it donated to that step, and
    # the latest saved checkpoint is then what survives.
    if not any(leaf.is_deleted() for leaf in jax.tree.leaves(state)):
      checkpointer.save(state, int(state.step), force=True)
    checkpointer.wait_until_finished()
    if main:
      print(f"\ninterrupted: latest checkpoint is step {checkpointer.latest_step()} in "
            f"{run.workdir / 'checkpoints'}")
    raise
  finally:
    progress.close()
  checkpointer.save(state, int(state.step), force=True)
  checkpointer.wait_until_finished()
  return run, state, records


def evaluate(run: Run, state) -> dict[str, float]:
  """Final evaluation on the full splits: weighted kNN, linear probe, collapse metrics;
  and the linear probe of the same encoder at its random initialisation.

  With several processes the features are gathered to every process (see
  `extract_features`), which computes the same numbers; process 0 draws the plot."""
  e = run.config.eval
  num_classes = run.train_source.num_classes
  train_x, train_y = run.features(state, run.train_source)
  test_x, test_y = run.features(state, run.test_source)
  probe_kwargs = dict(num_classes=num_classes, epochs=e.probe_epochs,
                      learning_rate=e.probe_learning_rate, seed=run.config.seed)
  results = {
      "knn_accuracy": knn_accuracy(train_x, train_y, test_x, test_y, k=e.knn_k,
                                   temperature=e.knn_temperature, num_classes=num_classes),
      "linear_probe_accuracy": linear_probe(train_x, train_y, test_x, test_y,
                                            **probe_kwargs)["test_accuracy"],
      "effective_rank": float(diagnostics.effective_rank(test_x)),
      "embedding_std": float(diagnostics.embedding_std(test_x)),
      "feature_dim": int(test_x.shape[1]),
  }
  if e.probe_random_init:
    init = parallel.replicate(run.initial_state, run.mesh)
    init_train_x, _ = run.features(init, run.train_source)
    init_test_x, _ = run.features(init, run.test_source)
    results["random_init_linear_probe_accuracy"] = linear_probe(
        init_train_x, train_y, init_test_x, test_y, **probe_kwargs)["test_accuracy"]
    results["random_init_effective_rank"] = float(diagnostics.effective_rank(init_test_x))
  class_names = (data.FASHION_MNIST_CLASSES if run.config.data.name == "fashion_mnist"
                 else [str(i) for i in range(num_classes)])
  if parallel.is_main_process():
    plots.plot_embedding_2d(test_x, test_y, class_names, run.workdir / "embeddings_2d.png",
                            title=f"{run.config.method}: test features (PCA)")
  return results


def peak_memory_mib() -> dict[str, float]:
  """The peak resident memory of a process, and the peak allocation of a device where
  the backend reports it (GPUs and TPUs do; XLA:CPU does not, its buffers are in the
  RSS); with several processes, the largest over all of them (a collective)."""
  host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  stats = [d.memory_stats() for d in jax.local_devices()]
  device = (max(s["peak_bytes_in_use"] for s in stats) / 2**20
            if all(s and "peak_bytes_in_use" in s for s in stats) else np.nan)
  if jax.process_count() > 1:
    gathered = multihost_utils.process_allgather(np.array([host, device]))  # (P, 2)
    host, device = np.max(gathered, axis=0)
  peaks = {"peak_host_memory_mib": float(host)}
  if not np.isnan(device):
    peaks["peak_device_memory_mib"] = float(device)
  return peaks


def format_summary(config: ml_collections.ConfigDict, results: dict[str, Any]) -> str:
  """A two-column table of the run's headline numbers."""
  rows = [("method", config.method), ("dataset", config.data.name),
          ("backbone", config.model.backbone)] + [(k, results[k]) for k in results]
  width = max(len(k) for k, _ in rows)
  lines = [f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}"
           for k, v in rows]
  rule = "-" * max(len(line) for line in lines)
  return "\n".join([rule, *lines, rule])


def train_and_evaluate(c: ml_collections.ConfigDict, workdir: str | os.PathLike
                       ) -> dict[str, Any]:
  """The main job: train, evaluate, plot, summarise. Returns the summary dict."""
  start = time.perf_counter()
  run, state, records = train(c, workdir)
  train_images_per_second = [r["images_per_second"] for r in records if "images_per_second" in r]
  results = evaluate(run, state)
  results["steps"] = int(state.step)
  results["train_images_per_second"] = float(np.median(train_images_per_second)) \
      if train_images_per_second else float("nan")
  results["wall_seconds"] = time.perf_counter() - start
  results.update(peak_memory_mib())
  if parallel.is_main_process():
    plots.plot_training(records, run.workdir / "training.png")
    (run.workdir / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    print(format_summary(c, results))
    print(f"outputs in {run.workdir}: config.json, {METRICS_FILE}, summary.json, "
          "training.png, embeddings_2d.png, checkpoints/")
  return results
