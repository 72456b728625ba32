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
    conv_chunk: on the CPU backend, images per convolution call (0: the whole batch at
      once). XLA's CPU convolutions (Eigen) run 2-3x faster, forward and backward, on
      chunks of ~32 images, whose activations stay in cache, than on a batch of 512
      (experiments/bench_cpu.py). BatchNorm still sees the whole batch, so the outputs are
      the same up to float rounding. Other backends convolve the whole batch.

  Input (B, H, W, C) float in [0, 1]; output (B, widths[-1]) features in `dtype`.
  """
  widths: Sequence[int] = (32, 64, 128, 256)
  convs_per_stage: int = 1
  dtype: Any = jnp.float32
  conv_chunk: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    x = x.astype(self.dtype)  # augmentation made float32 views
    for stage, width in enumerate(self.widths):
      for i in range(self.convs_per_stage):
        stride = 2 if (stage > 0 and i == 0) else 1
        conv = nn.Conv(width, (3, 3), strides=stride, use_bias=False, dtype=self.dtype)
        x = over_batch_chunks(conv, x, self._num_chunks(x.shape[0]))
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
        x = nn.relu(x)
    return x.mean(axis=(1, 2))  # (B, h, w, C) -> (B, C)

  def _num_chunks(self, batch: int) -> int:
    """How many chunks of about `conv_chunk` images a batch is convolved in: 1 off the
    CPU, or when chunking is off; a divisor of the batch, so the chunks are equal."""
    if not self.conv_chunk or jax.default_backend() != "cpu":
      return 1
    chunks = max(1, batch // self.conv_chunk)
    while batch % chunks:
      chunks -= 1
    return chunks


def over_batch_chunks(fn, x: jax.Array, num_chunks: int) -> jax.Array:
  """fn(x) for a per-example `fn`, computed on `num_chunks` interleaved slices of the
  batch (rows j, j + num_chunks, ...), put back in order.

  Interleaved rather than contiguous slices: when the batch is split over devices in
  contiguous blocks, each device holds an equal part of every slice (if its block divides
  by `num_chunks`), so slicing moves no data between devices. Unrolled calls rather than a
  `lax.scan`, which XLA's CPU backend runs far slower here.
  """
  if num_chunks == 1:
    return fn(x)
  grouped = x.reshape(x.shape[0] // num_chunks, num_chunks, *x.shape[1:])
  outputs = [fn(grouped[:, j]) for j in range(num_chunks)]
  stacked = jnp.stack(outputs, axis=1)  # (B / n, n, ...)
  return stacked.reshape(x.shape[0], *stacked.shape[2:])


@BACKBONES.register("convnet", {"widths": (16, 32, 64, 256), "convs_per_stage": 1,
                                "conv_chunk": 32})
def _build(block, dtype) -> ConvNet:
  return ConvNet(widths=tuple(block["widths"]), convs_per_stage=block["convs_per_stage"],
                 dtype=dtype, conv_chunk=block.get("conv_chunk", 0))
