"""A run: everything training is made of, built from a validated config and its data."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import jax
import ml_collections
import numpy as np

from jejax import data, parallel
from jejax.checks import ConfigError
from jejax.data.sources import Source
from jejax.eval.features import extract_features
from jejax.methods import Setup
from jejax.train import build
from jejax.train.step import init_state, make_step


def schedule_lengths(c: ml_collections.ConfigDict, num_examples: int) -> tuple[int, int]:
  """(steps per epoch, total steps) of a run over `num_examples` training examples."""
  steps_per_epoch = data.steps_per_epoch(num_examples, c.batch_size)
  total_steps = c.num_steps if c.num_steps > 0 else round(c.epochs * steps_per_epoch)
  if total_steps < 1:
    raise ConfigError(f"config.epochs={c.epochs} is less than one step of batch "
                     f"{c.batch_size} over {num_examples} examples")
  return steps_per_epoch, total_steps


def _configured_source(d: ml_collections.ConfigDict, split: str, *, seed: int) -> Source:
  """`config.data`'s split, with its corruption applied once to every image when one is
  set (the splits get their own seeds: one noise pattern for train and test image k
  alike would tie them)."""
  source = data.get_source(d.name, split, data_dir=d.data_dir, image_size=d.image_size,
                           multimodal_build=d.multimodal_build)
  if d.corruption is None:
    return source
  return data.CorruptedSource(source, d.corruption, d.severity, seed=seed)


class Run:
  """The sources, mesh, method (with its model), optimizer, initial state and jitted step
  of one run.

  The sources default to `config.data` (`jejax.data.get_source`); a caller with data of
  its own (a benchmark's synthetic images, a notebook's arrays) passes them instead.
  """

  def __init__(self, c: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
               train_source: Source | None = None, test_source: Source | None = None):
    self.config = c
    self.workdir = Path(workdir)
    self.train_source = train_source or _configured_source(c.data, "train", seed=c.seed)
    self.test_source = test_source or _configured_source(c.data, "test", seed=c.seed + 1)
    self.image_shape = self.train_source.image_shape
    data.validate_image_shape(self.test_source.image_shape, self.image_shape)
    self.mesh = parallel.make_mesh(c.num_devices or None)
    parallel.check_batch_divisible(c.batch_size, self.mesh)
    # Each microbatch of gradient accumulation is split over the data axis too.
    parallel.check_batch_divisible(c.batch_size // c.accumulation_steps, self.mesh)
    self.steps_per_epoch, self.total_steps = schedule_lengths(c, len(self.train_source))
    example_batch = self.train_source.get_batch(np.arange(2))
    self.method = build.build_method(c, Setup(self.total_steps, self.steps_per_epoch,
                                              example_batch, self.mesh))
    self.optimizer, self.schedule = build.build_optimizer(c, self.total_steps,
                                                          self.steps_per_epoch)
    self._init_rng, self.step_rng = jax.random.split(jax.random.key(c.seed))
    self._example_batch = example_batch
    # The state is made where it lives, under jit with its shardings (replicated, or split
    # over the data axis with `shard_state`): nothing is built whole on one device or the
    # host. Its shapes come from tracing alone.
    init = functools.partial(init_state, self.method, self.optimizer)
    shapes = jax.eval_shape(init, self._init_rng, example_batch)
    self.state_shardings = parallel.state_shardings(shapes, self.mesh, shard=c.shard_state)
    self._init = jax.jit(init, out_shardings=self.state_shardings)
    # Shapes, dtypes and shardings of the state: the template a checkpoint is restored to.
    self.abstract_state = jax.tree.map(
        lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
        shapes, self.state_shardings)
    self.step_fn = make_step(self.mesh, method=self.method, optimizer=self.optimizer,
                             accumulation_steps=c.accumulation_steps,
                             skip_nonfinite=c.skip_nonfinite,
                             state_shardings=self.state_shardings)

  def initial_state(self):
    """The state at step 0, on the mesh; the same values at every call (the random-init
    baseline of the final evaluation makes it again, since the step donates it)."""
    return self._init(self._init_rng, self._example_batch)

  def features(self, state, source: Source, limit: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Frozen features (N, F) and labels (N,) of `source` under the encoder that
    `config.eval.encoder` names (the online network, or the target)."""
    variables = self.method.eval_variables(state, self.config.eval.encoder)
    return extract_features(self.method.features, variables, source, self.mesh,
                            batch_size=self.config.eval.batch_size, limit=limit)
