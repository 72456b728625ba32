"""What a method is: a frozen dataclass of hyperparameters, its model, and a few pure
functions that the one train step (`jejax.train.step.train_step`) calls in this order:

  inputs           = method.prepare(rng, batch)        # views, masks: on the device
  outputs, stats   = method.forward(params, batch_stats, inputs)             # online
  target, t_stats  = method.target(target_params, target_batch_stats, inputs)  # or None
  loss, metrics, aux = method.loss(outputs, target, inputs, state)
  ... the optax update of the params ...
  state            = method.update(state, aux)         # EMA, queue, center, renorm

`forward` runs inside `jax.value_and_grad` (after `prepare_params`, where a method
freezes parts of the network for a while); `target` outside it, behind a stop-gradient.
Everything an input or output holds has the batch as its leading axis, so gradient
accumulation can split any method's inputs into microbatches and merge its outputs
(`jejax.train.step.accumulated_loss_and_grads`). Shapes are static: the step compiles
once per batch layout.

A method registers itself by name with its config block's defaults
(`@register_method("simclr", {"temperature": 0.1, ...})`); `from_config` builds it and
`validate` checks the config for it. Nothing else in jejax lists the methods.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh

from jejax.checks import require
from jejax.numerics import l2_normalize
from jejax.registry import Registry
from jejax.types import PyTree

if TYPE_CHECKING:  # the train step imports the methods, so no runtime import back
  from jejax.train.state import TrainState

METHODS = Registry("method", "jejax.methods")

Batch = dict[str, jax.Array]  # what the host delivers: {'image': (B, H, W, C) uint8, ...}
Inputs = Any  # what `prepare` makes of a batch on the device (a pytree, batch-leading)
Outputs = Any  # what a network returns for the inputs (a pytree, batch-leading)


class Setup(NamedTuple):
  """What building a method needs beside the config: the run's length and its data."""
  total_steps: int
  steps_per_epoch: int
  example_batch: dict[str, Any]  # a batch of the training source (shapes and dtypes)
  mesh: Mesh | None = None  # the mesh the step is jitted over (ring losses need it)


def register_method(name: str, defaults: dict[str, Any] | None = None):
  """Class decorator: registers a `Method` subclass as `config.method=name`, with its
  config block `config.<name>` holding `defaults`."""
  def decorate(cls):
    cls.name = name
    return METHODS.register(name, defaults)(cls)
  return decorate


def config_block(c: ml_collections.ConfigDict, name: str) -> dict[str, Any]:
  """`config.<name>` as a dict; the registered defaults where the config has no such
  block (a method registered after the config was made)."""
  if name in c:
    return c[name].to_dict()
  return dict(METHODS.get(name).defaults)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Method:
  """The base of every method. Attributes:
    model: the online network (a Flax module; may hold several towers and trainable loss
      parameters such as a temperature).
  Class attributes: `name` (set by `register_method`); `needs_target`: an EMA or momentum
  copy of (part of) the network, with BatchNorm statistics of its own.
  """
  model: nn.Module
  name: ClassVar[str] = ""
  needs_target: ClassVar[bool] = False

  # ---- built from a config -------------------------------------------------------------

  @classmethod
  def validate(cls, c: ml_collections.ConfigDict) -> None:
    """Raises `jejax.checks.ConfigError` naming the field for a value this method cannot
    train with. Subclasses extend it with their own block's checks."""
    require(c.eval.encoder in ("online", "target"), "eval.encoder", c.eval.encoder,
            "'online' or 'target'")
    require(c.eval.encoder == "online" or cls.needs_target, "eval.encoder", c.eval.encoder,
            f"{cls.name} has no target network to evaluate")

  @classmethod
  def from_config(cls, c: ml_collections.ConfigDict, setup: Setup) -> "Method":
    raise NotImplementedError

  # ---- the initial state ---------------------------------------------------------------

  def init(self, rng: jax.Array, batch: Batch) -> tuple[PyTree, PyTree]:
    """(params, batch_stats) of `model` for batches like `batch`."""
    variables = self.model.init(rng, **self.init_args(batch))
    return variables["params"], variables.get("batch_stats", {})

  def init_args(self, batch: Batch) -> dict[str, Any]:
    """Keyword arguments of `model.init` for batches like `batch`."""
    raise NotImplementedError

  def init_target(self, params: PyTree, batch_stats: PyTree,
                  rng: jax.Array) -> tuple[PyTree, PyTree, PyTree]:
    """(target_params, target_batch_stats, method_state) at step 0: with a target, a
    copy of the online network in buffers of its own (the step donates the state, and
    one buffer cannot be donated twice)."""
    if not self.needs_target:
      return {}, {}, self.init_method_state(params, rng)
    return copy_of(params), copy_of(batch_stats), self.init_method_state(params, rng)

  def init_method_state(self, params: PyTree, rng: jax.Array) -> PyTree:
    """State beyond the networks (a queue, a center); empty by default."""
    return {}

  # ---- the step ------------------------------------------------------------------------

  def prepare(self, rng: jax.Array, batch: Batch) -> Inputs:
    """The network inputs of `batch`, made on the device from the step's key."""
    raise NotImplementedError

  def prepare_params(self, params: PyTree, step: jax.Array) -> PyTree:
    """The params the loss differentiates (a method may stop gradients to some)."""
    return params

  def forward(self, params: PyTree, batch_stats: PyTree,
              inputs: Inputs) -> tuple[Outputs, PyTree]:
    """The online network in training mode: (outputs, new batch stats)."""
    raise NotImplementedError

  def target(self, target_params: PyTree, target_batch_stats: PyTree,
             inputs: Inputs) -> tuple[Outputs | None, PyTree]:
    """The target network's outputs (the step stops their gradient) and its new batch
    stats; (None, stats) for a method without a target."""
    return None, target_batch_stats

  def loss(self, outputs: Outputs, target: Outputs | None, inputs: Inputs,
           state: "TrainState") -> tuple[jax.Array, dict[str, jax.Array], Any]:
    """(scalar loss, metrics, aux for `update`), differentiated through `outputs`."""
    raise NotImplementedError

  def update(self, state: "TrainState", aux: Any) -> "TrainState":
    """The state after the optimizer update: EMA targets, queues, centers."""
    return state

  def embedding(self, outputs: Outputs) -> jax.Array:
    """(B, D) embeddings of the batch whose spread the step reports (effective rank,
    std): a collapse shows there first."""
    raise NotImplementedError

  # ---- evaluation ----------------------------------------------------------------------

  def features(self, variables: PyTree, images: jax.Array) -> jax.Array:
    """(B, F) float32 frozen features of (B, H, W, C) images in [0, 1] (inference mode),
    the representation kNN and linear probes evaluate. `variables` holds 'params' and
    'batch_stats' of the online network, or of the target network (`eval.encoder`)."""
    raise NotImplementedError

  def eval_variables(self, state: "TrainState", encoder: str = "online") -> PyTree:
    """The variables `features` reads: the online network's, or the target's (the
    encoder I-JEPA evaluates, DINO's teacher)."""
    if encoder == "target":
      return {"params": state.target_params, "batch_stats": state.target_batch_stats}
    return {"params": state.params, "batch_stats": state.batch_stats}


def cosine_ema_momentum(step: jax.Array, total_steps: int, base: float) -> jax.Array:
  """BYOL's target decay (Grill et al. 2020, sec. 3.2): 1 - (1 - base)(cos(pi k/K) + 1)/2.

  Rises from `base` at step 0 to 1 at `total_steps`.
  """
  progress = jnp.minimum(step / max(total_steps, 1), 1.0)
  return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


def linear_ema_momentum(step: jax.Array, total_steps: int, base: float) -> jax.Array:
  """I-JEPA's target momentum (Assran et al. 2023, sec. 4): linear from `base` at step 0
  to 1 at `total_steps`."""
  return base + (1.0 - base) * jnp.minimum(step / max(total_steps, 1), 1.0)


def ema(target: PyTree, online: PyTree, momentum: jax.Array) -> PyTree:
  """target <- momentum * target + (1 - momentum) * online."""
  return optax.incremental_update(online, target, step_size=1.0 - momentum)


def copy_of(tree: PyTree) -> PyTree:
  """`tree` in buffers of its own."""
  return jax.tree.map(jnp.copy, tree)


def freeze_prototypes(params: PyTree, frozen: jax.Array) -> PyTree:
  """`params` with the prototypes behind a stop-gradient while `frozen` (SwAV's first
  epoch; DINO's `freeze_last_layer`): they then do not chase a random encoder."""
  prototypes = params["prototypes"]["prototypes"]
  prototypes = jnp.where(frozen, jax.lax.stop_gradient(prototypes), prototypes)
  return {**params, "prototypes": {"prototypes": prototypes}}


def normalize_prototypes(params: PyTree) -> PyTree:
  """`params` with every prototype back on the unit sphere (after an optimizer update)."""
  prototypes = l2_normalize(params["prototypes"]["prototypes"])
  return {**params, "prototypes": {"prototypes": prototypes}}
