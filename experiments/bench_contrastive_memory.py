"""Per-device memory of contrastive loss + gradient: dense vs ring vs row chunks.

  python experiments/bench_contrastive_memory.py [--batch-sizes 1024,2048,4096,8192]
      [--dim 128] [--out bench_results/contrastive_memory.json]

On 8 fake CPU devices (set here, before JAX starts), compiles `jax.value_and_grad` of each
loss w.r.t. both (N, D) inputs, the batch split over a 1-D data mesh, and reads the
compiled executable's `memory_analysis()`. Nothing is run, so batch sizes whose dense
logits would not fit in this machine's memory are measured too. The numbers are XLA's
static buffer assignment for *one device's* program (arguments are the N/8 local rows):

  temp   the temporaries' allocation, reused between buffers whose lifetimes do not
         overlap: the peak of what the program allocates beyond its inputs and outputs;
  total  temp + arguments + outputs - aliased bytes: the peak footprint of the call.

On CPU these are what XLA plans, not allocator measurements; on a GPU the same function
reports the plan of the GPU compiler. Losses: NT-Xent (2N anchors) and CLIP (N pairs),
temperature 0.1; SigLIP (N pairs), scale 10, bias -10; float32.
"""

from __future__ import annotations

import os

NUM_DEVICES = 8
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_force_host_platform_device_count={NUM_DEVICES}").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse
import json
from pathlib import Path

import jax  # after XLA_FLAGS: jax reads them when its backend starts
import jax.numpy as jnp

from jejax import losses, parallel

RING_CHUNK = 128  # rows per tile of the tiled ring
ONE_DEVICE_CHUNK = 256  # anchors per chunk of chunked_nt_xent


def variants(mesh, one_device):
  """name -> (loss_fn(a, b), the mesh its inputs are split over)."""
  t = 0.1
  return {
      "nt_xent dense, 8 dev": (lambda a, b: losses.nt_xent(a, b, temperature=t), mesh),
      "nt_xent ring, 8 dev": (
          lambda a, b: losses.ring_nt_xent(a, b, temperature=t, mesh=mesh), mesh),
      f"nt_xent ring chunk {RING_CHUNK}, 8 dev": (
          lambda a, b: losses.ring_nt_xent(a, b, temperature=t, mesh=mesh,
                                           chunk_size=RING_CHUNK), mesh),
      "nt_xent dense, 1 dev": (lambda a, b: losses.nt_xent(a, b, temperature=t), one_device),
      f"nt_xent chunked {ONE_DEVICE_CHUNK}, 1 dev": (
          lambda a, b: losses.chunked_nt_xent(a, b, temperature=t,
                                              chunk_size=ONE_DEVICE_CHUNK), one_device),
      "clip dense, 8 dev": (lambda a, b: losses.clip_loss(a, b, temperature=t), mesh),
      "clip ring, 8 dev": (
          lambda a, b: losses.ring_clip_loss(a, b, temperature=t, mesh=mesh), mesh),
      "siglip dense, 8 dev": (
          lambda a, b: losses.siglip_loss(a, b, scale=10.0, bias=-10.0), mesh),
      f"siglip ring chunk {RING_CHUNK}, 8 dev": (
          lambda a, b: losses.ring_siglip_loss(a, b, scale=10.0, bias=-10.0, mesh=mesh,
                                               chunk_size=RING_CHUNK), mesh),
  }


def memory_of(loss_fn, mesh, batch_size: int, dim: int) -> dict[str, int]:
  """Compiled per-device memory of value_and_grad(loss_fn) on (batch_size, dim) inputs."""
  z = jax.ShapeDtypeStruct((batch_size, dim), jnp.float32,
                           sharding=parallel.data_sharding(mesh))
  compiled = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1))).lower(z, z).compile()
  m = compiled.memory_analysis()
  return {"temp_bytes": m.temp_size_in_bytes, "argument_bytes": m.argument_size_in_bytes,
          "output_bytes": m.output_size_in_bytes, "alias_bytes": m.alias_size_in_bytes,
          "total_bytes": (m.temp_size_in_bytes + m.argument_size_in_bytes +
                          m.output_size_in_bytes - m.alias_size_in_bytes)}


def measure(batch_sizes: list[int], dim: int) -> list[dict]:
  """One record per (variant, batch size), with the growth over the previous size."""
  mesh, one_device = parallel.make_mesh(NUM_DEVICES), parallel.make_mesh(1)
  records = []
  for name, (loss_fn, loss_mesh) in variants(mesh, one_device).items():
    previous = None
    for n in batch_sizes:
      record = {"loss": name, "batch_size": n, "dim": dim,
                "devices": loss_mesh.shape[parallel.DATA_AXIS],
                **memory_of(loss_fn, loss_mesh, n, dim)}
      record["growth"] = record["total_bytes"] / previous if previous else None
      previous = record["total_bytes"]
      records.append(record)
  return records


def table(records: list[dict]) -> str:
  lines = [f"{'loss':32s} {'N':>6s} {'temp MiB':>10s} {'total MiB':>10s} {'x prev':>7s}"]
  for r in records:
    growth = f"{r['growth']:.2f}" if r["growth"] else ""
    lines.append(f"{r['loss']:32s} {r['batch_size']:6d} {r['temp_bytes'] / 2**20:10.2f} "
                 f"{r['total_bytes'] / 2**20:10.2f} {growth:>7s}")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch-sizes", default="1024,2048,4096,8192",
                      help="global batch sizes N (pairs), comma-separated, multiples of 8")
  parser.add_argument("--dim", type=int, default=128)
  parser.add_argument("--out", type=Path, default=Path("bench_results/contrastive_memory.json"))
  args = parser.parse_args()
  batch_sizes = [int(n) for n in args.batch_sizes.split(",")]
  records = measure(batch_sizes, args.dim)
  print("Per-device memory of jit(value_and_grad(loss)) from the compiled executable's "
        "memory_analysis(); total = temp + arguments + outputs - aliased; x prev = total "
        "over the previous N (2.0 linear, 4.0 quadratic).")
  print(table(records))
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps({"backend": jax.default_backend(), "jax": jax.__version__,
                                  "records": records}, indent=1) + "\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
