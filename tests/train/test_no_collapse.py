"""A short training run of every method on Fashion-MNIST keeps its embeddings spread out
(effective rank above a floor), while a loss known to collapse falls below that floor."""

import dataclasses

import jax.numpy as jnp
import pytest

from jejax.eval.diagnostics import effective_rank
from jejax.methods import METHODS, ViewMethod, register_method
from jejax.numerics import l2_normalize
from jejax.train import loop

STEPS = 150
BATCH = 64
# Of 16 embedding dimensions; a collapsed embedding has rank about 1.
RANK_FLOOR = 4.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttractOnly(ViewMethod):
  """The config's views and network, with a loss that pulls the two views together and
  nothing to keep them apart: no negatives, no predictor or stop-gradient, no variance
  term. Its embeddings collapse."""

  def loss(self, outputs, target, inputs, state):
    z1, z2 = (l2_normalize(out["embedding"]) for out in outputs[:2])
    return -jnp.mean(jnp.sum(z1 * z2, axis=-1)), {}, None


def trained_embedding_rank(c, workdir) -> float:
  """Effective rank of the projector embeddings of 512 test images after training
  (BatchNorm in inference mode)."""
  run, state, _ = loop.train(c, workdir)
  images = jnp.asarray(run.test_source.images[:512], jnp.float32) / 255.0
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  embedding = run.method.model.apply(variables, images, train=False)["embedding"]
  return float(effective_rank(embedding))


def short_run_config(tiny_config, method):
  c = tiny_config(method, BATCH)
  c.num_steps = STEPS
  c.log_every_steps = STEPS
  c.optim.learning_rate = 1e-2  # a collapse, where there is one, shows within the run
  return c


# The methods on views, whose projector embeddings are measured; I-JEPA and MAE are
# checked in their own tests.
VIEW_METHODS = [name for name in METHODS.names()
                if issubclass(METHODS.get(name).value, ViewMethod)]


@pytest.mark.parametrize("method", VIEW_METHODS)
def test_embeddings_do_not_collapse(method, tiny_config, tmp_path):
  rank = trained_embedding_rank(short_run_config(tiny_config, method), tmp_path)
  print(f"{method}: effective rank {rank:.2f} of 16")
  assert rank > RANK_FLOOR


def test_the_floor_catches_a_collapsing_loss(tiny_config, tmp_path, monkeypatch):
  register_method("attract_only")(AttractOnly)
  try:
    c = short_run_config(tiny_config, "simclr")
    c.method = "attract_only"
    rank = trained_embedding_rank(c, tmp_path)
  finally:
    METHODS.unregister("attract_only")
  print(f"attract_only: effective rank {rank:.2f} of 16")
  assert rank < RANK_FLOOR
