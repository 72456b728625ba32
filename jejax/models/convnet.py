"""A small ConvNet sized for CPU runs on 28-32 px images."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jejax.models.base import BACKBONES


class ConvNet(nn.Module):
  """Conv-BN-ReLU stages, each halving the resolution, then global average pooling.

  Attributes:
    widths: channels of each stage; stage i >= 1 starts with a stride-2 conv.
    convs_per_stage: 3x3 convolutions per stage.
    dtype: compute dtype of the activations (float32 or bfloat16); params stay float32
      and BatchNorm statistics are reduced in float32.

  Input (B, H, W, C) float in [0, 1]; output (B, widths[-1]) features in `dtype`.
  """
  widths: Sequence[int] = (32, 64, 128, 256)
  convs_per_stage: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    x = x.astype(self.dtype)  # augmentation made float32 views
    for stage, width in enumerate(self.widths):
      for i in range(self.convs_per_stage):
        stride = 2 if (stage > 0 and i == 0) else 1
        x = nn.Conv(width, (3, 3), strides=stride, use_bias=False, dtype=self.dtype)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
        x = nn.relu(x)
    return x.mean(axis=(1, 2))  # (B, h, w, C) -> (B, C)


@BACKBONES.register("convnet", {"widths": (16, 32, 64, 256), "convs_per_stage": 1})
def _build(block, dtype) -> ConvNet:
  return ConvNet(widths=tuple(block["widths"]), convs_per_stage=block["convs_per_stage"],
                 dtype=dtype)
