"""The base config every experiment config starts from, and its validation.

Configs are `ml_collections.ConfigDict`s; `experiments/configs/<method>.py` override this
base. `validate` runs when a config is read, before any data is touched, so a bad value
stops the run with a message naming the field. The base holds one block per registered
method (`config.<method>`) and per registered backbone (`config.model.<backbone>`), with
the defaults they registered; each method validates its own settings.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

import ml_collections

from jejax.checks import ConfigError, require
from jejax.data.corruptions import CORRUPTIONS
from jejax.methods import METHODS
from jejax.methods.views import AUGMENT_FIELDS
from jejax.models import BACKBONES, TOWERS
from jejax.models.base import DTYPES
from jejax.train.optim import NO_WEIGHT_DECAY, OPTIMIZERS


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
  # True: params, EMA target and optimizer state split over the data axis (ZeRO-3 /
  # FSDP, `jejax.parallel.state_shardings`) instead of replicated on every device.
  c.shard_state = False

  c.data = ml_collections.ConfigDict()
  c.data.name = "fashion_mnist"
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  c.data.image_size = ml_collections.FieldReference(None, field_type=int)  # None: as stored
  # One fixed ImageNet-C corruption of every train and test image (arXiv 2505.12477's
  # protocol; `jejax.data.corruptions`): a name of CORRUPTIONS, or None; severity 1-5.
  c.data.corruption = ml_collections.FieldReference(None, field_type=str)
  c.data.severity = 0
  # Processes that read and decode the training batches (`jejax.data.train_batches`);
  # 0: the prefetch thread does it. Worth it for encoded images (JPEG); the batches are
  # the same for any value.
  c.data.workers = 0
  # The multimodal pairs ('fashion_mnist_captions', 'fashion_mnist_binding') come from this
  # build of jejax.data.multimodal: 'full', or 'tiny' (the tests').
  c.data.multimodal_build = "full"

  c.model = ml_collections.ConfigDict()
  c.model.backbone = "convnet"
  for entry in BACKBONES.entries() + TOWERS.entries():  # config.model.<name>: its settings
    c.model[entry.name] = ml_collections.ConfigDict(entry.defaults)
  # The heads of the view methods (SimCLR ... DINO):
  c.model.projector_hidden = (512,)
  c.model.embed_dim = 128
  c.model.projector_output_bn = False  # BatchNorm on the projector output (MoCo v3)
  c.model.predictor_hidden = ()  # non-empty: a predictor MLP (BYOL, SimSiam, MoCo v3)
  c.model.num_prototypes = 0  # > 0: SwAV prototypes, DINO's output dimension
  # A run's workdir (or checkpoint folder) whose backbone, found by its arrays' names and
  # shapes, initialises this run's (jejax.train.pretrained); None: random init.
  c.model.pretrained = ml_collections.FieldReference(None, field_type=str)
  # Compute dtype of backbone and heads: 'float32' or 'bfloat16' (mixed precision: params,
  # optimizer, BatchNorm statistics, model outputs and losses stay float32).
  c.model.dtype = "float32"

  # The views of the view methods.
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
  c.optim.warmup_epochs = 0.1
  c.optim.warmup_start_fraction = 0.0  # the rate at step 0, a fraction of the peak
  c.optim.weight_decay = 1e-5
  # Not None: weight decay rises from weight_decay to this along a cosine (I-JEPA, DINO).
  c.optim.weight_decay_end = ml_collections.FieldReference(None, field_type=float)
  c.optim.momentum = 0.9  # lars, sgd
  c.optim.b2 = 0.999  # adamw's second-moment decay (MAE: 0.95)
  # Regular expressions on parameter paths ('encoder/block_0/.../kernel'): no weight
  # decay for these (beyond biases and norms), no update at all for the frozen ones.
  c.optim.no_weight_decay = NO_WEIGHT_DECAY
  c.optim.frozen = ()

  for entry in METHODS.entries():  # config.<method>: that method's hyperparameters
    c[entry.name] = ml_collections.ConfigDict(entry.defaults)

  c.eval = ml_collections.ConfigDict()
  c.eval.every_epochs = 1.0  # kNN monitor during training; 0 disables
  c.eval.monitor_train_examples = 10000  # kNN bank size for the monitor (final: all)
  c.eval.knn_k = 20
  c.eval.knn_temperature = 0.07
  c.eval.probe_epochs = 100
  c.eval.probe_learning_rate = 1e-2
  c.eval.probe_random_init = True  # also probe the encoder at initialisation
  c.eval.batch_size = 1000
  # 'online': the trained network; 'target': the EMA target (I-JEPA evaluates its target
  # encoder, DINO its teacher).
  c.eval.encoder = "online"

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
  # A step whose loss, gradients or updated state are not finite (NaN, inf) stops the run
  # before anything of it is saved (False), or is skipped: the state stays as it was
  # before that step, and metrics.jsonl counts the skipped steps (True).
  c.skip_nonfinite = False
  return c


def _validate_distributed(d: ml_collections.ConfigDict) -> None:
  layout = {k: d[k] for k in ("coordinator_address", "num_processes", "process_id")
            if d[k] is not None}
  # Without initialize, each process would train alone on the whole batch and write the
  # same checkpoints: a silent failure of what was meant to be one run.
  require(d.initialize or not layout, "distributed.initialize", d.initialize,
          f"{sorted(layout)} set, so distributed.initialize must be True")
  if d.coordinator_address is not None:
    host, _, port = d.coordinator_address.rpartition(":")
    require(bool(host) and port.isdigit(), "distributed.coordinator_address",
            d.coordinator_address, "must be 'host:port' of process 0")
  if d.num_processes is not None:
    require(d.num_processes >= 1, "distributed.num_processes", d.num_processes,
            "must be >= 1")
  if d.process_id is not None:
    require(0 <= d.process_id < (d.num_processes or float("inf")),
            "distributed.process_id", d.process_id,
            f"must lie in [0, num_processes={d.num_processes})")


def _validate_optim(o: ml_collections.ConfigDict) -> None:
  require(o.name in OPTIMIZERS, "optim.name", o.name, f"unknown optimizer; known: {OPTIMIZERS}")
  for field in ("base_batch_size", "learning_rate"):
    require(o[field] > 0, f"optim.{field}", o[field], "must be positive")
  for field in ("weight_decay", "warmup_epochs"):
    require(o[field] >= 0, f"optim.{field}", o[field], "must be >= 0")
  if o.weight_decay_end is not None:
    require(o.weight_decay_end >= 0, "optim.weight_decay_end", o.weight_decay_end,
            "must be >= 0")
  require(0 <= o.warmup_start_fraction <= 1, "optim.warmup_start_fraction",
          o.warmup_start_fraction, "must lie in [0, 1]")
  require(0 < o.b2 < 1, "optim.b2", o.b2, "must lie in (0, 1)")
  for field in ("no_weight_decay", "frozen"):
    for pattern in o[field]:
      try:
        re.compile(pattern)
      except re.error as e:
        raise ConfigError(f"config.optim.{field}: {pattern!r} is not a regular expression "
                          f"({e})") from None


def validate(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Checks every value training depends on (the method checks its own); returns the
  config unchanged. Raises `jejax.checks.ConfigError` naming the field."""
  require(c.method in METHODS, "method", c.method,
          f"unknown method; known: {', '.join(METHODS.names())}")
  require(c.batch_size > 0, "batch_size", c.batch_size, "must be positive")
  require(c.epochs > 0 or c.num_steps > 0, "epochs", c.epochs,
          "epochs or num_steps must be positive")
  require(c.num_devices >= 0, "num_devices", c.num_devices, "must be >= 0")
  require(c.accumulation_steps >= 1, "accumulation_steps", c.accumulation_steps,
          "must be >= 1")
  # Every microbatch is split evenly over the devices, so that a device's shard of the
  # batch holds its shard of every microbatch and the split moves no data. (With
  # num_devices=0 the device count is known only once the mesh is made.)
  split = c.accumulation_steps * max(c.num_devices, 1)
  require(c.batch_size % split == 0, "batch_size", c.batch_size,
          f"must be divisible by accumulation_steps x num_devices = "
          f"{c.accumulation_steps} x {max(c.num_devices, 1)} = {split}")
  require(c.data.workers >= 0, "data.workers", c.data.workers, "must be >= 0")
  if c.data.corruption is not None:
    require(c.data.corruption in CORRUPTIONS, "data.corruption", c.data.corruption,
            f"unknown; known: {', '.join(CORRUPTIONS)}")
    require(1 <= c.data.severity <= 5, "data.severity", c.data.severity,
            "a corruption's severity is 1 to 5")
  require(c.data.multimodal_build in ("full", "tiny"), "data.multimodal_build",
          c.data.multimodal_build, "'full' or 'tiny'")
  require(c.model.backbone in BACKBONES, "model.backbone", c.model.backbone,
          f"unknown backbone; known: {', '.join(BACKBONES.names())}")
  require(c.model.dtype in DTYPES, "model.dtype", c.model.dtype,
          f"unknown compute dtype; known: {sorted(DTYPES)}")
  _validate_backbone_blocks(c.model)
  _validate_optim(c.optim)
  e = c.eval
  require(e.every_epochs >= 0, "eval.every_epochs", e.every_epochs,
          "must be >= 0 (0 disables the monitor)")
  for field in ("probe_epochs", "batch_size", "knn_k", "knn_temperature"):
    require(e[field] > 0, f"eval.{field}", e[field], "must be positive")
  require(c.log_every_steps > 0, "log_every_steps", c.log_every_steps, "must be positive")
  require(c.checkpoint.every_steps > 0, "checkpoint.every_steps", c.checkpoint.every_steps,
          "must be positive")
  require(c.checkpoint.keep > 0, "checkpoint.keep", c.checkpoint.keep, "must be positive")
  _validate_distributed(c.distributed)
  METHODS.get(c.method).value.validate(c)
  return c


def _validate_backbone_blocks(m: ml_collections.ConfigDict) -> None:
  """The settings of the ConvNet and ViT blocks that their builders take as given."""
  require(m.convnet.conv_chunk >= 0, "model.convnet.conv_chunk", m.convnet.conv_chunk,
          "must be >= 0 (images per convolution call on the CPU; 0: the whole batch)")
  v = m.vit
  require(len(v.pixel_mean) == len(v.pixel_std) and all(s > 0 for s in v.pixel_std),
          "model.vit.pixel_std", v.pixel_std,
          f"must be positive, one per channel as pixel_mean={v.pixel_mean} has")


def config_from_dict(values: dict[str, Any]) -> ml_collections.ConfigDict:
  """A run's saved config (as in config.json) laid over `base_config()`.

  JSON has no tuples, so lists become tuples where the base has a tuple; a key the base
  does not know is an error (the file is from another version or not a jejax config).
  Keys the file lacks keep their defaults (fields added after the run was saved).
  Raises `ConfigError` for an unknown key.
  """
  def merge(target: ml_collections.ConfigDict, source: dict[str, Any], prefix: str):
    for key, value in source.items():
      if key not in target:
        raise ConfigError(f"config field {prefix}{key} is unknown to this version of jejax")
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
    raise ConfigError(f"no config file at {path}")
  if path.suffix == ".json":
    return config_from_dict(json.loads(path.read_text()))
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()
