"""The one train step every method shares."""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jejax import parallel
from jejax.eval.diagnostics import effective_rank, embedding_std
from jejax.methods.base import Batch, Inputs, Method, Outputs
from jejax.numerics import all_finite
from jejax.train.state import TrainState
from jejax.types import PyTree

StepFn = Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict[str, jax.Array]]]


class LossAndGrads(NamedTuple):
  """What the step needs from the forward and backward passes of one batch."""
  loss: jax.Array  # scalar, the method's loss on the whole batch
  grads: PyTree  # d loss / d params
  batch_stats: PyTree  # the online network's updated BatchNorm running statistics
  target_batch_stats: PyTree  # the target network's
  metrics: dict[str, jax.Array]  # the method's own metrics
  aux: Any  # what `method.update` needs (MoCo's keys, DINO's batch center)
  embedding: jax.Array  # (B, D) `method.embedding` of the outputs, for the diagnostics


def _target(method: Method, state: TrainState, inputs: Inputs) -> tuple[Outputs | None, PyTree]:
  """The target network's outputs (constants for the gradient) and its batch stats."""
  target, target_batch_stats = method.target(state.target_params, state.target_batch_stats,
                                             inputs)
  return jax.lax.stop_gradient(target), target_batch_stats


def loss_and_grads(state: TrainState, inputs: Inputs, *, method: Method) -> LossAndGrads:
  """The method's loss on the inputs of the whole batch and its gradient, in one pass."""
  target, target_batch_stats = _target(method, state, inputs)

  def loss_fn(params):
    params = method.prepare_params(params, state.step)
    outputs, batch_stats = method.forward(params, state.batch_stats, inputs)
    loss, metrics, aux = method.loss(outputs, target, inputs, state)
    return loss, (batch_stats, metrics, aux, method.embedding(outputs))

  (loss, (batch_stats, metrics, aux, embedding)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  return LossAndGrads(loss, grads, batch_stats, target_batch_stats, metrics, aux, embedding)


def accumulated_loss_and_grads(state: TrainState, inputs: Inputs, *, method: Method,
                               accumulation_steps: int) -> LossAndGrads:
  """`loss_and_grads` with the activation memory of one microbatch of B / K examples.

  Averaging K microbatch losses would change a contrastive loss: each anchor would see
  only the negatives of its own microbatch. Instead, as in GradCache (Gao et al. 2021,
  "Scaling deep contrastive learning batch size under memory limited setup"), the step
  splits at the method's `forward` / `loss` boundary:

    1. every microbatch goes forward without gradient (`lax.map`), which gives the
       outputs of the whole batch (and the target's, when the method has one);
    2. the method's loss runs on those whole-batch outputs, so its negatives, Sinkhorn
       marginals, covariances and centers span the batch, and is differentiated with
       respect to the online outputs only;
    3. every microbatch goes forward again under `jax.vjp` and pulls its slice of that
       output gradient back to the params; a `scan` sums them, so one microbatch's
       activations are alive at a time.

  The loss and gradients are then those of the whole batch, for any model without
  layers that mix examples; the price is a second online forward pass. Every leaf of the
  inputs and outputs has the batch as its leading axis (the method contract), which is
  what is split and merged.

  Deviation, BatchNorm: its statistics are taken per microbatch (B / K examples), so the
  outputs, the loss and the gradients differ from the whole batch's (as with per-device
  BatchNorm). The running statistics get one momentum update per step, the average of
  the microbatches' updates: the running mean moves towards the whole batch's mean, the
  running variance towards the mean within-microbatch variance.

  Args:
    inputs: `method.prepare`'s inputs of the batch, B divisible by `accumulation_steps`;
      views of several resolutions (multi-crop) are split alike.
    accumulation_steps: K, the number of microbatches.
  """
  k = accumulation_steps
  micro_inputs = jax.tree.map(lambda x: _split(x, k), inputs)  # (B, ...) -> (K, B/K, ...)

  def online_forward(params, inputs):
    return method.forward(method.prepare_params(params, state.step), state.batch_stats,
                          inputs)

  # 1. Whole-batch outputs, microbatch by microbatch; nothing is kept for a backward pass.
  outputs, batch_stats = jax.lax.map(functools.partial(online_forward, state.params),
                                     micro_inputs)
  outputs = jax.tree.map(_merge, outputs)
  batch_stats = jax.tree.map(lambda s: jnp.mean(s, axis=0), batch_stats)
  target, target_batch_stats = jax.lax.map(lambda inputs: _target(method, state, inputs),
                                           micro_inputs)
  target = jax.tree.map(_merge, target)
  target_batch_stats = jax.tree.map(lambda s: jnp.mean(s, axis=0), target_batch_stats)

  # 2. The loss on the whole batch, and its gradient with respect to the online outputs.
  def loss_of_outputs(outputs):
    loss, metrics, aux = method.loss(outputs, target, inputs, state)
    return loss, (metrics, aux)

  (loss, (metrics, aux)), output_grads = jax.value_and_grad(
      loss_of_outputs, has_aux=True)(outputs)

  # 3. Each microbatch's share of d loss / d params, summed.
  def accumulate(grads, microbatch):
    inputs, output_grads = microbatch
    _, pullback = jax.vjp(lambda params: online_forward(params, inputs)[0], state.params)
    return jax.tree.map(jnp.add, grads, pullback(output_grads)[0]), None

  micro_output_grads = jax.tree.map(lambda g: _split(g, k), output_grads)
  grads, _ = jax.lax.scan(accumulate, jax.tree.map(jnp.zeros_like, state.params),
                          (micro_inputs, micro_output_grads))
  return LossAndGrads(loss, grads, batch_stats, target_batch_stats, metrics, aux,
                      method.embedding(outputs))


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


def train_step(state: TrainState, batch: Batch, rng: jax.Array, *, method: Method,
               optimizer: optax.GradientTransformation, accumulation_steps: int = 1,
               skip_nonfinite: bool = False) -> tuple[TrainState, dict[str, jax.Array]]:
  """One update: the method's inputs on device, forward, loss, optimizer, state transform.

  Args:
    state: the train state (replicated over the mesh).
    batch: a dict of global arrays sharded along their leading (batch) axis, e.g.
      {'image': (B, H, W, C) uint8, 'label': (B,) int32}; the method reads what it needs.
    rng: the run's base key; folded with `state.step` so a resumed run repeats it.
    accumulation_steps: K > 1 runs the network on K microbatches of B / K examples with
      the loss over the whole batch (`accumulated_loss_and_grads`).
    skip_nonfinite: where the step is not finite (see `finite` below), return the state
      from before it, with only its step advanced (as `optax.apply_if_finite` does for
      the params alone).

  Returns:
    The new state and scalar metrics: the loss, the method's metrics, the collapse
    diagnostics of `method.embedding` (embedding_std, effective_rank), and `finite`, a
    bool: whether the loss, the gradients and the updated state are all free of NaN and
    inf. It stays on the device, so the loop can watch for divergence without waiting
    for every step (`jejax.train.nonfinite`).
  """
  rng = jax.random.fold_in(rng, state.step)
  inputs = method.prepare(rng, batch)
  if accumulation_steps == 1:
    result = loss_and_grads(state, inputs, method=method)
  else:
    result = accumulated_loss_and_grads(state, inputs, method=method,
                                        accumulation_steps=accumulation_steps)
  updates, opt_state = optimizer.update(result.grads, state.opt_state, state.params)
  new_state = state.replace(step=state.step + 1,
                            params=optax.apply_updates(state.params, updates),
                            batch_stats=result.batch_stats,
                            target_batch_stats=result.target_batch_stats,
                            opt_state=opt_state)
  new_state = method.update(new_state, result.aux)
  # The updated state is checked too: finite gradients times a huge learning rate can
  # still overflow the params, and that state must never reach a checkpoint.
  finite = all_finite((result.loss, result.grads, new_state))
  if skip_nonfinite:
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state,
                             state.replace(step=state.step + 1))
  embedding = jax.lax.stop_gradient(result.embedding)
  metrics = {**result.metrics, "loss": result.loss, "embedding_std": embedding_std(embedding),
             "effective_rank": effective_rank(embedding), "finite": finite}
  return new_state, metrics


def init_state(method: Method, optimizer: optax.GradientTransformation, rng: jax.Array,
               example_batch: Batch) -> TrainState:
  """Fresh state of `method` for batches shaped like `example_batch` (any batch size)."""
  model_rng, method_rng = jax.random.split(rng)
  params, batch_stats = method.init(model_rng, example_batch)
  target_params, target_batch_stats, method_state = method.init_target(
      params, batch_stats, method_rng)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    target_params=target_params, target_batch_stats=target_batch_stats,
                    opt_state=optimizer.init(params), method_state=method_state)


def make_step(mesh: Mesh, *, state_shardings: PyTree | None = None,
              **step_kwargs: Any) -> StepFn:
  """`train_step` jitted over `mesh`: the state donated and kept in `state_shardings`
  (`jejax.parallel.state_shardings`; replicated by default), the batch data-parallel,
  the metrics replicated."""
  replicated = parallel.replicated(mesh)
  return jax.jit(functools.partial(train_step, **step_kwargs), donate_argnums=0,
                 out_shardings=(state_shardings or replicated, replicated))
