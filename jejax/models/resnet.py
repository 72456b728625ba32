"""ResNet-18 and ResNet-50 (He et al. 2016), with a small-image stem option.

`small_images=True` replaces the 7x7 stride-2 stem and its max-pool by one 3x3 stride-1
conv, the usual CIFAR variant used by SimCLR's CIFAR-10 experiments (Chen et al. 2020,
appendix B.9). `dtype` is the compute dtype of every conv and BatchNorm (bfloat16 for mixed
precision); params stay float32 and BatchNorm statistics are reduced in float32.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jejax.models.base import BACKBONES


class BasicBlock(nn.Module):
  """Two 3x3 convs; ResNet-18/34."""
  width: int
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                   dtype=self.dtype)
    conv = partial(nn.Conv, use_bias=False, dtype=self.dtype)
    y = conv(self.width, (3, 3), self.strides)(x)
    y = nn.relu(norm()(y))
    y = conv(self.width, (3, 3))(y)
    # Zero-init the last BN scale so each block starts as the identity (Goyal et al. 2017).
    y = norm(scale_init=nn.initializers.zeros)(y)
    if x.shape != y.shape:
      x = norm()(conv(self.width, (1, 1), self.strides)(x))
    return nn.relu(x + y)


class BottleneckBlock(nn.Module):
  """1x1 reduce, 3x3, 1x1 expand (x4); ResNet-50 and deeper."""
  width: int
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                   dtype=self.dtype)
    conv = partial(nn.Conv, use_bias=False, dtype=self.dtype)
    y = nn.relu(norm()(conv(self.width, (1, 1))(x)))
    y = nn.relu(norm()(conv(self.width, (3, 3), self.strides)(y)))
    y = conv(self.width * 4, (1, 1))(y)
    y = norm(scale_init=nn.initializers.zeros)(y)
    if x.shape != y.shape:
      x = norm()(conv(self.width * 4, (1, 1), self.strides)(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """Input (B, H, W, C) in [0, 1]; output (B, features) after global average pooling."""
  stage_sizes: Sequence[int]
  block: type[nn.Module] = BasicBlock
  base_width: int = 64
  small_images: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    x = x.astype(self.dtype)  # augmentation made float32 views
    conv = partial(nn.Conv, use_bias=False, dtype=self.dtype)
    if self.small_images:
      x = conv(self.base_width, (3, 3))(x)
    else:
      x = conv(self.base_width, (7, 7), 2, padding=[(3, 3), (3, 3)])(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9,
                             dtype=self.dtype)(x))
    if not self.small_images:
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    for stage, num_blocks in enumerate(self.stage_sizes):
      for i in range(num_blocks):
        strides = 2 if (stage > 0 and i == 0) else 1
        x = self.block(self.base_width * 2**stage, strides, self.dtype)(x, train)
    return jnp.mean(x, axis=(1, 2))  # (B, h, w, C) -> (B, C)


ResNet18 = partial(ResNet, stage_sizes=(2, 2, 2, 2), block=BasicBlock)
ResNet50 = partial(ResNet, stage_sizes=(3, 4, 6, 3), block=BottleneckBlock)


@BACKBONES.register("resnet18", {"small_images": True})
def _build_resnet18(block, dtype) -> ResNet:
  return ResNet18(small_images=block["small_images"], dtype=dtype)


@BACKBONES.register("resnet50", {"small_images": True})
def _build_resnet50(block, dtype) -> ResNet:
  return ResNet50(small_images=block["small_images"], dtype=dtype)
