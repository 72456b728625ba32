"""The main job's train step on the CPU: jejax against PyTorch, same network, same data.

  python experiments/bench_cpu.py [--rounds 7] [--steps 5] [--parts jejax,torch] [--profile DIR]

The network of `make run` (experiments/configs/simclr.py): ConvNet (16, 32, 64, 256) with
BatchNorm, MLP projector 256 -> 512 -> 128, NT-Xent at temperature 0.5, AdamW, a batch of
256 images as 2 views of 28 x 28 x 1 (the two views go through the network as one batch
of 512, as both SimCLR codes do). Three steps are timed:

  jejax views   jitted forward + backward + AdamW on ready-made views;
  jejax full    the run's own step (`Run.step_fn`): on-device augmentation of a uint8
                batch, then the same forward, backward and update;
  torch views   PyTorch's eager forward + backward + AdamW on ready-made views (skipped,
                with a message, when torch is not installed).

Rounds are interleaved (each round times `--steps` steps of every variant in turn), so a
slow spell of the machine hits all of them; the table shows the median ms/step over the
rounds and torch's time over each jejax variant's (>= 1: jejax at least as fast).
`--threads` sets PyTorch's intra-op threads (default: every core); XLA's CPU client
sizes its thread pool from the machine's cores. `--profile DIR` also writes a jax profiler trace of a few jejax steps.
Writes bench_results/bench_cpu.json (`--out`, `--name`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
  parser.add_argument("--batch-size", type=int, default=256, help="images (2 views each)")
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--config", default=str(Path(__file__).parent / "configs/simclr.py"))
  parser.add_argument("--parts", default="jejax,torch",
                      help="what to time, in one process: jejax, torch or both (each "
                           "alone shows what the other's idle threads cost it)")
  parser.add_argument("--profile", default=None, help="write a jax profiler trace here")
  parser.add_argument("--out", default="bench_results")
  parser.add_argument("--name", default="bench_cpu", help="writes OUT/NAME.json")
  return parser.parse_args()


# --- jejax -------------------------------------------------------------------------------

def jejax_steps(config_path: str, batch_size: int):
  """(views_step, full_step, config, parameter count): the steps run one step each and
  block."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax

  from jejax import config as config_lib
  from jejax import data, losses, parallel
  from jejax.methods.views import forward_views
  from jejax.train.run import Run

  c = config_lib.validate(config_lib.load(config_path))
  c.batch_size = batch_size
  c.num_steps = 1000
  run = Run(c, "/tmp/jejax-bench-cpu")

  # The run's own step, on a fixed stream of uint8 batches.
  full_state = run.initial_state()
  batches = data.prefetch_to_device(
      data.train_batches(run.train_source, batch_size, seed=0), parallel.data_sharding(run.mesh))

  def full_step():
    nonlocal full_state
    full_state, metrics = run.step_fn(full_state, next(batches), run.step_rng)
    jax.block_until_ready(metrics)

  # Forward + backward + the run's optimizer on ready-made float32 views.
  model = run.method.model
  temperature = c.simclr.temperature
  optimizer = run.optimizer
  views = tuple(jnp.asarray(np.random.default_rng(i).random((batch_size, *run.image_shape),
                                                             dtype=np.float32))
                for i in range(2))
  state0 = run.initial_state()
  params = state0.params

  def loss_fn(params, batch_stats, views):
    outputs, batch_stats = forward_views(model, params, batch_stats, views)
    z1, z2 = outputs[0]["embedding"], outputs[1]["embedding"]
    return losses.nt_xent(z1, z2, temperature=temperature), batch_stats

  @jax.jit
  def train_on_views(params, batch_stats, opt_state, views):
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats, views)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  carry = (params, state0.batch_stats, state0.opt_state)
  num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))

  def views_step():
    nonlocal carry
    *new, loss = train_on_views(*carry, views)
    carry = tuple(new)
    jax.block_until_ready(loss)

  return views_step, full_step, c, num_params


# --- PyTorch ------------------------------------------------------------------------------

def torch_step(c, batch_size: int, threads: int):
  """One PyTorch step of the same network on ready-made views, or None without torch."""
  try:
    import torch
    from torch import nn
  except ImportError:
    return None
  torch.set_num_threads(threads)
  torch.manual_seed(0)

  layers, in_ch = [], 1
  widths = c.model.convnet.widths
  for stage, width in enumerate(widths):
    layers += [nn.Conv2d(in_ch, width, 3, stride=2 if stage else 1, padding=1, bias=False),
               nn.BatchNorm2d(width, momentum=0.1), nn.ReLU(inplace=True)]
    in_ch = width
  hidden = c.model.projector_hidden[0]
  net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(in_ch, hidden, bias=False), nn.BatchNorm1d(hidden),
                      nn.ReLU(inplace=True), nn.Linear(hidden, c.model.embed_dim))
  optimizer = torch.optim.AdamW(net.parameters(), lr=c.optim.learning_rate,
                                weight_decay=c.optim.weight_decay)
  temperature = c.simclr.temperature
  generator = torch.Generator().manual_seed(0)
  views = torch.rand(2 * batch_size, 1, 28, 28, generator=generator)
  n2 = 2 * batch_size
  positive = torch.cat([torch.arange(batch_size, n2), torch.arange(0, batch_size)])
  self_mask = torch.eye(n2, dtype=torch.bool)

  def step():
    z = nn.functional.normalize(net(views), dim=1)
    logits = (z @ z.T / temperature).masked_fill(self_mask, float("-inf"))
    loss = nn.functional.cross_entropy(logits, positive)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()

  step.version = torch.__version__
  step.num_params = sum(p.numel() for p in net.parameters())
  return step


# --- timing -------------------------------------------------------------------------------

def time_interleaved(steps: dict, rounds: int, steps_per_round: int) -> dict:
  """Median ms/step of each variant over `rounds` interleaved rounds (after one warm-up
  round that compiles and fills caches)."""
  times = {name: [] for name in steps}
  for round_index in range(rounds + 1):
    for name, step in steps.items():
      start = time.perf_counter()
      # The warm-up takes two steps: the first step's outputs can differ from the
      # initial state in weak types or shardings, so the second call may compile again.
      for _ in range(steps_per_round if round_index else max(steps_per_round, 2)):
        step()
      if round_index:  # round 0 warms up
        times[name].append(1000 * (time.perf_counter() - start) / steps_per_round)
    if round_index:
      print(f"round {round_index}/{rounds}: " + ", ".join(
          f"{name} {times[name][-1]:.0f} ms" for name in steps), flush=True)
  return {name: {"median_ms": statistics.median(t), "min_ms": min(t), "max_ms": max(t)}
          for name, t in times.items()}


def main() -> None:
  args = parse_args()
  import jax

  parts = args.parts.split(",")
  views_step, full_step, c, num_params = jejax_steps(args.config, args.batch_size)
  steps = {"jejax views": views_step, "jejax full": full_step} if "jejax" in parts else {}
  torch_version = None
  if "torch" in parts:
    step = torch_step(c, args.batch_size, args.threads)
    if step is None:
      print("torch is not installed: timing jejax alone "
            "(pip install torch --index-url https://download.pytorch.org/whl/cpu)")
    else:
      # The same network: the same parameters, layer for layer.
      if step.num_params != num_params:
        raise SystemExit(f"torch's network has {step.num_params} parameters, jejax's "
                         f"{num_params}: they are not the same network")
      steps["torch views"] = step
      torch_version = step.version
  if args.profile and "jejax" in parts:
    views_step(), full_step()
    Path(args.profile).mkdir(parents=True, exist_ok=True)
    jax.profiler.start_trace(args.profile)
    for _ in range(3):
      views_step(), full_step()
    jax.profiler.stop_trace()
    print(f"profile trace in {args.profile}")

  timings = time_interleaved(steps, args.rounds, args.steps)
  results = {"host": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.processor()}",
             "threads": args.threads, "batch_size": args.batch_size, "jax": jax.__version__,
             "torch": torch_version, "xla_flags": os.environ.get("XLA_FLAGS", ""),
             "python": sys.version.split()[0], "rounds": args.rounds,
             "steps_per_round": args.steps, "timings": timings}
  torch_ms = timings.get("torch views", {}).get("median_ms")
  print(f"\njax {jax.__version__}, torch {torch_version}, {args.threads} threads, "
        f"batch {args.batch_size} x 2 views")
  print(f"{'step':<12} {'median ms':>10} {'min':>7} {'max':>7} {'torch / this':>13}")
  for name, t in timings.items():
    ratio = f"{torch_ms / t['median_ms']:.2f}" if torch_ms else "-"
    print(f"{name:<12} {t['median_ms']:>10.1f} {t['min_ms']:>7.1f} {t['max_ms']:>7.1f} "
          f"{ratio:>13}")
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
  main()
