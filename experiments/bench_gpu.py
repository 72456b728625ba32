"""Throughput and MFU of SimCLR and BYOL on ResNets: jejax beside a PyTorch/lightly peer.

  python experiments/bench_gpu.py                    # all parts, paper-sized, on a GPU
  python experiments/bench_gpu.py --quick            # tiny batches, a few steps (CPU)
  python experiments/bench_gpu.py --parts jax --models r18 --steps 60
  python experiments/bench_gpu.py --parts cpu-scaling

Three parts, each case in a subprocess of its own (so each framework has the accelerator
to itself, a failing case cannot take the others down, and the fake-device count is set
before JAX starts):

- jax: images/s/device of jejax's real jitted step (`Run.step_fn`: on-device views,
  forward, backward, LARS, method state), end to end: synthetic uint8 images held in host
  memory go through `train_batches` and `prefetch_to_device` every step. Also the step
  alone on one resident batch, to show what the input pipeline costs.
- torch: the same training step as lightly documents it: torchvision ResNet, lightly's
  heads, losses, momentum utilities and LARS, bf16 autocast, channels_last, and
  `SimCLRTransform` / `BYOLTransform` on PIL images in DataLoader workers (pin_memory).
  With `--torch-compile r18,...`, also the step under `torch.compile` for those models,
  reported separately.
- cpu-scaling: jejax SimCLR (the default small ConvNet config) at a fixed per-device
  batch on 1, 2, 4, 8 fake CPU devices. Fake devices share this host's cores, so this
  measures the overhead of sharding, not a speedup.

MFU is model FLOPs per second over the device's peak dense bf16 rate. Model FLOPs are
counted, the same for both frameworks, from the shapes of the convolutions and matmuls
in jejax's forward pass: 3 x forward (forward + backward) per view of the online network,
plus one forward per view of the target network for BYOL. XLA's own count for the whole
compiled step (`cost_analysis()`, which also holds augmentation, BatchNorm and the
optimizer) is reported beside it, and PyTorch's `FlopCounterMode` count of the peer's
forward as a check that the two networks are the same size.

Writes bench_gpu.json and bench_gpu.md to --out (default bench_results/); `--merge DIR...`
combines runs that each measured some cases. On a CPU, bf16 convolutions are emulated and
slow: `--quick --dtype float32` checks the whole script in a few minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Only the standard library at the top: the torch worker may run under an interpreter
# without JAX, and the CPU-scaling workers must set XLA_FLAGS before JAX is imported.

CONFIGS = Path(__file__).resolve().parent / "configs"

# Peak dense bf16 FLOP/s by `device_kind` substring; the first match wins, so the PCIe and
# NVL H100s come before the SXM one ('NVIDIA H100 80GB HBM3').
PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("A100", 312e12),
)

# Backbone settings and per-device batches: SimCLR's CIFAR-10 batch for ResNet-18@32 and
# the usual per-accelerator ImageNet batch for ResNet-50@224; on an 80 GB H100 in bf16
# they take about 3 and 22 GB.
MODELS = {
    "r18": {"backbone": "resnet18", "image_size": 32, "small_images": True, "batch": 512},
    "r50": {"backbone": "resnet50", "image_size": 224, "small_images": False, "batch": 256},
}
QUICK_BATCH = {"r18": 8, "r50": 4}

# Paper-sized heads, and LARS at the papers' learning rate per 256 images and decay.
METHODS = {
    "simclr": {"projector_hidden": (2048,), "embed_dim": 128, "predictor_hidden": (),
               "learning_rate": 0.3, "weight_decay": 1e-6},
    "byol": {"projector_hidden": (4096,), "embed_dim": 256, "predictor_hidden": (4096,),
             "learning_rate": 0.2, "weight_decay": 1.5e-6},
}

FEATURE_DIMS = {"resnet18": 512, "resnet50": 2048}


def simclr_temperature(image_size: int) -> float:
  """SimCLR's temperature: 0.5 in its CIFAR-10 runs, 0.1 on ImageNet."""
  return 0.5 if image_size <= 32 else 0.1


def peak_flops(device_kind: str) -> float | None:
  """Peak dense bf16 FLOP/s of a device, None when it is not in the table."""
  return next((peak for key, peak in PEAK_BF16_FLOPS if key in device_kind), None)


def synthetic_images(num: int, size: int, channels: int, seed: int = 0):
  """(num, size, size, channels) uint8 noise: the content does not change the work."""
  import numpy as np
  return np.random.default_rng(seed).integers(0, 256, (num, size, size, channels), np.uint8)


def store_size(batch: int) -> int:
  """How many distinct images to hold in memory: a few batches, so consecutive steps
  gather different examples, without holding much at 224 px."""
  return max(4 * batch, 64)


# ---------------------------------------------------------------------------------------
# Model FLOPs, counted from the forward pass.


def _sub_jaxprs(params: dict):
  """The jaxprs nested in an equation's params (pjit, custom_jvp, remat, ...)."""
  for value in params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      inner = getattr(item, "jaxpr", item)
      if hasattr(inner, "eqns"):
        yield inner


def matmul_flops(jaxpr) -> float:
  """FLOPs (2 per multiply-add) of the convolutions and matmuls in `jaxpr`, nested ones
  included (a scan's body counts `length` times). Elementwise work is not counted, as in
  the usual model-FLOP convention; the counted forward has no branches."""
  total = 0.0
  for eqn in jaxpr.eqns:
    out = eqn.outvars[0].aval.shape
    if eqn.primitive.name == "dot_general":
      (lhs_contracting, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += 2.0 * math.prod(out) * math.prod(lhs[d] for d in lhs_contracting)
    elif eqn.primitive.name == "conv_general_dilated":
      # Each output element sums kernel-window x input-features-per-group products.
      rhs = eqn.invars[1].aval.shape
      out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
      total += 2.0 * math.prod(out) * math.prod(rhs) / out_features
    repeats = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
    total += repeats * sum(matmul_flops(sub) for sub in _sub_jaxprs(eqn.params))
  return total


def forward_flops_per_image(model, variables, image_shape) -> float:
  """Training-mode forward FLOPs of `model` for one image of (h, w, c)."""
  import jax
  import jax.numpy as jnp
  x = jax.ShapeDtypeStruct((2, *image_shape), jnp.float32)
  jaxpr = jax.make_jaxpr(
      lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
  return matmul_flops(jaxpr.jaxpr) / 2


def step_model_flops(online: float, target: float | None, num_views: int = 2) -> float:
  """Model FLOPs of one train step per image: forward + backward (3 forwards) of the
  online network on every view, plus the target network's forward (BYOL)."""
  return num_views * (3 * online + (target or 0.0))


# ---------------------------------------------------------------------------------------
# The jejax worker.


def jejax_config(case: dict):
  """The method's experiment config, resized for the case: backbone, paper heads, LARS,
  the recipe's own augmentation (SimCLR's CIFAR setting, no blur, at 32 px)."""
  import jax

  from jejax import config as config_lib
  from jejax.methods.views import AUGMENT_FIELDS
  c = config_lib.load(CONFIGS / f"{case['method']}.py")
  c.num_devices = case["num_devices"]  # 0: every visible device
  c.batch_size = case["batch"] * (case["num_devices"] or jax.device_count())
  c.num_steps = case["warmup"] + 2 * case["steps"] + 1
  c.eval.every_epochs = 0.0
  c.progress_bar = False
  if case["backbone"] != "convnet":  # cpu-scaling keeps the default config
    m = METHODS[case["method"]]
    c.model.backbone = case["backbone"]
    c.model[case["backbone"]].small_images = case["small_images"]
    c.model.projector_hidden = m["projector_hidden"]
    c.model.embed_dim = m["embed_dim"]
    c.model.predictor_hidden = m["predictor_hidden"]
    c.optim.name = "lars"
    c.optim.learning_rate = m["learning_rate"]
    c.optim.weight_decay = m["weight_decay"]
    c.simclr.temperature = simclr_temperature(case["image_size"])
    for field in AUGMENT_FIELDS:  # the Fashion-MNIST configs' overrides
      c.augment[field] = None
    if case["image_size"] <= 32:
      c.augment.blur_prob = 0.0
  if case["dtype"] != "float32":
    if "dtype" not in c.model:
      raise SystemExit(f"--dtype {case['dtype']}: this jejax has no config.model.dtype "
                       "switch; pass --dtype float32 to measure without it")
    c.model.dtype = case["dtype"]
  return config_lib.validate(c)


def _xla_flops(stage) -> float | None:
  """The 'flops' of XLA's cost analysis of a lowered or compiled step."""
  analysis = stage.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older JAX: one dict per module
    analysis = analysis[0] if analysis else None
  return float(analysis["flops"]) if analysis and "flops" in analysis else None


def _timed_windows(step, num_windows: int, steps_per_window: int, block) -> list[float]:
  """Seconds of each window of `steps_per_window` calls of `step`, each window ended by
  `block` (wait for the device), so queued work is not left out of the time."""
  seconds = []
  for _ in range(num_windows):
    start = time.perf_counter()
    for _ in range(steps_per_window):
      step()
    block()
    seconds.append(time.perf_counter() - start)
  return seconds


def _rates(seconds: list[float], steps_per_window: int, images_per_step: int) -> dict:
  """Images/s over all windows, and the slowest and fastest window."""
  per_window = sorted(steps_per_window * images_per_step / s for s in seconds)
  return {"images_per_second": len(seconds) * steps_per_window * images_per_step
          / sum(seconds), "window_min": per_window[0], "window_max": per_window[-1],
          "step_ms": 1000 * sum(seconds) / (len(seconds) * steps_per_window)}


def jax_worker(case: dict) -> dict:
  """One jejax case; see the module docstring."""
  import jax
  import numpy as np

  from jejax import data, parallel
  from jejax.job import peak_memory_mib
  from jejax.train.run import Run

  c = jejax_config(case)
  batch = c.batch_size
  images = synthetic_images(store_size(batch), case["image_size"], case["channels"])
  source = data.ArraySource(images, np.zeros(len(images), np.int32), 10, "synthetic")
  with tempfile.TemporaryDirectory() as workdir:
    run = Run(c, workdir, train_source=source, test_source=source)
  initial = jax.device_get(run.initial_state())
  variables = {"params": initial.params, "batch_stats": initial.batch_stats}
  online = forward_flops_per_image(run.method.model, variables, source.image_shape)
  target = (forward_flops_per_image(run.method.model.clone(predictor=None), variables,
                                    source.image_shape)
            if run.method.needs_target else None)

  state = run.initial_state()
  batches = data.prefetch_to_device(data.train_batches(source, batch, seed=0),
                                    parallel.data_sharding(run.mesh))
  first = next(batches)
  start = time.perf_counter()
  # Compiled ahead of time for XLA's FLOP count; the jitted step reuses this executable.
  lowered = run.step_fn.lower(state, first, run.step_rng)
  compiled = lowered.compile()
  compile_seconds = time.perf_counter() - start
  holder = {"state": state}

  def step(batch=None):
    holder["state"], holder["metrics"] = run.step_fn(
        holder["state"], batch if batch is not None else next(batches), run.step_rng)

  def block():
    jax.block_until_ready((holder["state"], holder["metrics"]))

  start = time.perf_counter()
  step(first)
  block()
  first_call_seconds = time.perf_counter() - start
  for _ in range(case["warmup"]):
    step()
  block()
  windows = case["windows"]
  per_window = max(1, case["steps"] // windows)
  end_to_end = _timed_windows(step, windows, per_window, block)
  # The step alone, on one batch resident on the device: what the pipeline hides or not.
  step_only = _timed_windows(lambda: step(first), windows, per_window, block)
  loss = float(jax.device_get(holder["metrics"]["loss"]))
  batches.close()  # stops the prefetch thread
  devices = jax.devices()
  return {
      "framework": "jejax", "backend": jax.default_backend(),
      "device_kind": devices[0].device_kind, "num_devices": run.mesh.devices.size,
      "jax": jax.__version__, "global_batch": batch,
      "dtype": c.model.get("dtype", "float32"),
      "steps_timed": windows * per_window,
      **_rates(end_to_end, per_window, batch),
      "step_only": _rates(step_only, per_window, batch),
      "compile_seconds": compile_seconds, "first_call_seconds": first_call_seconds,
      "online_forward_flops": online, "target_forward_flops": target,
      "model_flops_per_image": step_model_flops(online, target),
      # XLA's count of the compiled step leaves out what runs as library calls (cuDNN
      # convolutions on GPUs); the unoptimised HLO's count is beside it where the backend
      # gives one (XLA:CPU does, the GPU backend returns none).
      "xla_flops_per_step": _xla_flops(compiled),
      "hlo_flops_per_step": _xla_flops(lowered),
      "final_loss": loss, **peak_memory_mib(),
  }


# ---------------------------------------------------------------------------------------
# The PyTorch / lightly worker.


def _torch_peer(case: dict, torch, device):
  """lightly's example modules for the case: the online network (backbone, projection
  and, for BYOL, prediction head) and BYOL's momentum copy (None for SimCLR). The CIFAR
  stem is SimCLR's: 3x3 stride-1 conv1, no max-pool."""
  import copy

  import torchvision
  from lightly.models import modules
  from lightly.models.utils import deactivate_requires_grad

  nn = torch.nn
  backbone = getattr(torchvision.models, case["backbone"])()
  if case["small_images"]:
    backbone.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    backbone.maxpool = nn.Identity()
  backbone.fc = nn.Identity()
  m = METHODS[case["method"]]
  features, out = FEATURE_DIMS[case["backbone"]], m["embed_dim"]
  hidden = m["projector_hidden"][0]
  if case["method"] == "simclr":
    heads = nn.ModuleDict({"projection": modules.SimCLRProjectionHead(features, hidden, out)})
  else:
    heads = nn.ModuleDict({
        "projection": modules.BYOLProjectionHead(features, hidden, out),
        "prediction": modules.BYOLPredictionHead(out, m["predictor_hidden"][0], out)})
  online = nn.ModuleDict({"backbone": backbone, **heads}).to(device)
  online = online.to(memory_format=torch.channels_last)
  momentum = None
  if case["method"] == "byol":
    momentum = nn.ModuleDict({"backbone": copy.deepcopy(online["backbone"]),
                              "projection": copy.deepcopy(online["projection"])})
    deactivate_requires_grad(momentum)
  return online, momentum


def _lars(online, case):
  """lightly's LARS; biases and norm parameters get no decay and no LARS scaling (a zero
  decay excludes them there), as in the papers and jejax."""
  from lightly.utils.lars import LARS
  m = METHODS[case["method"]]
  params = list(online.parameters())
  groups = [{"params": [p for p in params if p.ndim > 1]},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
  lr = m["learning_rate"] * case["batch"] / 256
  return LARS(groups, lr=lr, momentum=0.9, weight_decay=m["weight_decay"])


def _transform(case):
  """lightly's view transform for the method; no blur at 32 px, as lightly's CIFAR-10
  examples and SimCLR's CIFAR setting do (and as the jejax side is configured)."""
  from lightly import transforms
  size = case["image_size"]
  blur = {"gaussian_blur": 0.0} if size <= 32 else {}
  if case["method"] == "simclr":
    return transforms.SimCLRTransform(input_size=size, **blur)
  return transforms.BYOLTransform(
      view_1_transform=transforms.BYOLView1Transform(input_size=size, **blur),
      view_2_transform=transforms.BYOLView2Transform(input_size=size, **blur))


class PilImages:
  """A map-style dataset of uint8 arrays returned as PIL images through a transform, as
  torchvision's CIFAR10 does; `length` may exceed the store (indices wrap)."""

  def __init__(self, images, transform, length: int):
    self.images, self.transform, self.length = images, transform, length

  def __len__(self) -> int:
    return self.length

  def __getitem__(self, index: int):
    from PIL import Image
    return self.transform(Image.fromarray(self.images[index % len(self.images)])), 0


def torch_worker(case: dict) -> dict:
  """One peer case; skipped with the reason when torch or lightly is missing."""
  try:
    import lightly
    import torch
    from lightly.loss import NegativeCosineSimilarity, NTXentLoss
    from lightly.models.utils import update_momentum
    from lightly.utils.scheduler import cosine_schedule
  except ImportError as e:
    return {"skipped": f"PyTorch peer skipped: {e} (pip install torch torchvision lightly)"}
  from torch.utils.flop_counter import FlopCounterMode

  cuda = torch.cuda.is_available()
  device = torch.device("cuda" if cuda else "cpu")
  torch.backends.cudnn.benchmark = True
  online, momentum = _torch_peer(case, torch, device)
  optimizer = _lars(online, case)
  # Steps run: first + warm-up + timed end to end + timed step only (+1 spare batch).
  batch, total = case["batch"], case["warmup"] + 2 * case["steps"] + 2
  workers = os.cpu_count() or 1
  loader = torch.utils.data.DataLoader(
      PilImages(synthetic_images(store_size(batch), case["image_size"], 3), _transform(case),
                length=batch * (total + 1)),
      batch_size=batch, shuffle=True, num_workers=workers, pin_memory=cuda,
      drop_last=True, persistent_workers=True)
  autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if case["dtype"] == "bfloat16"
              else contextlib.nullcontext())

  def project(modules, x):
    return modules["projection"](modules["backbone"](x).flatten(start_dim=1))

  if case["method"] == "simclr":
    criterion = NTXentLoss(temperature=simclr_temperature(case["image_size"]))

    def loss_fn(x0, x1):
      with autocast:
        return criterion(project(online, x0), project(online, x1))

    def forward(x):
      return project(online, x)
  else:
    criterion = NegativeCosineSimilarity()

    def forward(x):
      return online["prediction"](project(online, x))

    def loss_fn(x0, x1):
      with autocast:
        with torch.no_grad():
          z0, z1 = project(momentum, x0), project(momentum, x1)
        return 0.5 * (criterion(forward(x0), z1) + criterion(forward(x1), z0))

  compute_loss = torch.compile(loss_fn) if case.get("compile") else loss_fn
  with torch.no_grad(), FlopCounterMode(display=False) as counter:
    forward(torch.zeros(2, 3, case["image_size"], case["image_size"], device=device))
  counted = {"step": 0}

  def step(views):
    x0, x1 = (v.to(device, non_blocking=True, memory_format=torch.channels_last)
              for v in views)
    if momentum is not None:  # lightly's BYOL example: EMA first, cosine tau schedule
      tau = cosine_schedule(counted["step"], total, 0.996, 1.0)
      update_momentum(online["backbone"], momentum["backbone"], m=tau)
      update_momentum(online["projection"], momentum["projection"], m=tau)
    loss = compute_loss(x0, x1)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    counted["step"] += 1
    return loss

  def block():
    if cuda:
      torch.cuda.synchronize()

  batches = iter(loader)
  start = time.perf_counter()
  step(next(batches)[0])  # worker start-up, cuDNN autotuning, torch.compile
  block()
  first_call_seconds = time.perf_counter() - start
  last = {}

  def next_step():
    last["loss"] = step(next(batches)[0])

  for _ in range(case["warmup"]):
    next_step()
  block()
  windows = case["windows"]
  per_window = max(1, case["steps"] // windows)
  seconds = _timed_windows(next_step, windows, per_window, block)
  # The step alone, on one batch resident on the device, as on the jejax side.
  resident = [v.to(device, memory_format=torch.channels_last) for v in next(batches)[0]]
  step_only = _timed_windows(lambda: step(resident), windows, per_window, block)
  return {
      "framework": "lightly" + (" + torch.compile" if case.get("compile") else ""),
      "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
      "torch": torch.__version__, "lightly": lightly.__version__,
      "global_batch": batch, "dataloader_workers": workers, "dtype": case["dtype"],
      "steps_timed": windows * per_window, **_rates(seconds, per_window, batch),
      "step_only": _rates(step_only, per_window, batch),
      "first_call_seconds": first_call_seconds,
      "torch_forward_flops": counter.get_total_flops() / 2,
      "final_loss": last["loss"].item(),
      "peak_device_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
  }


# ---------------------------------------------------------------------------------------
# The driver: one subprocess per case, results written after each.


def run_case(part: str, case: dict, *, python: str, env: dict | None, timeout: float) -> dict:
  """Runs `case` in a fresh interpreter and returns its result, or what went wrong."""
  with tempfile.NamedTemporaryFile(suffix=".json") as result:
    command = [python, str(Path(__file__).resolve()), "--worker", part,
               "--case", json.dumps(case), "--result-file", result.name]
    print(f"\n=== {part}: {case}", flush=True)
    start = time.perf_counter()
    try:
      process = subprocess.run(command, env={**os.environ, **(env or {})}, timeout=timeout,
                               check=False)
    except subprocess.TimeoutExpired:
      return {"error": f"timed out after {timeout:.0f} s"}
    text = Path(result.name).read_text()
    if not text:
      return {"error": f"worker exited with {process.returncode} (see the log above)"}
    out = json.loads(text)
    if process.returncode:  # after its result was written: kept, with the code
      out["exit_code"] = process.returncode
    out["wall_seconds"] = time.perf_counter() - start
    return out


def _fmt(value, spec: str = ",.0f", missing: str = "n/a") -> str:
  return missing if value is None else format(value, spec)


def _rate(value) -> str:
  """Images/s: whole numbers, but three digits where a CPU makes them small."""
  return _fmt(value, ",.0f" if value is None or value >= 100 else ".3g")


def _mfu(images_per_second_per_device, flops_per_image, peak) -> float | None:
  if None in (images_per_second_per_device, flops_per_image, peak):
    return None
  return images_per_second_per_device * flops_per_image / peak


def summarize(results: dict) -> None:
  """Adds per-device rates, MFUs and the jejax / peer ratios to each row in place."""
  kind = next((r["jax"].get("device_kind") for r in results["rows"]
               if "device_kind" in r.get("jax", {})), None)
  peak = peak_flops(kind or "")
  results["device_kind"], results["peak_bf16_flops"] = kind, peak
  for row in results["rows"]:
    j = row.get("jax", {})
    flops = j.get("model_flops_per_image")
    if "images_per_second" in j:
      j["images_per_second_per_device"] = j["images_per_second"] / j["num_devices"]
      j["mfu"] = _mfu(j["images_per_second_per_device"], flops, peak)
    for peer in row.get("torch", []):
      if "images_per_second" in peer:
        peer["mfu"] = _mfu(peer["images_per_second"], flops, peak)
        if "images_per_second_per_device" in j:
          peer["jejax_ratio"] = j["images_per_second_per_device"] / peer["images_per_second"]


def _pct(x) -> str:
  return _fmt(None if x is None else 100 * x, ".1f") + ("%" if x is not None else "")


def _peer_name(peer: dict) -> str:
  name = peer.get("framework", peer.get("skipped") or peer.get("error") or "-")
  return f"{name} (run {peer['run']})" if "run" in peer else name


def _throughput_table(rows: list[dict]) -> list[str]:
  lines = ["| model | method | batch/device | model GFLOP/img | jejax img/s/dev | jejax MFU | "
           "jejax step only | peer | peer img/s/dev | peer MFU | peer step only | "
           "jejax / peer |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for row in rows:
    j = row.get("jax", {})
    for i, p in enumerate(row.get("torch") or [{}]):
      jcells = ([j.get("error") or _rate(j.get("images_per_second_per_device")),
                 _pct(j.get("mfu")), _rate(j.get("step_only", {}).get("images_per_second"))]
                if i == 0 else [""] * 3)
      lines.append("| " + " | ".join([
          row["model"], row["method"], str(row["batch"]),
          _fmt(j.get("model_flops_per_image") and j["model_flops_per_image"] / 1e9, ".2f"),
          *jcells, _peer_name(p),
          _rate(p.get("images_per_second")), _pct(p.get("mfu")),
          _rate(p.get("step_only", {}).get("images_per_second")),
          _fmt(p.get("jejax_ratio"), ".2f")]) + " |")
  return lines


def _flop_table(rows: list[dict]) -> list[str]:
  lines = ["| model | method | forward GFLOP/img, jejax count | forward GFLOP/img, "
           "torch FlopCounterMode | model TFLOP/step | XLA cost_analysis TFLOP/step |",
           "|---|---|---|---|---|---|"]
  for row in rows:
    j, peers = row.get("jax", {}), row.get("torch") or [{}]
    flops, batch = j.get("model_flops_per_image"), j.get("global_batch")
    lines.append("| " + " | ".join([
        row["model"], row["method"],
        _fmt(j.get("online_forward_flops") and j["online_forward_flops"] / 1e9, ".3f"),
        _fmt(peers[0].get("torch_forward_flops") and peers[0]["torch_forward_flops"] / 1e9,
             ".3f"),
        _fmt(flops and batch and flops * batch / 1e12, ".2f"),
        _fmt(j.get("xla_flops_per_step") and j["xla_flops_per_step"] / 1e12, ".3f")]) + " |")
  return lines


def markdown(results: dict) -> str:
  """The throughput table, the FLOP counts, the CPU-scaling table, and how they were
  measured."""
  peak = results.get("peak_bf16_flops")
  lines = [f"# SSL train-step throughput ({results['device'] or 'host CPU'})", "",
           f"Device kind `{results.get('device_kind')}`, peak dense bf16 "
           f"{_fmt(peak and peak / 1e12, '.0f')} TFLOP/s; {results['host_cpus']} host CPUs; "
           f"dtype {results['dtype']}.", ""]
  lines += [f"- run {k}: `{argv}`" for k, argv in enumerate(results.get("runs", []), 1)]
  lines += [""] if "runs" in results else []
  if results["rows"]:
    lines += _throughput_table(results["rows"])
    lines += ["", "jejax: end to end (host `train_batches` + `prefetch_to_device` from "
              "uint8 images in memory, on-device augmentation, forward, backward, LARS, "
              "method state: `Run.step_fn`). Peer: lightly's documented pipeline (PIL "
              "transforms in DataLoader workers, pin_memory), torchvision ResNet, lightly "
              "heads, losses and LARS, bf16 autocast, channels_last. 'step only': the same "
              "step on one batch already on the device. MFU: model FLOPs per image (3 x "
              "forward per view of the online network, plus BYOL's target forward) x "
              "images/s / peak.", "", "## FLOP counts", ""]
    lines += _flop_table(results["rows"])
    lines += ["", "The forward counts are the convolutions and matmuls of each framework's "
              "own forward pass (equal counts: the same network). XLA's count is the "
              "compiled step's `cost_analysis()`; on GPUs it leaves out the convolutions, "
              "which run as cuDNN library calls, so it is not a usable model-FLOP count "
              "for ResNets there.", ""]
  if results.get("cpu_scaling"):
    lines += ["## jejax SimCLR on fake CPU devices (fixed batch per device)", "",
              "Fake devices share the host's cores: this shows the overhead of sharding "
              "the step, not a speedup.", "",
              "| devices | global batch | ms/step | images/s | time per image vs 1 device |",
              "|---|---|---|---|---|"]
    base = next((r["images_per_second"] for r in results["cpu_scaling"]
                 if r.get("images_per_second")), None)
    for r in results["cpu_scaling"]:
      rate = r.get("images_per_second")
      lines.append(f"| {r['devices']} | {r.get('global_batch', '')} | "
                   f"{_fmt(r.get('step_ms'), '.1f', r.get('error', 'n/a'))} | "
                   f"{_rate(rate)} | {_fmt(base and rate and base / rate, '.2f')} |")
    lines += ["", "On shared cores the ideal is 1.00 in the last column (N devices do N "
              "times the work in N times the time); above 1 is the cost of the split."]
  return "\n".join(lines) + "\n"


def write(results: dict, out: Path) -> None:
  summarize(results)
  out.mkdir(parents=True, exist_ok=True)
  (out / "bench_gpu.json").write_text(json.dumps(results, indent=2) + "\n")
  (out / "bench_gpu.md").write_text(markdown(results))


def merge(runs: list[dict]) -> dict:
  """One result from runs that each measured some of the cases (the device machine's
  10-minute command limit splits a full run). A later run's jejax result of a case
  replaces an earlier one's; every peer result is kept, marked with its run's number,
  so the table shows how much the peer varies from run to run."""
  merged = {**runs[0], "runs": [" ".join(r["argv"]) for r in runs]}
  rows, scaling = {}, {}
  for number, run in enumerate(runs, start=1):
    for row in run["rows"]:
      old = rows.setdefault((row["model"], row["method"]), {**row, "torch": []})
      if "jax" in row:
        old["jax"] = {**row["jax"], "run": number}
      old["torch"] += [{**peer, "run": number} for peer in row.get("torch", [])]
    scaling.update({r["devices"]: r for r in run["cpu_scaling"]})
    merged["device"] = merged["device"] or run["device"]
  merged["rows"], merged["cpu_scaling"] = list(rows.values()), list(scaling.values())
  return merged


def _case(args, model: str, method: str, compile_torch: bool = False) -> dict:
  spec = MODELS[model]
  return {"method": method, "backbone": spec["backbone"], "image_size": spec["image_size"],
          "small_images": spec["small_images"], "channels": 3,
          "batch": args.batch or (QUICK_BATCH[model] if args.quick else spec["batch"]),
          "num_devices": 0, "dtype": args.dtype, "warmup": args.warmup,
          "steps": args.steps, "windows": args.windows, "compile": compile_torch}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--parts", default="jax,torch,cpu-scaling")
  parser.add_argument("--models", default="r18,r50")
  parser.add_argument("--methods", default="simclr,byol")
  parser.add_argument("--steps", type=int, default=None,
                      help="timed steps per case (default 60, --quick 4)")
  parser.add_argument("--warmup", type=int, default=None, help="default 5, --quick 1")
  parser.add_argument("--windows", type=int, default=None, help="default 3, --quick 2")
  parser.add_argument("--batch", type=int, default=0, help="per-device batch override")
  parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
  parser.add_argument("--quick", action="store_true", help="tiny batches, few steps")
  parser.add_argument("--torch-compile", default="",
                      help="models or model:method pairs (r18,r50:byol) whose peer "
                      "step is also timed under torch.compile")
  parser.add_argument("--torch-python", default=sys.executable,
                      help="interpreter with torch + lightly for the peer")
  parser.add_argument("--cpu-devices", default="1,2,4,8")
  parser.add_argument("--cpu-batch", type=int, default=None,
                      help="per-device batch of the CPU scaling (default 64, --quick 16)")
  parser.add_argument("--case-timeout", type=float, default=900)
  parser.add_argument("--out", default="bench_results")
  parser.add_argument("--merge", nargs="+", metavar="DIR",
                      help="combine the bench_gpu.json of several runs into --out")
  parser.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
  parser.add_argument("--case", help=argparse.SUPPRESS)
  parser.add_argument("--result-file", help=argparse.SUPPRESS)
  args = parser.parse_args()

  if args.worker:
    worker = jax_worker if args.worker == "jax" else torch_worker
    result = json.dumps(worker(json.loads(args.case)))
    Path(args.result_file).write_text(result)
    print(f"result: {result}", flush=True)
    # Skip interpreter finalization: a daemon thread still inside a C++ call (the
    # prefetch thread's device_put) aborts the process there on Python 3.12.
    os._exit(0)
  if args.merge:
    results = merge([json.loads((Path(d) / "bench_gpu.json").read_text())
                     for d in args.merge])
    write(results, Path(args.out))
    print(markdown(results))
    return

  args.steps = args.steps or (4 if args.quick else 60)
  args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
  args.windows = args.windows or (2 if args.quick else 3)
  parts = args.parts.split(",")
  out = Path(args.out)
  results = {"device": "", "host_cpus": os.cpu_count(), "dtype": args.dtype,
             "python": platform.python_version(), "argv": sys.argv[1:], "rows": [],
             "cpu_scaling": []}
  for model in args.models.split(","):
    for method in args.methods.split(","):
      case = _case(args, model, method)
      row = {"model": f"{MODELS[model]['backbone']}@{case['image_size']}px",
             "method": method, "batch": case["batch"]}
      results["rows"].append(row)
      if "jax" in parts:
        row["jax"] = run_case("jax", case, python=sys.executable, env=None,
                              timeout=args.case_timeout)
        results["device"] = row["jax"].get("device_kind", results["device"])
      if "torch" in parts:
        wanted = {model, f"{model}:{method}"} & set(args.torch_compile.split(","))
        row["torch"] = [run_case("torch", _case(args, model, method, compiled),
                                 python=args.torch_python, env=None,
                                 timeout=args.case_timeout)
                        for compiled in ([False, True] if wanted else [False])]
        results["device"] = results["device"] or row["torch"][0].get("device", "")
      write(results, out)
  if "cpu-scaling" in parts:
    per_device = args.cpu_batch or (16 if args.quick else 64)
    for n in (int(d) for d in args.cpu_devices.split(",")):
      case = {"method": "simclr", "backbone": "convnet", "image_size": 28, "channels": 1,
              "batch": per_device, "num_devices": n, "dtype": "float32",
              "warmup": args.warmup, "steps": max(args.steps // 4, 2), "windows": 1}
      r = run_case("jax", case, python=sys.executable, timeout=args.case_timeout,
                   env={"JAX_PLATFORMS": "cpu",
                        "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"})
      results["cpu_scaling"].append({"devices": n, **r})
      write(results, out)
  write(results, out)
  print("\n" + markdown(results))
  print(f"wrote {out / 'bench_gpu.json'} and {out / 'bench_gpu.md'}")


if __name__ == "__main__":
  main()
