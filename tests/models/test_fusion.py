"""The fusion modules: shapes, padding that does not change the output (values at padded
positions, extra padded tokens, an example whose image is all padding) with a negative
control (the same values marked valid do), independence of the mapping's order, the
attention pool against a float64 reference and its symmetry over modalities, and jit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax.models import (FUSIONS, AttentionPoolFusion, ConcatFusion, CrossAttentionFusion,
                          Tokens, attention_pool, pooled)

B, WIDTH = 3, 16


def _modules():
  return {"concat": ConcatFusion(width=WIDTH, hidden=24),
          "attention_pool": AttentionPoolFusion(width=WIDTH),
          "cross_attention": CrossAttentionFusion(width=WIDTH, depth=2, num_heads=2)}


def _inputs(seed=0):
  """Text (3, 7, 10) with 7, 4 and 2 valid tokens; image (3, 5, 6) with 5, 3 and 0 valid
  tokens (the last example has only padding for an image)."""
  rng = np.random.default_rng(seed)
  text_valid = np.arange(7) < np.array([7, 4, 2])[:, None]
  image_valid = np.arange(5) < np.array([5, 3, 0])[:, None]
  return {"text": Tokens(jnp.asarray(rng.normal(size=(B, 7, 10)), jnp.float32), text_valid),
          "image": Tokens(jnp.asarray(rng.normal(size=(B, 5, 6)), jnp.float32), image_valid)}


def _garbage(inputs, scale=10.0, extra=4, seed=1):
  """Other values at every padded position, and `extra` more padded tokens at the end."""
  rng = np.random.default_rng(seed)
  out = {}
  for name, (tokens, valid) in inputs.items():
    noise = rng.normal(size=tokens.shape) * scale
    tokens = jnp.where(valid[..., None], tokens, noise)
    pad = rng.normal(size=(B, extra, tokens.shape[2])) * scale
    out[name] = Tokens(jnp.concatenate([tokens, pad], axis=1).astype(jnp.float32),
                       np.concatenate([valid, np.zeros((B, extra), bool)], axis=1))
  return out


def _seen(inputs):
  """Negative control: the garbage of `_garbage` with every token marked valid."""
  return {name: Tokens(x.tokens, np.ones_like(x.valid)) for name, x in _garbage(inputs).items()}


@pytest.fixture(scope="module")
def initialised():
  inputs = _inputs()
  return inputs, {name: (module, module.init(jax.random.key(0), inputs))
                  for name, module in _modules().items()}


@pytest.mark.parametrize("name", ["concat", "attention_pool", "cross_attention"])
def test_shape_and_padding(initialised, name):
  inputs, modules = initialised
  module, params = modules[name]
  out = module.apply(params, inputs)
  assert out.shape == (B, WIDTH) and out.dtype == jnp.float32
  assert np.all(np.isfinite(out))
  np.testing.assert_allclose(module.apply(params, _garbage(inputs)), out, atol=1e-5)
  # Negative control: the same garbage, seen, changes every example's output.
  seen = module.apply(params, _seen(inputs))
  assert np.all(np.max(np.abs(seen - out), axis=1) > 1e-3)


@pytest.mark.parametrize("name", ["concat", "attention_pool", "cross_attention"])
def test_output_does_not_depend_on_the_mappings_order(initialised, name):
  inputs, modules = initialised
  module, params = modules[name]
  reversed_inputs = dict(reversed(list(inputs.items())))
  assert list(reversed_inputs) != list(inputs)
  np.testing.assert_allclose(module.apply(params, reversed_inputs),
                             module.apply(params, inputs), atol=1e-6)


@pytest.mark.parametrize("name", ["concat", "attention_pool", "cross_attention"])
def test_every_modality_reaches_the_output(initialised, name):
  # A change in one valid token of either modality changes the fused feature (in one
  # channel: a shift of every channel alike is what a LayerNorm removes).
  inputs, modules = initialised
  module, params = modules[name]
  out = module.apply(params, inputs)
  for modality in inputs:
    tokens, valid = inputs[modality]
    changed = dict(inputs, **{modality: Tokens(tokens.at[0, 0, 0].add(1.0), valid)})
    assert np.max(np.abs(module.apply(params, changed)[0] - out[0])) > 1e-4, modality


def test_pooled_features_are_one_valid_token():
  features = jnp.arange(6.0).reshape(2, 3)
  x = pooled(features)
  assert x.tokens.shape == (2, 1, 3) and x.valid.shape == (2, 1) and bool(x.valid.all())
  module = ConcatFusion(width=4, hidden=8)
  inputs = {"a": x, "b": pooled(-features)}
  params = module.init(jax.random.key(0), inputs)
  assert module.apply(params, inputs).shape == (2, 4)


def test_attention_pool_against_a_float64_reference_and_its_symmetry():
  rng = np.random.default_rng(0)
  query, features = rng.normal(size=8), rng.normal(size=(4, 3, 8))
  present = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0]], bool)
  out, weights = attention_pool(jnp.asarray(query, jnp.float32),
                                jnp.asarray(features, jnp.float32), present)
  scores = features @ query / np.sqrt(8)
  expected_w = np.where(present, np.exp(scores - scores.max(1, keepdims=True)), 0.0)
  expected_w /= np.maximum(expected_w.sum(1, keepdims=True), 1e-300)
  np.testing.assert_allclose(weights, expected_w, atol=1e-6)
  np.testing.assert_allclose(out, np.einsum("bm,bmd->bd", expected_w, features), atol=1e-5)
  np.testing.assert_allclose(weights[2], [0, 0, 1])  # one modality present: all of it
  np.testing.assert_array_equal(out[3], 0)  # none present
  # A permutation of the modalities permutes the weights and keeps the pooled features.
  perm = np.array([2, 0, 1])
  out_p, weights_p = attention_pool(jnp.asarray(query, jnp.float32),
                                    jnp.asarray(features[:, perm], jnp.float32),
                                    present[:, perm])
  np.testing.assert_allclose(out_p, out, atol=1e-6)
  np.testing.assert_allclose(weights_p, weights[:, perm], atol=1e-7)


def test_attention_pool_fusion_leaves_out_an_absent_modality(initialised):
  inputs, modules = initialised
  module, params = modules["attention_pool"]
  out, state = module.apply(params, inputs, mutable=["intermediates"])
  (weights,) = state["intermediates"]["modality_weights"]  # (B, 2), names in order
  np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-6)
  assert weights[2, 0] == 0.0  # 'image' (first by name) has no valid token in example 2
  text_only = module.apply(params, {"text": inputs["text"]})
  np.testing.assert_allclose(out[2], text_only[2], atol=1e-6)
  # Negative control: where the image is present, leaving it out changes the output.
  assert np.max(np.abs(out[0] - text_only[0])) > 1e-3


def test_concat_fusion_is_not_symmetric_in_its_modalities():
  # Negative control for the order test: the names, not the positions, decide which
  # parameters a modality meets, so swapping the contents of two names changes the output.
  inputs = {"a": pooled(jnp.ones((2, 4))), "b": pooled(jnp.zeros((2, 4)).at[:, 0].set(3.0))}
  module = ConcatFusion(width=4, hidden=8)
  params = module.init(jax.random.key(0), inputs)
  swapped = {"a": inputs["b"], "b": inputs["a"]}
  assert np.max(np.abs(module.apply(params, swapped) - module.apply(params, inputs))) > 1e-3


def test_cross_attention_takes_exactly_its_modalities(initialised):
  inputs, modules = initialised
  module, params = modules["cross_attention"]
  with pytest.raises(ValueError, match="takes the modalities"):
    module.apply(params, {"text": inputs["text"]})
  with pytest.raises(ValueError, match=r"\(B, T, D\)"):
    module.apply(params, dict(inputs, text=Tokens(inputs["text"].tokens[:, :, 0],
                                                  inputs["text"].valid)))


@pytest.mark.parametrize("name", ["concat", "attention_pool", "cross_attention"])
def test_jit(initialised, name):
  inputs, modules = initialised
  module, params = modules[name]
  chex.clear_trace_counter()  # counted per function's code, across the parametrization

  @jax.jit
  @chex.assert_max_traces(n=1)
  def fuse(params, inputs):
    return module.apply(params, inputs)

  np.testing.assert_allclose(fuse(params, inputs), module.apply(params, inputs), atol=1e-5)
  fuse(params, _inputs(seed=2))  # other values, same shapes: no second trace


def test_registered_by_name_with_their_defaults():
  assert {"concat", "attention_pool", "cross_attention"} <= set(FUSIONS.names())
  kinds = {"concat": ConcatFusion, "attention_pool": AttentionPoolFusion,
           "cross_attention": CrossAttentionFusion}
  for name, kind in kinds.items():
    entry = FUSIONS.get(name)
    module = entry.value(entry.defaults, jnp.float32)
    assert type(module) is kind and module.width == entry.defaults["width"]
