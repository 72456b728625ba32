"""The one train step every method shares."""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jejax import parallel
from jejax.augment import ViewConfig, make_views
from jejax.eval.diagnostics import effective_rank, embedding_std
from jejax.methods.base import Method, Outputs
from jejax.train.state import TrainState
from jejax.types import PyTree

Batch = dict[str, jax.Array]
StepFn = Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict[str, jax.Array]]]


def forward(model: nn.Module, params: PyTree, batch_stats: PyTree,
            views: tuple[jax.Array, ...]) -> tuple[Outputs, PyTree]:
  """Runs the model in training mode on the views, one call per resolution.

  Consecutive views of one shape are stacked along the batch and go through one call, so
  BatchNorm statistics are taken over all of them, as SimCLR's reference code does; a
  multi-crop layout (2 large, then N small crops) makes two calls, as SwAV's code does,
  each updating the running statistics. Returns per-view outputs and the new stats.
  """
  per_view = []
  for group in _runs_of_equal_shape(views):
    x = jnp.concatenate(group, axis=0)  # G x (B, H, W, C) -> (G*B, H, W, C)
    out, mutated = model.apply({"params": params, "batch_stats": batch_stats}, x,
                               train=True, mutable=["batch_stats"])
    batch_stats = mutated["batch_stats"]
    b = group[0].shape[0]
    per_view += [jax.tree.map(lambda a, i=i, b=b: a[i * b:(i + 1) * b], out)
                 for i in range(len(group))]
  return per_view, batch_stats


def _runs_of_equal_shape(views: tuple[jax.Array, ...]) -> list[list[jax.Array]]:
  """[[v1, v2], [v3, v4, v5]] for views whose shapes are (a, a, b, b, b)."""
  groups = []
  for view in views:
    if groups and groups[-1][0].shape == view.shape:
      groups[-1].append(view)
    else:
      groups.append([view])
  return groups


class LossAndGrads(NamedTuple):
  """What the step needs from the forward and backward passes of one batch."""
  loss: jax.Array  # scalar, the method's loss on the whole batch
  grads: PyTree  # d loss / d params
  batch_stats: PyTree  # the updated BatchNorm running statistics
  metrics: dict[str, jax.Array]  # the method's own metrics
  aux: Any  # what `method.update` needs (MoCo's keys, DINO's batch center)
  embedding: jax.Array  # (B, D) first view's projector outputs, for the diagnostics


def _target_outputs(model: nn.Module, method: Method, state: TrainState,
                    views: tuple[jax.Array, ...]) -> Outputs | None:
  """The target network's outputs (constants for the gradient), or None without one."""
  if not method.needs_target:
    return None
  target_views = views[:method.num_target_views]  # DINO's teacher: the global crops
  target, _ = forward(model, state.target_params, state.batch_stats, target_views)
  return jax.lax.stop_gradient(target)


def loss_and_grads(state: TrainState, views: tuple[jax.Array, ...], *, model: nn.Module,
                   method: Method) -> LossAndGrads:
  """The method's loss on the views of the whole batch and its gradient, in one pass.

  Args:
    views: per view, (B, H, W, C) float32 images.
  """
  target = _target_outputs(model, method, state, views)

  def loss_fn(params):
    params = method.prepare_params(params, state.step)
    online, batch_stats = forward(model, params, state.batch_stats, views)
    loss, metrics, aux = method.loss(online, target, state)
    return loss, (batch_stats, metrics, aux, online[0]["embedding"])

  (loss, (batch_stats, metrics, aux, embedding)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  return LossAndGrads(loss, grads, batch_stats, metrics, aux, embedding)


def accumulated_loss_and_grads(state: TrainState, views: tuple[jax.Array, ...], *,
                               model: nn.Module, method: Method,
                               accumulation_steps: int) -> LossAndGrads:
  """`loss_and_grads` with the activation memory of one microbatch of B / K examples.

  Averaging K microbatch losses would change a contrastive loss: each anchor would see
  only the negatives of its own microbatch. Instead, as in GradCache (Gao et al. 2021,
  "Scaling deep contrastive learning batch size under memory limited setup"):

    1. every microbatch goes forward without gradient (`lax.map`), which gives the
       per-view outputs of the whole batch (and the target's, when the method has one);
    2. the method's loss runs on those whole-batch outputs, so its negatives, Sinkhorn
       marginals, covariances and centers span the batch, and is differentiated with
       respect to the online outputs only;
    3. every microbatch goes forward again under `jax.vjp` and pulls its slice of that
       output gradient back to the params; a `scan` sums them, so one microbatch's
       activations are alive at a time.

  The loss and gradients are then those of the whole batch, for any model without
  layers that mix examples; the price is a second online forward pass.

  Deviation, BatchNorm: its statistics are taken per microbatch (B / K examples), so the
  outputs, the loss and the gradients differ from the whole batch's (as with per-device
  BatchNorm). The running statistics get one momentum update per step, the average of
  the microbatches' updates: the running mean moves towards the whole batch's mean, the
  running variance towards the mean within-microbatch variance.

  Args:
    views: per view, (B, H, W, C) float32 images, B divisible by `accumulation_steps`;
      views of several resolutions (multi-crop) are split alike.
    accumulation_steps: K, the number of microbatches.
  """
  k = accumulation_steps
  micro_views = tuple(_split(view, k) for view in views)  # (B, ...) -> (K, B/K, ...)

  def online_forward(params, views):
    return forward(model, method.prepare_params(params, state.step), state.batch_stats, views)

  # 1. Whole-batch outputs, microbatch by microbatch; nothing is kept for a backward pass.
  online, batch_stats = jax.lax.map(functools.partial(online_forward, state.params),
                                    micro_views)
  online = jax.tree.map(_merge, online)
  batch_stats = jax.tree.map(lambda s: jnp.mean(s, axis=0), batch_stats)
  target = None
  if method.needs_target:
    target = jax.lax.map(
        lambda views: _target_outputs(model, method, state, views), micro_views)
    target = jax.tree.map(_merge, target)

  # 2. The loss on the whole batch, and its gradient with respect to the online outputs.
  def loss_of_outputs(online):
    loss, metrics, aux = method.loss(online, target, state)
    return loss, (metrics, aux)

  (loss, (metrics, aux)), output_grads = jax.value_and_grad(
      loss_of_outputs, has_aux=True)(online)

  # 3. Each microbatch's share of d loss / d params, summed.
  def accumulate(grads, microbatch):
    views, output_grads = microbatch
    _, pullback = jax.vjp(lambda params: online_forward(params, views)[0], state.params)
    return jax.tree.map(jnp.add, grads, pullback(output_grads)[0]), None

  micro_output_grads = jax.tree.map(lambda g: _split(g, k), output_grads)
  grads, _ = jax.lax.scan(accumulate, jax.tree.map(jnp.zeros_like, state.params),
                          (micro_views, micro_output_grads))
  return LossAndGrads(loss, grads, batch_stats, metrics, aux, online[0]["embedding"])


def _split(x: jax.Array, k: int) -> jax.Array:
  """(B, ...) -> (K, B/K, ...); microbatch j holds examples j, j + K, j + 2K, ...

  Strided rather than contiguous: a device's contiguous shard of the batch then holds its
  own shard of every microbatch, so the split moves no data between devices.
  """
  b = x.shape[0]
  if b % k:
    raise ValueError(f"a batch of {b} examples does not split into accumulation_steps={k} "
                     "microbatches; choose a batch size divisible by it")
  return jnp.swapaxes(x.reshape(b // k, k, *x.shape[1:]), 0, 1)


def _merge(x: jax.Array) -> jax.Array:
  """(K, B/K, ...) -> (B, ...), the inverse of `_split`: examples in their batch order."""
  return jnp.swapaxes(x, 0, 1).reshape(-1, *x.shape[2:])


def train_step(state: TrainState, batch: Batch, rng: jax.Array, *, model: nn.Module,
               method: Method, optimizer: optax.GradientTransformation,
               recipes: tuple[ViewConfig, ...],
               accumulation_steps: int = 1) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SSL update: augment on device, forward, loss, optimizer, method state transform.

  Args:
    state: the train state (replicated over the mesh).
    batch: {'image': (B, H, W, C) uint8} global batch, sharded along B.
    rng: the run's base key; folded with `state.step` so a resumed run repeats it.
    accumulation_steps: K > 1 runs the network on K microbatches of B / K examples with
      the loss over the whole batch (`accumulated_loss_and_grads`).

  Returns:
    The new state and scalar metrics: the loss and the collapse diagnostics of the
    first view's projector embeddings (embedding_std, effective_rank).
  """
  rng = jax.random.fold_in(rng, state.step)
  views = make_views(rng, batch["image"], recipes)
  if accumulation_steps == 1:
    result = loss_and_grads(state, views, model=model, method=method)
  else:
    result = accumulated_loss_and_grads(state, views, model=model, method=method,
                                        accumulation_steps=accumulation_steps)
  updates, opt_state = optimizer.update(result.grads, state.opt_state, state.params)
  state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                        batch_stats=result.batch_stats, opt_state=opt_state)
  state = method.update(state, result.aux)
  embedding = jax.lax.stop_gradient(result.embedding)
  metrics = {**result.metrics, "loss": result.loss, "embedding_std": embedding_std(embedding),
             "effective_rank": effective_rank(embedding)}
  return state, metrics


def init_state(model: nn.Module, method: Method, optimizer: optax.GradientTransformation,
               rng: jax.Array, image_shape: tuple[int, int, int]) -> TrainState:
  """Fresh state for `model` on inputs of `image_shape` (H, W, C)."""
  model_rng, method_rng = jax.random.split(rng)
  variables = model.init(model_rng, jnp.zeros((2, *image_shape), jnp.float32), train=True)
  params, batch_stats = variables["params"], variables.get("batch_stats", {})
  target_params, method_state = method.init(params, method_rng)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    target_params=target_params, opt_state=optimizer.init(params),
                    method_state=method_state)


def make_step(mesh: Mesh, **step_kwargs: Any) -> StepFn:
  """`train_step` jitted over `mesh`: state replicated and donated, batch data-parallel."""
  replicated = parallel.replicated(mesh)
  return jax.jit(functools.partial(train_step, **step_kwargs), donate_argnums=0,
                 out_shardings=(replicated, replicated))
