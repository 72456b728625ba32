"""The base config every experiment config starts from, and its validation.

Configs are `ml_collections.ConfigDict`s; `experiments/configs/<method>.py` override this
base. `validate` runs when a config is read, before any data is touched, so a bad value
stops the run with a message naming the field.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import ml_collections

from jejax.augment import ViewConfig
from jejax.train.optim import OPTIMIZERS

# ViewConfig fields a config may override (all but the output size), with their types.
AUGMENT_FIELDS = {f.name: tuple if isinstance(f.default, tuple) else float
                  for f in dataclasses.fields(ViewConfig) if f.name != "out_size"}


def base_config() -> ml_collections.ConfigDict:
  """Settings shared by every method, sized for Fashion-MNIST on 2 CPU cores.

  Deviations from the papers, for batches of 256 and a few epochs on a CPU: AdamW (peak lr
  2e-3 x batch/256, weight decay 1e-5, 0.1-epoch warmup, cosine decay) instead of LARS
  (SimCLR: 0.3 x batch/256, wd 1e-6; BYOL: 0.2 x batch/256, wd 1.5e-6), which is kept
  as `optim.name='lars'`; a small ConvNet instead of a ResNet-50; projector and predictor
  hidden width 512 (papers: 2048 for SimCLR and SwAV, 4096 for BYOL) and output 128
  (BYOL: 256).
  """
  c = ml_collections.ConfigDict()
  c.method = "simclr"
  c.seed = 0
  c.num_devices = 0  # 0: every visible device
  c.batch_size = 256  # global batch, split over the data axis
  c.epochs = 4.0  # may be fractional
  c.num_steps = 0  # > 0 overrides epochs
  # > 1: the batch goes through the network in this many microbatches whose gradients
  # are accumulated, with the loss (and a contrastive loss's negatives) over the whole
  # batch; BatchNorm statistics are then per microbatch (see jejax.train.step).
  c.accumulation_steps = 1

  c.data = ml_collections.ConfigDict()
  c.data.name = "fashion_mnist"
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  c.data.image_size = ml_collections.FieldReference(None, field_type=int)  # None: as stored

  c.model = ml_collections.ConfigDict()
  c.model.backbone = "convnet"
  c.model.widths = (16, 32, 64, 256)  # convnet only; ~0.5 s per step of 256 on 2 CPU cores
  c.model.convs_per_stage = 1  # convnet only
  c.model.small_images = True  # resnets: CIFAR stem
  c.model.projector_hidden = (512,)
  c.model.embed_dim = 128
  c.model.projector_output_bn = False  # BatchNorm on the projector output (MoCo v3)
  c.model.predictor_hidden = ()  # non-empty: a predictor MLP (BYOL, SimSiam, MoCo v3)
  c.model.num_prototypes = 0  # > 0: SwAV prototypes, DINO's output dimension
  # Compute dtype of backbone and heads: 'float32' or 'bfloat16' (mixed precision: params,
  # optimizer, BatchNorm statistics, model outputs and losses stay float32).
  c.model.dtype = "float32"

  c.augment = ml_collections.ConfigDict()
  c.augment.recipe = "simclr"
  # Overrides of the recipe's ViewConfig fields (jejax.augment.ViewConfig), applied to
  # every view; None keeps the published value.
  for field, field_type in AUGMENT_FIELDS.items():
    c.augment[field] = ml_collections.FieldReference(None, field_type=field_type)
  # Multi-crop (SwAV, DINO): small crops after the recipe's two views.
  c.augment.num_small_crops = 0
  c.augment.small_crop_size = 12  # pixels; 96/224 of a 28 px image
  c.augment.small_crop_scale = (0.05, 0.4)

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"
  c.optim.learning_rate = 2e-3  # peak, for a batch of `base_batch_size`
  c.optim.base_batch_size = 256  # lr scales linearly with batch_size / base_batch_size
  c.optim.weight_decay = 1e-5
  c.optim.momentum = 0.9  # lars, sgd
  c.optim.warmup_epochs = 0.1

  # Method hyperparameters; each method reads its own block. Paper defaults.
  # loss_impl: 'dense' (the (2B, 2B) logits), 'chunked' (chunk_size anchors at a time) or
  # 'ring' (key blocks passed round the devices; chunk_size tiles each device's 2B/P
  # anchors, 0: one tile). All three give the same loss; see jejax.losses.blockwise.
  c.simclr = ml_collections.ConfigDict({"temperature": 0.1, "loss_impl": "dense",
                                        "chunk_size": 0})
  c.byol = ml_collections.ConfigDict({"base_momentum": 0.996})
  c.swav = ml_collections.ConfigDict({
      "temperature": 0.1, "epsilon": 0.05, "sinkhorn_iters": 3,
      "freeze_prototypes_epochs": 0.0})
  c.vicreg = ml_collections.ConfigDict({"sim_weight": 25.0, "var_weight": 25.0,
                                        "cov_weight": 1.0})
  c.barlow_twins = ml_collections.ConfigDict({"off_diagonal_weight": 0.0051})
  c.moco_v2 = ml_collections.ConfigDict({"temperature": 0.2, "queue_size": 65536,
                                         "momentum": 0.999})
  c.moco_v3 = ml_collections.ConfigDict({"temperature": 1.0, "base_momentum": 0.99})
  c.dino = ml_collections.ConfigDict({
      "student_temperature": 0.1, "teacher_temperature": 0.04,
      "warmup_teacher_temperature": 0.04, "warmup_teacher_temperature_epochs": 0.0,
      "center_momentum": 0.9, "base_momentum": 0.996, "freeze_last_layer_epochs": 0.0})

  c.eval = ml_collections.ConfigDict()
  c.eval.every_epochs = 1.0  # kNN monitor during training; 0 disables
  c.eval.monitor_train_examples = 10000  # kNN bank size for the monitor (final: all)
  c.eval.knn_k = 20
  c.eval.knn_temperature = 0.07
  c.eval.probe_epochs = 100
  c.eval.probe_learning_rate = 1e-2
  c.eval.probe_random_init = True  # also probe the encoder at initialisation
  c.eval.batch_size = 1000

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 500
  c.checkpoint.keep = 2

  # Multi-process runs (jejax.parallel.initialize_distributed): set initialize=True on
  # every process. Fields left None are read by JAX from the environment (Cloud TPU pods,
  # SLURM, Open MPI, Kubernetes; JAX_COORDINATOR_ADDRESS); elsewhere set all three.
  c.distributed = ml_collections.ConfigDict()
  c.distributed.initialize = False  # False: one process, its own devices only
  c.distributed.coordinator_address = ml_collections.FieldReference(None, field_type=str)
  c.distributed.num_processes = ml_collections.FieldReference(None, field_type=int)
  c.distributed.process_id = ml_collections.FieldReference(None, field_type=int)

  c.log_every_steps = 20
  c.progress_bar = True
  return c


def _require(ok: bool, field: str, value, why: str) -> None:
  if not ok:
    raise ValueError(f"config.{field}={value!r}: {why}")


def _require_temperature(c: ml_collections.ConfigDict, field: str) -> None:
  block, name = field.split(".")
  _require(c[block][name] > 0, field, c[block][name], "a temperature must be positive")


def _require_momentum(c: ml_collections.ConfigDict, field: str) -> None:
  block, name = field.split(".")
  _require(0.0 <= c[block][name] <= 1.0, field, c[block][name],
           "an EMA momentum must lie in [0, 1]")


def _validate_distributed(d: ml_collections.ConfigDict) -> None:
  layout = {k: d[k] for k in ("coordinator_address", "num_processes", "process_id")
            if d[k] is not None}
  # Without initialize, each process would train alone on the whole batch and write the
  # same checkpoints: a silent failure of what was meant to be one run.
  _require(d.initialize or not layout, "distributed.initialize", d.initialize,
           f"{sorted(layout)} set, so distributed.initialize must be True")
  if d.coordinator_address is not None:
    host, _, port = d.coordinator_address.rpartition(":")
    _require(bool(host) and port.isdigit(), "distributed.coordinator_address",
             d.coordinator_address, "must be 'host:port' of process 0")
  if d.num_processes is not None:
    _require(d.num_processes >= 1, "distributed.num_processes", d.num_processes,
             "must be >= 1")
  if d.process_id is not None:
    _require(0 <= d.process_id < (d.num_processes or float("inf")),
             "distributed.process_id", d.process_id,
             f"must lie in [0, num_processes={d.num_processes})")


def validate(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Checks every value training depends on; returns the config unchanged."""
  # Imported here: build imports this module.
  from jejax.train.build import BACKBONES, DTYPES, METHODS, RECIPES
  _require(c.method in METHODS, "method", c.method, f"unknown method; known: {sorted(METHODS)}")
  _require(c.batch_size > 0, "batch_size", c.batch_size, "must be positive")
  _require(c.epochs > 0 or c.num_steps > 0, "epochs", c.epochs,
           "epochs or num_steps must be positive")
  _require(c.num_devices >= 0, "num_devices", c.num_devices, "must be >= 0")
  _require(c.accumulation_steps >= 1, "accumulation_steps", c.accumulation_steps,
           "must be >= 1")
  # Every microbatch is split evenly over the devices, so that a device's shard of the
  # batch holds its shard of every microbatch and the split moves no data. (With
  # num_devices=0 the device count is known only once the mesh is made.)
  split = c.accumulation_steps * max(c.num_devices, 1)
  _require(c.batch_size % split == 0, "batch_size", c.batch_size,
           f"must be divisible by accumulation_steps x num_devices = "
           f"{c.accumulation_steps} x {max(c.num_devices, 1)} = {split}")
  _require(c.model.backbone in BACKBONES, "model.backbone", c.model.backbone,
           f"unknown backbone; known: {sorted(BACKBONES)}")
  _require(c.model.embed_dim > 0, "model.embed_dim", c.model.embed_dim, "must be positive")
  _require(c.model.dtype in DTYPES, "model.dtype", c.model.dtype,
           f"unknown compute dtype; known: {sorted(DTYPES)}")
  _require(c.augment.recipe in RECIPES, "augment.recipe", c.augment.recipe,
           f"unknown view recipe; known: {sorted(RECIPES)}")
  _require(c.optim.name in OPTIMIZERS, "optim.name", c.optim.name,
           f"unknown optimizer; known: {OPTIMIZERS}")
  _require(c.optim.base_batch_size > 0, "optim.base_batch_size", c.optim.base_batch_size,
           "must be positive")
  _require(c.optim.learning_rate > 0, "optim.learning_rate", c.optim.learning_rate,
           "must be positive")
  _require(c.optim.weight_decay >= 0, "optim.weight_decay", c.optim.weight_decay,
           "must be >= 0")
  _require(c.optim.warmup_epochs >= 0, "optim.warmup_epochs", c.optim.warmup_epochs,
           "must be >= 0")
  for field in ("simclr.temperature", "swav.temperature", "moco_v2.temperature",
                "moco_v3.temperature", "dino.student_temperature", "dino.teacher_temperature",
                "dino.warmup_teacher_temperature"):
    _require_temperature(c, field)
  for field in ("byol.base_momentum", "moco_v2.momentum", "moco_v3.base_momentum",
                "dino.base_momentum", "dino.center_momentum"):
    _require_momentum(c, field)
  if c.method == "moco_v2":
    # Each step pushes the global batch of keys; the ring buffer takes whole batches.
    _require(c.moco_v2.queue_size >= c.batch_size and
             c.moco_v2.queue_size % c.batch_size == 0, "moco_v2.queue_size",
             c.moco_v2.queue_size,
             f"the queue must hold a whole number (>= 1) of batches of {c.batch_size}")
  from jejax.methods.simclr import LOSS_IMPLS
  _require(c.simclr.loss_impl in LOSS_IMPLS, "simclr.loss_impl", c.simclr.loss_impl,
           f"unknown loss implementation; known: {LOSS_IMPLS}")
  if c.simclr.loss_impl != "dense":
    ring = c.simclr.loss_impl == "ring"
    anchors = 2 * c.batch_size // (max(c.num_devices, 1) if ring else 1)
    _require((ring and c.simclr.chunk_size == 0) or
             (c.simclr.chunk_size > 0 and anchors % c.simclr.chunk_size == 0),
             "simclr.chunk_size", c.simclr.chunk_size,
             f"must divide the {anchors} anchors of {'a device' if ring else 'the batch'}")
  for field in ("warmup_teacher_temperature_epochs", "freeze_last_layer_epochs"):
    _require(c.dino[field] >= 0, f"dino.{field}", c.dino[field], "must be >= 0")
  _require(c.augment.num_small_crops >= 0, "augment.num_small_crops",
           c.augment.num_small_crops, "must be >= 0")
  if c.augment.num_small_crops:
    _require(c.method in ("swav", "dino"), "augment.num_small_crops",
             c.augment.num_small_crops, f"multi-crop is for swav and dino, not {c.method}")
    _require(c.augment.small_crop_size > 0, "augment.small_crop_size",
             c.augment.small_crop_size, "must be positive")
    low, high = c.augment.small_crop_scale
    _require(0 < low <= high <= 1, "augment.small_crop_scale", c.augment.small_crop_scale,
             "must be (low, high) with 0 < low <= high <= 1")
  _require(c.swav.epsilon > 0, "swav.epsilon", c.swav.epsilon, "must be positive")
  _require(c.swav.sinkhorn_iters >= 1, "swav.sinkhorn_iters", c.swav.sinkhorn_iters,
           "must be >= 1")
  for field in ("sim_weight", "var_weight", "cov_weight"):
    _require(c.vicreg[field] >= 0, f"vicreg.{field}", c.vicreg[field], "must be >= 0")
  _require(c.barlow_twins.off_diagonal_weight >= 0, "barlow_twins.off_diagonal_weight",
           c.barlow_twins.off_diagonal_weight, "must be >= 0")
  if c.method in ("byol", "simsiam", "moco_v3"):
    _require(len(c.model.predictor_hidden) > 0, "model.predictor_hidden",
             c.model.predictor_hidden, f"{c.method} needs a predictor")
  if c.method in ("swav", "dino"):
    _require(c.model.num_prototypes > 0, "model.num_prototypes", c.model.num_prototypes,
             f"{c.method} needs prototypes")
  _require(c.swav.freeze_prototypes_epochs >= 0, "swav.freeze_prototypes_epochs",
           c.swav.freeze_prototypes_epochs, "must be >= 0")
  _require(c.eval.every_epochs >= 0, "eval.every_epochs", c.eval.every_epochs,
           "must be >= 0 (0 disables the monitor)")
  _require(c.eval.probe_epochs > 0, "eval.probe_epochs", c.eval.probe_epochs,
           "must be positive")
  _require(c.eval.batch_size > 0, "eval.batch_size", c.eval.batch_size, "must be positive")
  _require(c.log_every_steps > 0, "log_every_steps", c.log_every_steps, "must be positive")
  _require(c.eval.knn_k > 0, "eval.knn_k", c.eval.knn_k, "must be positive")
  _require(c.eval.knn_temperature > 0, "eval.knn_temperature", c.eval.knn_temperature,
           "must be positive")
  _require(c.checkpoint.every_steps > 0, "checkpoint.every_steps", c.checkpoint.every_steps,
           "must be positive")
  _require(c.checkpoint.keep > 0, "checkpoint.keep", c.checkpoint.keep, "must be positive")
  _validate_distributed(c.distributed)
  return c


def config_from_dict(values: dict[str, Any]) -> ml_collections.ConfigDict:
  """A run's saved config (as in config.json) laid over `base_config()`.

  JSON has no tuples, so lists become tuples where the base has a tuple; a key the base
  does not know is an error (the file is from another version or not a jejax config).
  Keys the file lacks keep their defaults (fields added after the run was saved).
  """
  def merge(target: ml_collections.ConfigDict, source: dict[str, Any], prefix: str):
    for key, value in source.items():
      if key not in target:
        raise ValueError(f"config field {prefix}{key} is unknown to this version of jejax")
      if isinstance(value, dict):
        merge(target[key], value, f"{prefix}{key}.")
      else:
        target[key] = tuple(value) if isinstance(target[key], tuple) else value

  c = base_config()
  merge(c, values, "")
  return c


def load(path: str | os.PathLike) -> ml_collections.ConfigDict:
  """The config of a run's config.json or of a config file with `get_config()` (such as
  `experiments/configs/<method>.py`), not yet validated."""
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"no config file at {path}")
  if path.suffix == ".json":
    return config_from_dict(json.loads(path.read_text()))
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()
