"""ConvNet, MLP heads, SwAV prototypes and the SSLModel wrapper on tiny inputs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jejax.models import MLP, ConvNet, Prototypes, SSLModel
from jejax.models.convnet import over_batch_chunks


def _count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _l2_normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_convnet_shape_and_parameter_count():
  model = ConvNet(widths=(8, 16), convs_per_stage=1)
  x = jax.ShapeDtypeStruct((2, 16, 16, 1), jnp.float32)
  out, variables = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x, train=False), x)
  assert out.shape == (2, 16)
  # conv 3*3*1*8 = 72, BN 2*8 = 16, conv 3*3*8*16 = 1152, BN 2*16 = 32: 1272.
  assert _count(variables["params"]) == 1272


def test_over_batch_chunks_puts_every_row_back_in_place():
  x = jnp.arange(12 * 3, dtype=jnp.float32).reshape(12, 3)
  seen = []

  def per_row(chunk):
    seen.append(chunk.shape[0])
    return jnp.stack([chunk.sum(axis=1), chunk[:, 0]], axis=1)  # (b, 3) -> (b, 2)

  expected = np.stack([np.asarray(x).sum(1), np.asarray(x)[:, 0]], axis=1)
  for num_chunks in (1, 2, 3, 4, 6, 12):
    seen.clear()
    np.testing.assert_array_equal(over_batch_chunks(per_row, x, num_chunks), expected)
    assert seen == [12 // num_chunks] * num_chunks


def test_convnet_in_batch_chunks_matches_the_whole_batch():
  """Chunked convolutions (the CPU default) give the whole-batch outputs, BatchNorm
  statistics and gradients: BatchNorm still sees the whole batch."""
  assert jax.default_backend() == "cpu"  # chunking is on only there
  x = jnp.asarray(np.random.default_rng(0).random((12, 16, 16, 1), np.float32))
  # Three convolutions: a misordering that undoes itself on a second pass still shows.
  whole, chunked = ConvNet(widths=(4, 8, 16)), ConvNet(widths=(4, 8, 16), conv_chunk=4)
  assert chunked._num_chunks(12) == 3 and chunked._num_chunks(10) == 2  # divisors only
  variables = whole.init(jax.random.key(0), x, train=False)

  def loss_and_stats(model, params):
    out, mutated = model.apply({**variables, "params": params}, x, train=True,
                               mutable=["batch_stats"])
    return jnp.sum(out ** 2), (out, mutated["batch_stats"])

  results = [jax.jit(jax.value_and_grad(lambda p, m=m: loss_and_stats(m, p), has_aux=True))(
      variables["params"]) for m in (whole, chunked)]
  (_, (out_w, stats_w)), grads_w = results[0]
  (_, (out_c, stats_c)), grads_c = results[1]
  np.testing.assert_allclose(out_c, out_w, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves((stats_c, grads_c)), jax.tree.leaves((stats_w, grads_w))):
    # float32 sums in another order: relative to each array's scale.
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.abs(b).max()))
  assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads_w)) > 1e-3


def test_mlp_parameter_counts():
  x = jnp.zeros((2, 4))
  plain = jax.eval_shape(MLP((16,), 8).init, jax.random.key(0), x)
  # Dense 4*16 (no bias) = 64, BN scale+bias 32, Dense 16*8 + 8 = 136: 232.
  assert _count(plain["params"]) == 232
  with_bn = jax.eval_shape(MLP((16,), 8, output_bn=True).init, jax.random.key(0), x)
  # The output layer loses its bias (128) and its BN has no affine parameters: 224.
  assert _count(with_bn["params"]) == 224


def test_mlp_forward_matches_numpy_and_output_bn_whitens():
  x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32) * 3.0 + 1.0
  linear = MLP((), 3)
  hidden = MLP((16,), 8)
  model = MLP((16,), 8, output_bn=True)

  @jax.jit
  def run(x):
    params = linear.init(jax.random.key(0), x)["params"]
    hidden_variables = hidden.init(jax.random.key(2), x)
    variables = model.init(jax.random.key(1), x)
    out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    return (params, linear.apply({"params": params}, x), hidden_variables,
            hidden.apply(hidden_variables, x, train=False), out)

  params, linear_out, hidden_variables, hidden_out, out = run(x)
  w = np.asarray(params["Dense_0"]["kernel"], np.float64)
  b = np.asarray(params["Dense_0"]["bias"], np.float64)
  np.testing.assert_allclose(linear_out, x @ w + b, rtol=1e-5, atol=1e-5)
  # Linear -> BN (inference, fresh stats: mean 0, var 1, scale 1, bias 0) -> ReLU -> Linear.
  hp = jax.tree.map(lambda a: np.asarray(a, np.float64), hidden_variables["params"])
  h = np.maximum(x @ hp["Dense_0"]["kernel"] / np.sqrt(1.0 + 1e-5), 0.0)
  expected = h @ hp["Dense_1"]["kernel"] + hp["Dense_1"]["bias"]
  assert np.mean(h == 0) > 0.2  # the ReLU is active on a good part of the inputs
  np.testing.assert_allclose(hidden_out, expected, rtol=1e-4, atol=1e-5)
  # Affine-free BatchNorm in training mode: every output column has mean 0 and std 1.
  np.testing.assert_allclose(np.mean(out, axis=0), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.std(out, axis=0), 1.0, rtol=1e-3)


def test_prototypes_unit_rows_and_scores_are_cosines():
  z = _l2_normalize(np.random.default_rng(2).normal(size=(6, 5))).astype(np.float32)
  module = Prototypes(7)
  params = module.init(jax.random.key(0), z)["params"]
  c = np.asarray(params["prototypes"], np.float64)
  assert c.shape == (7, 5)
  np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-6)
  assert np.abs(c).std() > 0.1  # random directions, not a constant
  scores = module.apply({"params": params}, z)
  np.testing.assert_allclose(scores, z @ c.T, rtol=1e-5, atol=1e-6)
  assert np.all(np.abs(np.asarray(scores)) <= 1.0 + 1e-6)


class _DenseBackbone(nn.Module):
  """Flatten, Dense, BatchNorm: a backbone with BN whose forward compiles fast on CPU."""

  @nn.compact
  def __call__(self, x, train=True):
    x = nn.Dense(8)(x.reshape(x.shape[0], -1))
    return nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)


def _ssl_model(predictor=True, num_prototypes=5, backbone=None):
  return SSLModel(backbone=backbone or _DenseBackbone(),
                  projector=MLP((16,), 6),
                  predictor=MLP((16,), 6) if predictor else None,
                  num_prototypes=num_prototypes)


def test_ssl_model_outputs_heads_encode_and_prototypes():
  model = _ssl_model()

  @jax.jit  # one compile for the whole check
  def run(x):
    variables = model.init(jax.random.key(0), x, train=False)
    out = model.apply(variables, x, train=False)
    prediction = model.predictor.apply(
        {"params": variables["params"]["predictor"],
         "batch_stats": variables["batch_stats"]["predictor"]}, out["embedding"], train=False)
    encoded = model.apply(variables, x, method="encode")
    return variables, out, prediction, encoded

  variables, out, prediction, encoded = run(jax.random.uniform(jax.random.key(1), (3, 8, 8, 1)))
  assert {k: v.shape for k, v in out.items()} == {
      "features": (3, 8), "embedding": (3, 6), "prediction": (3, 6), "scores": (3, 5)}
  c = np.asarray(variables["params"]["prototypes"]["prototypes"], np.float64)
  np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-6)
  # Scores are cosines of the L2-normalised embedding with the prototypes.
  expected_scores = _l2_normalize(np.asarray(out["embedding"], np.float64)) @ c.T
  np.testing.assert_allclose(out["scores"], expected_scores, rtol=1e-4, atol=1e-5)
  # The prediction is the predictor applied to the embedding.
  np.testing.assert_allclose(out["prediction"], prediction, rtol=1e-5, atol=1e-6)
  # `encode` gives the inference-mode backbone features.
  assert np.abs(np.asarray(out["features"])).max() > 0
  np.testing.assert_allclose(encoded, out["features"], rtol=1e-6, atol=1e-6)


def test_ssl_model_without_optional_heads():
  model = _ssl_model(predictor=False, num_prototypes=0,
                     backbone=ConvNet(widths=(4, 8), convs_per_stage=1))
  x = jax.ShapeDtypeStruct((3, 8, 8, 1), jnp.float32)
  out, variables = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x, train=False), x)
  assert set(out) == {"features", "embedding"}
  assert set(variables["params"]) == {"backbone", "projector"}
