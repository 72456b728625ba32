"""Train-step throughput of SimCLR, BYOL and SwAV, and of the host pipeline alone.

  python experiments/bench.py [--steps 10] [--batch-size 256] [--out bench_results]

Measures, on whatever backend JAX sees, the images per second of the full jitted step
(on-device augmentation, forward, backward, optimizer, method state) after compilation,
with the method's own config (experiments/configs/<method>.py), and the images per second
the host side (index arithmetic + uint8 gather) delivers with no device work. Prints a
table and JSON, and writes bench_results/bench.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax

from jejax import config as config_lib
from jejax import data, parallel
from jejax.train.run import Run

CONFIGS = Path(__file__).parent / "configs"


def load_config(method: str):
  return config_lib.validate(config_lib.load(CONFIGS / f"{method}.py"))


def step_throughput(method: str, batch_size: int, steps: int) -> dict:
  c = load_config(method)
  c.batch_size = batch_size
  c.num_steps = steps + 1
  run = Run(c, "/tmp/jejax-bench")
  state = run.initial_state()
  batches = data.prefetch_to_device(
      data.train_batches(run.train_source, batch_size, seed=0), parallel.data_sharding(run.mesh))
  start = time.perf_counter()
  state, metrics = run.step_fn(state, next(batches), run.step_rng)  # compiles
  jax.block_until_ready(metrics)
  compile_seconds = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = run.step_fn(state, next(batches), run.step_rng)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  return {"method": method, "backbone": c.model.backbone, "batch_size": batch_size,
          "steps": steps, "images_per_second": steps * batch_size / seconds,
          "step_ms": 1000 * seconds / steps, "compile_seconds": compile_seconds}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--batch-size", type=int, default=256)
  parser.add_argument("--methods", default="simclr,byol,swav")
  parser.add_argument("--out", default="bench_results")
  args = parser.parse_args()

  devices = jax.devices()
  results = {
      "backend": jax.default_backend(),
      "devices": f"{len(devices)} x {devices[0].device_kind}",
      "host": f"{platform.machine()}, {platform.processor() or 'unknown cpu'}",
      "jax": jax.__version__,
      "train_step": [step_throughput(m, args.batch_size, args.steps)
                     for m in args.methods.split(",")],
  }
  source = data.get_source("fashion_mnist", "train")
  results["host_pipeline"] = {
      "dataset": "fashion_mnist", "batch_size": args.batch_size,
      "images_per_second": data.host_pipeline_throughput(source, args.batch_size, 200)}

  print(f"\nbackend {results['backend']} ({results['devices']}), jax {results['jax']}")
  print(f"{'method':<8} {'backbone':<9} {'batch':>5} {'images/s':>10} {'ms/step':>9} "
        f"{'compile s':>9}")
  for r in results["train_step"]:
    print(f"{r['method']:<8} {r['backbone']:<9} {r['batch_size']:>5} "
          f"{r['images_per_second']:>10.1f} {r['step_ms']:>9.1f} {r['compile_seconds']:>9.1f}")
  print(f"host pipeline alone: {results['host_pipeline']['images_per_second']:,.0f} images/s")
  print(json.dumps(results, indent=2))
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
  main()
