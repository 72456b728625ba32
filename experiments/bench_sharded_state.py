"""Per-device memory of the train state, replicated vs sharded (`config.shard_state`).

  python experiments/bench_sharded_state.py [--models base,large] [--devices 8]

I-JEPA with a ViT-B/16 or ViT-L/16 encoder at 224 px (predictor 384 wide, 12 deep, as the
paper's ViT-H/14 setting), AdamW, on `--devices` fake CPU devices. For each layout it
prints, per device: the train state (online and EMA target params, Adam's two moments)
from the shardings the run places it in, and XLA's compiled memory plan of one train
step (arguments, outputs, temporaries) for a global batch of one image per device.
Nothing is allocated: shapes come from `jax.eval_shape` and the step is only compiled.
Writes bench_results/sharded_state.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def state_bytes_per_device(abstract_state) -> int:
  """Bytes of the largest device's share of the state (each leaf / its shard count)."""
  import jax
  import numpy as np
  per_device = {}
  for leaf in jax.tree.leaves(abstract_state):
    shard_shape = leaf.sharding.shard_shape(leaf.shape)
    size = int(np.prod(shard_shape, dtype=np.int64)) * leaf.dtype.itemsize
    for device in leaf.sharding.device_set:
      per_device[device] = per_device.get(device, 0) + size
  return max(per_device.values())


def measure(size: str, shard: bool, num_devices: int) -> dict:
  import jax
  import numpy as np

  from jejax import config as config_lib
  from jejax import data, parallel
  from jejax.train.run import Run

  c = config_lib.load(REPO / "experiments" / "configs" / "ijepa.py")
  c.model.vit.size, c.model.vit.patch_size = size, 16
  c.ijepa.predictor_width, c.ijepa.predictor_depth = 384, 12
  c.num_devices, c.batch_size, c.num_steps = num_devices, num_devices, 10
  c.shard_state = shard
  config_lib.validate(c)
  images = np.zeros((2 * num_devices, 224, 224, 3), np.uint8)
  source = data.ArraySource(images, np.zeros(len(images), np.int32), 10, "zeros")
  run = Run(c, "/tmp/jejax-bench-sharded", train_source=source, test_source=source)
  batch = jax.ShapeDtypeStruct((num_devices, 224, 224, 3), np.uint8,
                               sharding=parallel.data_sharding(run.mesh))
  start = time.perf_counter()
  compiled = run.step_fn.lower(run.abstract_state, {"image": batch}, run.step_rng).compile()
  plan = compiled.memory_analysis()
  params = sum(x.size for x in jax.tree.leaves(run.abstract_state.params))
  return {"model": f"ViT-{size[0].upper()}/16 I-JEPA", "params": int(params),
          "layout": "sharded" if shard else "replicated", "devices": num_devices,
          "state_mib_per_device": state_bytes_per_device(run.abstract_state) / 2**20,
          "step_arguments_mib": plan.argument_size_in_bytes / 2**20,
          "step_temporaries_mib": plan.temp_size_in_bytes / 2**20,
          "step_outputs_mib": plan.output_size_in_bytes / 2**20,
          "compile_seconds": time.perf_counter() - start}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="base,large")
  parser.add_argument("--devices", type=int, default=8)
  parser.add_argument("--out", default="bench_results")
  args = parser.parse_args()
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={args.devices}")
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  rows = [measure(size, shard, args.devices) for size in args.models.split(",")
          for shard in (False, True)]
  print(f"| model | params | layout | state MiB per device | step arguments MiB | "
        f"step temporaries MiB |\n|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['model']} | {r['params'] / 1e6:.1f}M | {r['layout']} on {r['devices']} | "
          f"{r['state_mib_per_device']:.0f} | {r['step_arguments_mib']:.0f} | "
          f"{r['step_temporaries_mib']:.0f} |")
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "sharded_state.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
  main()
