"""ViT, I-JEPA's predictor and MAE's decoder on tiny inputs: parameter counts against the
published (timm) ones, position embeddings against MAE's `get_2d_sincos_pos_embed` in
float64 NumPy and hand values, padding masked out of attention (changing padding changes
nothing that is read, changing real tokens does), and the MAE restore order. The networks
are random (NumPy draws over `eval_shape(init)`), which is all these properties need."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax.models import ViT, sincos_2d, vit_from_name
from jejax.models.jepa import IJEPAModel, Predictor
from jejax.models.mae import Decoder, MAEModel

TINY = dict(width=16, depth=1, num_heads=2, patch_size=4)  # one block: few ops to compile


def _count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("name,width,published", [
    ("base/16", 768, 86_567_656),  # timm vit_base_patch16_224
    ("small/16", 384, 22_050_664),  # timm vit_small_patch16_224
])
def test_vit_parameter_count_matches_timm(name, width, published):
  model = vit_from_name(name, class_token=True, pool="cls")
  image = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), image)
  assert set(variables) == {"params"}  # the position embedding is fixed, not a variable
  # timm's count also holds a learned position embedding, (1 + 14 * 14) x width, and a
  # 1000-class head, width x 1000 + 1000; ours has neither.
  # ViT-B: 197 * 768 = 151,296 and 768,000 + 1,000 = 769,000, so ours must be
  # 86,567,656 - 151,296 - 769,000 = 85,647,360 (= patch conv 16*16*3*768 + 768 = 590,592,
  # class token 768, 12 blocks of 7,087,872, final norm 1,536).
  position = (1 + 14 * 14) * width
  head = width * 1000 + 1000
  assert _count(variables["params"]) + position + head == published


def sincos_reference(dim, grid_h, grid_w):
  """MAE's `get_2d_sincos_pos_embed` (util/pos_embed.py), float64, for an h x w grid."""
  def one_d(d, pos):
    omega = np.arange(d // 2, dtype=np.float64) / (d / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)
  grid = np.meshgrid(np.arange(grid_w, dtype=np.float64), np.arange(grid_h, dtype=np.float64))
  grid = np.stack(grid, axis=0)  # grid[0]: the column (w) of each token, grid[1]: its row
  return np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)


def test_sincos_2d_matches_mae_and_hand_values():
  np.testing.assert_allclose(sincos_2d(64, 14, 14), sincos_reference(64, 14, 14), atol=1e-6)
  np.testing.assert_allclose(sincos_2d(32, 3, 5), sincos_reference(32, 3, 5), atol=1e-6)
  # dim 8 on a 2 x 3 grid: each half has frequencies 1 and 10000^(-1/2) = 0.01. Token 1 is
  # row 0, column 1; token 3 is row 1, column 0.
  e = sincos_2d(8, 2, 3)
  assert e.shape == (6, 8)
  col1 = [np.sin(1), np.sin(0.01), np.cos(1), np.cos(0.01)]
  zero = [0, 0, 1, 1]
  np.testing.assert_allclose(e[1], col1 + zero, atol=1e-7)
  np.testing.assert_allclose(e[3], zero + col1, atol=1e-7)
  np.testing.assert_allclose(e[0], zero + zero, atol=1e-7)
  # Every position its own embedding.
  e = sincos_2d(64, 14, 14).astype(np.float64)
  distances = np.linalg.norm(e[:, None] - e[None], axis=-1)
  assert distances[~np.eye(196, dtype=bool)].min() > 0.1


def _tokens(seed, shape):
  return np.float32(np.random.default_rng(seed).normal(size=shape))


def _random_params(model, *args, seed=0, static=()):
  """{'params': ...} of the shapes `model.init(key, *args, *static)` makes, drawn
  N(0, 0.5^2) in NumPy: a random network without compiling Flax's initialisers (slow on
  a CPU)."""
  shapes = jax.eval_shape(lambda key, *a: model.init(key, *a, *static), jax.random.key(0),
                          *args)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: np.float32(rng.normal(size=s.shape) * 0.5), shapes)


def test_transform_masks_padding_out_of_attention():
  # Two blocks: padding must stay out of the second block's attention too.
  model = ViT(**{**TINY, "depth": 2}, class_token=True)
  variables = _random_params(model, np.zeros((1, 8, 8, 3), np.float32))
  tokens = _tokens(0, (2, 6, 16))
  valid = np.array([[True, True, True, False, False, True],
                    [True, False, True, True, True, True]])
  padded = tokens + 5.0 * _tokens(1, tokens.shape) * ~valid[..., None]
  moved = tokens.copy()
  moved[0, 0] += 5.0 * _tokens(2, (16,))  # a real token (not a shift: LayerNorm removes it)
  every = np.ones_like(valid)

  @jax.jit
  def run(masked_tokens, masked_valid, unmasked_tokens):
    transform = functools.partial(model.apply, variables, method=ViT.transform)
    return transform(masked_tokens, masked_valid), transform(unmasked_tokens, None)

  masked, unmasked = run(np.concatenate([tokens, padded, moved, tokens]),
                         np.concatenate([valid, valid, valid, every]),
                         np.concatenate([tokens, padded]))
  out, out_padded, out_moved, out_every = np.split(np.asarray(masked), 4)
  unmasked, unmasked_padded = np.split(np.asarray(unmasked), 2)
  assert out.shape == (2, 1 + 6, 16)
  read = np.concatenate([np.ones((2, 1), bool), valid], axis=1)  # class token + valid ones
  np.testing.assert_allclose(out_padded[read], out[read], rtol=1e-5, atol=1e-5)
  # Negative controls: without the mask the padding is attended to, and a real token
  # changes the other real tokens' outputs.
  assert np.abs(unmasked_padded[read] - unmasked[read]).max() > 1e-2
  assert np.abs(out_moved[0, 2] - out[0, 2]).max() > 1e-2
  # All valid: the mask is the same as no mask.
  np.testing.assert_allclose(out_every, unmasked, rtol=1e-5, atol=1e-5)


def test_vit_pooling_shapes_and_values():
  images = np.random.default_rng(2).uniform(size=(2, 8, 8, 3)).astype(np.float32)
  cls_model = ViT(**TINY, class_token=True, pool="cls")
  mean_model = ViT(**TINY, class_token=True, pool="mean")
  plain_model = ViT(**TINY)
  variables = _random_params(cls_model, images)
  plain = {"params": {k: v for k, v in variables["params"].items() if k != "cls_token"}}

  @jax.jit
  def run(images):
    outputs = cls_model.apply(variables, images, method=lambda m, x: m.transform(m.embed(x)))
    plain_outputs = plain_model.apply(plain, images,
                                      method=lambda m, x: m.transform(m.embed(x)))
    return (outputs, cls_model.apply(variables, images), mean_model.apply(variables, images),
            plain_outputs, plain_model.apply(plain, images))

  outputs, cls, mean, plain_outputs, plain_mean = (np.asarray(x) for x in run(images))
  assert outputs.shape == (2, 1 + 4, 16) and plain_outputs.shape == (2, 4, 16)
  for features in (cls, mean, plain_mean):
    assert features.shape == (2, 16)
  np.testing.assert_allclose(cls, outputs[:, 0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(mean, outputs[:, 1:].mean(axis=1), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(plain_mean, plain_outputs.mean(axis=1), rtol=1e-5, atol=1e-6)
  assert np.abs(cls - mean).max() > 1e-2  # the class token is not in the mean
  with pytest.raises(ValueError):
    jax.eval_shape(ViT(**TINY, pool="cls").init, jax.random.key(0), images)  # no class token


def test_vit_rejects_a_patch_size_that_does_not_divide_the_image():
  # A VALID stride-p conv would silently drop the last H mod p rows and W mod p columns.
  model = ViT(width=16, depth=1, num_heads=2, patch_size=3)
  with pytest.raises(ValueError, match="do not split into 3 px patches"):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))


def test_vit_grid_rejects_a_patch_size_that_does_not_divide_the_image():
  model = ViT(width=16, depth=1, num_heads=2, patch_size=3)
  assert model.grid((9, 12, 3)) == (3, 4)
  with pytest.raises(ValueError):
    model.grid((8, 8, 3))


def _walk(jaxpr):
  """Every equation of a jaxpr and of the jaxprs nested in it."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (list, tuple)) else (value,):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          yield from _walk(sub.jaxpr)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          yield from _walk(sub)


def test_vit_bfloat16_computes_in_bfloat16_with_float32_params():
  images = np.random.default_rng(3).uniform(size=(2, 8, 8, 3)).astype(np.float32)
  low = ViT(**TINY, dtype=jnp.bfloat16)
  shapes = jax.eval_shape(low.init, jax.random.key(0), images)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(shapes))
  variables = _random_params(low, images)
  # Every matmul and the patch convolution take bfloat16 operands.
  jaxpr = jax.make_jaxpr(low.apply)(variables, images).jaxpr
  products = [e for e in _walk(jaxpr)
              if e.primitive.name in ("dot_general", "conv_general_dilated")]
  assert len(products) >= 6 + 1  # q, k, v, out, MLP in and out of the block; the conv
  assert all(v.aval.dtype == jnp.bfloat16 for e in products for v in e.invars)
  features, full = jax.jit(lambda x: (low.apply(variables, x),
                                      ViT(**TINY).apply(variables, x)))(images)
  assert features.dtype == jnp.bfloat16 and full.dtype == jnp.float32
  # The same network: close to the float32 one with the same params, not identical.
  features = np.asarray(features, np.float32)
  np.testing.assert_allclose(features, full, atol=0.1)
  assert np.abs(features - full).max() > 0


# I-JEPA on a 16 x 16 image with 4 px patches: a 4 x 4 grid of 16 tokens; 2 images,
# 6 context slots, 2 target blocks of 3 slots.
IMAGES = np.random.default_rng(4).uniform(size=(2, 16, 16, 3)).astype(np.float32)
CONTEXT = np.array([[0, 1, 2, 5, 0, 0], [3, 4, 8, 9, 10, 3]], np.int32)
CONTEXT_VALID = np.array([[True] * 4 + [False] * 2, [True] * 5 + [False]])
TARGETS = np.array([[[6, 7, 10], [14, 15, 6]], [[12, 13, 12], [1, 2, 5]]], np.int32)
TARGETS_VALID = np.array([[[True, True, True], [True, True, False]],
                          [[True, True, False], [True, True, True]]])
MASKS = (CONTEXT, CONTEXT_VALID, TARGETS, TARGETS_VALID)


def _ijepa_model():
  return IJEPAModel(encoder=ViT(**TINY),
                    predictor=Predictor(width=8, depth=1, num_heads=2, out_width=16))


def _tile(x, n):
  return np.concatenate([x] * n)


def test_ijepa_predictions_ignore_padding_and_other_blocks():
  model = _ijepa_model()
  variables = _random_params(model, IMAGES, *MASKS)
  # Four variants of the masks, run as one batch of 8 (images are independent).
  padding = CONTEXT.copy()
  padding[~CONTEXT_VALID] = [11, 12, 15]  # other tokens (values, positions) in padding
  padding_targets = TARGETS.copy()
  padding_targets[~TARGETS_VALID] = [3, 0]
  other_block = TARGETS.copy()
  other_block[:, 1] = [[9, 10, 11], [6, 7, 11]]
  real = CONTEXT.copy()
  real[0, 0] = 15  # another token in a valid context slot
  out = jax.jit(model.apply)(
      variables, _tile(IMAGES, 4), np.concatenate([CONTEXT, padding, CONTEXT, real]),
      _tile(CONTEXT_VALID, 4), np.concatenate([TARGETS, padding_targets, other_block, TARGETS]),
      _tile(TARGETS_VALID, 4))
  assert out["prediction"].shape == (8, 2, 3, 16) and out["embedding"].shape == (8, 16)
  assert out["prediction"].dtype == jnp.float32
  base, padded, moved, control = np.split(np.asarray(out["prediction"]), 4)
  np.testing.assert_allclose(padded[TARGETS_VALID], base[TARGETS_VALID], rtol=1e-5, atol=1e-5)
  # Each block is predicted in a sequence of its own: block 1 moves, block 0 does not.
  np.testing.assert_allclose(moved[:, 0], base[:, 0], rtol=1e-5, atol=1e-5)
  assert np.abs(moved[:, 1] - base[:, 1]).max() > 1e-3
  # Negative control: a real context token changes the predictions.
  assert np.abs(control[0] - base[0]).max() > 1e-3
  np.testing.assert_allclose(control[1], base[1], rtol=1e-5, atol=1e-5)


def test_predictor_ignores_the_values_of_padding_context_slots():
  predictor = Predictor(width=8, depth=1, num_heads=2, out_width=16)
  context = _tokens(5, (2, 6, 16))
  variables = _random_params(predictor, context, *MASKS, static=((4, 4),))
  padded = context + 10.0 * _tokens(6, context.shape) * ~CONTEXT_VALID[..., None]
  moved = context.copy()
  moved[1, 2] += 10.0 * _tokens(7, (16,))  # a valid slot: the negative control
  out = jax.jit(lambda x, *masks: predictor.apply(variables, x, *masks, (4, 4)))(
      np.concatenate([context, padded, moved]), *(_tile(m, 3) for m in MASKS))
  assert out.shape == (6, 2, 3, 16)
  base, padded, moved = np.split(np.asarray(out), 3)
  np.testing.assert_allclose(padded[TARGETS_VALID], base[TARGETS_VALID], rtol=1e-5, atol=1e-5)
  assert np.abs(moved[1] - base[1]).max() > 1e-3
  np.testing.assert_allclose(moved[0], base[0], rtol=1e-5, atol=1e-5)


def test_ijepa_target_is_layer_normed_full_image_encoding_at_the_targets():
  model = _ijepa_model()
  variables = _random_params(model, IMAGES, *MASKS, seed=1)
  target_params = {"params": {"encoder": variables["params"]["encoder"]}}
  encoder = ViT(**TINY)

  @jax.jit
  def run(images, targets):
    full = encoder.apply({"params": target_params["params"]["encoder"]}, images,
                         method=lambda m, x: m.transform(m.embed(x)))
    return model.apply(target_params, images, targets, method=IJEPAModel.target), full

  target, full = run(IMAGES, TARGETS)
  target, full = np.asarray(target), np.float64(full)
  assert target.shape == (2, 2, 3, 16) and target.dtype == np.float32
  assert full.shape == (2, 16, 16)
  # Per token: mean 0 and variance v / (v + 1e-5) ~ 1 over the channels.
  np.testing.assert_allclose(target.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(target.var(-1), 1.0, atol=1e-3)
  # The encoder run alone on every patch, normalised in float64, gathered by index.
  normed = (full - full.mean(-1, keepdims=True)) / np.sqrt(full.var(-1, keepdims=True) + 1e-5)
  expected = np.stack([normed[b][TARGETS[b]] for b in range(2)])
  np.testing.assert_allclose(target, expected, rtol=1e-4, atol=1e-4)
  assert np.abs(full.var(-1) - 1.0).max() > 1e-2  # the normalisation is not a no-op here


def _restore(keep, num_tokens, removed_order):
  """restore = argsort(shuffle), shuffle = keep, then the removed tokens in the given order."""
  shuffles = []
  for row in keep:
    removed = [i for i in range(num_tokens) if i not in set(row.tolist())]
    shuffles.append(np.concatenate([row, removed[::removed_order]]))
  return np.argsort(np.array(shuffles), axis=1).astype(np.int32)


def test_mae_restore_puts_tokens_back_in_grid_order():
  model = MAEModel(encoder=ViT(**TINY, class_token=True, pool="cls"),
                   decoder=Decoder(width=8, depth=1, num_heads=2, patch_pixels=4 * 4 * 3))
  keep = np.array([[3, 7, 1, 12], [0, 5, 9, 14]], np.int32)
  restore = _restore(keep, 16, 1)
  variables = _random_params(model, IMAGES, keep, restore)
  # The same kept set in another order, the removed ones reversed, and the restore that
  # goes with it; and, the negative control, the new order with the old restore.
  permuted = keep[:, [3, 1, 0, 2]]
  out = jax.jit(model.apply)(variables, _tile(IMAGES, 3),
                             np.concatenate([keep, permuted, permuted]),
                             np.concatenate([restore, _restore(permuted, 16, -1), restore]))
  assert out["prediction"].shape == (6, 16, 48) and out["embedding"].shape == (6, 16)
  base, again, wrong = np.split(np.asarray(out["prediction"]), 3)
  np.testing.assert_allclose(again, base, rtol=1e-4, atol=1e-5)
  embedding = np.split(np.asarray(out["embedding"]), 3)
  np.testing.assert_allclose(embedding[1], embedding[0], rtol=1e-4, atol=1e-5)
  assert np.abs(wrong - base).max() > 1e-3


def test_pixel_statistics_standardise_the_input_before_the_patch_embedding():
  images = jnp.asarray(np.random.default_rng(0).random((2, 8, 8, 1), np.float32))
  plain = ViT(**TINY)
  standardising = ViT(**TINY, pixel_mean=(0.3,), pixel_std=(0.4,))
  variables = plain.init(jax.random.key(0), images)  # the same parameters for both
  by_hand = plain.apply(variables, (images - 0.3) / 0.4)
  np.testing.assert_allclose(standardising.apply(variables, images), by_hand,
                             rtol=1e-5, atol=1e-6)
  assert not np.allclose(plain.apply(variables, images), by_hand, atol=1e-3)
