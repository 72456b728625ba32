"""ResNet-18/50: output shapes and parameter counts against the published architectures.

Shapes and counts come from `jax.eval_shape`, which traces without computing.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jejax.models import ResNet18, ResNet50

# torchvision's resnet18 / resnet50 parameter counts minus their fc layer (512 * 1000 + 1000
# and 2048 * 1000 + 1000): conv kernels plus BatchNorm scale and bias.
RESNET18_NO_FC = 11_689_512 - 513_000  # 11,176,512
RESNET50_NO_FC = 25_557_032 - 2_049_000  # 23,508,032
# The CIFAR stem swaps the 7x7x3x64 conv (9,408) for a 3x3x3x64 one (1,728): -7,680.
STEM_DIFFERENCE = 7 * 7 * 3 * 64 - 3 * 3 * 3 * 64


def _shapes(model, input_shape):
  """(variables, output) as ShapeDtypeStructs for an inference-mode forward pass."""
  x = jax.ShapeDtypeStruct(input_shape, jnp.float32)
  out, variables = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x, train=False), x)
  return variables, out


def _block_outputs(model, input_shape):
  """Shapes of every residual block's output, in order, without computing."""
  x = jax.ShapeDtypeStruct(input_shape, jnp.float32)

  def forward(x):
    variables = model.init(jax.random.key(0), x, train=False)
    _, state = model.apply(variables, x, train=False, mutable=["intermediates"],
                           capture_intermediates=lambda m, _: "Block" in type(m).__name__)
    return state["intermediates"]

  blocks = jax.eval_shape(forward, x)
  names = sorted(blocks, key=lambda name: int(name.rsplit("_", 1)[1]))
  return [blocks[name]["__call__"][0].shape for name in names]


def _count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("model, input_shape, features", [
    (ResNet18(small_images=True), (2, 32, 32, 3), 512),
    (ResNet18(small_images=False), (2, 224, 224, 3), 512),
    (ResNet50(small_images=True), (2, 32, 32, 3), 2048),
    (ResNet50(small_images=False), (2, 224, 224, 3), 2048),
])
def test_output_shape(model, input_shape, features):
  _, out = _shapes(model, input_shape)
  assert out.shape == (2, features)
  assert out.dtype == jnp.float32


def test_resnet18_stage_resolutions():
  # ImageNet stem: 224 -> conv stride 2 -> 112 -> max-pool -> 56; stages 56, 28, 14, 7.
  shapes = _block_outputs(ResNet18(small_images=False), (1, 224, 224, 3))
  assert shapes == [(1, 56, 56, 64)] * 2 + [(1, 28, 28, 128)] * 2 + \
      [(1, 14, 14, 256)] * 2 + [(1, 7, 7, 512)] * 2
  # CIFAR stem keeps 32 x 32; stages 32, 16, 8, 4.
  shapes = _block_outputs(ResNet18(small_images=True), (1, 32, 32, 3))
  assert [s[1] for s in shapes] == [32, 32, 16, 16, 8, 8, 4, 4]


def test_resnet50_stage_resolutions():
  # 3, 4, 6, 3 bottleneck blocks with 4x expansion: 256, 512, 1024, 2048 channels.
  shapes = _block_outputs(ResNet50(small_images=False), (1, 224, 224, 3))
  assert shapes == [(1, 56, 56, 256)] * 3 + [(1, 28, 28, 512)] * 4 + \
      [(1, 14, 14, 1024)] * 6 + [(1, 7, 7, 2048)] * 3


@pytest.mark.parametrize("model, expected", [
    (ResNet18(small_images=False), RESNET18_NO_FC),
    (ResNet50(small_images=False), RESNET50_NO_FC),
    (ResNet18(small_images=True), RESNET18_NO_FC - STEM_DIFFERENCE),
    (ResNet50(small_images=True), RESNET50_NO_FC - STEM_DIFFERENCE),
])
def test_parameter_count_matches_published_architecture(model, expected):
  variables, _ = _shapes(model, (1, 224, 224, 3))
  assert _count(variables["params"]) == expected
  # torchvision's BN buffers: a running mean and variance per scale and bias.
  bn_params = sum(int(np.prod(leaf.shape))
                  for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])
                  if "BatchNorm" in jax.tree_util.keystr(path))
  assert bn_params > 0
  assert _count(variables["batch_stats"]) == bn_params

