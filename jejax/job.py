"""The main job as an importable function: train, evaluate, plot, summarise.

`train_and_evaluate(config, workdir)` is what `python -m jejax.main` runs. With several
processes (`config.distributed`) every process calls it alike; only process 0 writes
files and prints.
"""

from __future__ import annotations

import functools
import os
import resource
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from jejax import data, parallel
from jejax.data.sources import Source
from jejax.eval import plots, protocol
from jejax.train import loop, metrics_log
from jejax.train.run import Run


def evaluate(run: Run, state) -> dict[str, float]:
  """The evaluation protocol (`jejax.eval.protocol.evaluate`) on the run's encoder, with
  the random-init baseline when `eval.probe_random_init`; process 0 draws the PCA plot
  of the test features."""
  c = run.config
  encode_at_init = None
  if c.eval.probe_random_init:
    encode_at_init = functools.partial(run.features, run.initial_state())
  results, test_x, test_y = protocol.evaluate(
      functools.partial(run.features, state), run.train_source, run.test_source, c.eval,
      seed=c.seed, encode_at_init=encode_at_init)
  num_classes = run.train_source.num_classes
  class_names = (data.FASHION_MNIST_CLASSES if c.data.name == "fashion_mnist"
                 else [str(i) for i in range(num_classes)])
  if parallel.is_main_process():
    plots.plot_embedding_2d(test_x, test_y, class_names, run.workdir / "embeddings_2d.png",
                            title=f"{c.method}: test features (PCA)")
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


def train_and_evaluate(c: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       train_source: Source | None = None,
                       test_source: Source | None = None) -> dict[str, Any]:
  """The main job: train, evaluate, plot, summarise. Returns the summary dict."""
  start = time.perf_counter()
  run, state, records = loop.train(c, workdir, train_source=train_source,
                                   test_source=test_source)
  rates = [r["images_per_second"] for r in records if "images_per_second" in r]
  results = evaluate(run, state)
  results["steps"] = int(state.step)
  results["train_images_per_second"] = float(np.median(rates)) if rates else float("nan")
  results["wall_seconds"] = time.perf_counter() - start
  results.update(peak_memory_mib())
  if parallel.is_main_process():
    plots.plot_training(records, run.workdir / "training.png")
    (run.workdir / "summary.json").write_text(metrics_log.dumps(results, indent=2) + "\n")
    print(format_summary(c, results))
    print(f"outputs in {run.workdir}: config.json, {loop.METRICS_FILE} (and TensorBoard "
          "events), summary.json, training.png, embeddings_2d.png, checkpoints/")
  return results
