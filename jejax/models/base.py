"""The backbone registry and the compute dtypes.

Each backbone module registers a builder by name. A builder takes the backbone's config
block (`config.model.<name>`: the defaults it registered, possibly overridden) and the
compute dtype, and returns a Flax module mapping (B, H, W, C) images in [0, 1] to (B, F)
features:

  @BACKBONES.register("convnet", {"widths": (16, 32, 64, 256), "convs_per_stage": 1})
  def build(block, dtype): return ConvNet(tuple(block["widths"]), ..., dtype=dtype)

`TOWERS` holds the other modalities' encoders of the multimodal methods (the text
transformer, the audio ViT), registered the same way with their blocks
`config.model.<name>`, and built alike from the block and the compute dtype. The image
tower of those methods is the backbone.

`FUSIONS` holds the fusion modules (`jejax.models.fusion`), which combine several
modalities' tokens into one feature; built alike from their block and the dtype.
"""

from typing import Any

import jax.numpy as jnp

from jejax.registry import Registry

BACKBONES = Registry("backbone", "jejax.models")
TOWERS = Registry("tower", "jejax.models")
FUSIONS = Registry("fusion", "jejax.models")

# Compute dtypes of `model.dtype`. float16 is left out: its 5-bit exponent needs loss
# scaling, which bfloat16 (float32's exponent range) does not.
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str) -> Any:
  if name not in DTYPES:
    raise ValueError(f"config.model.dtype={name!r}: unknown compute dtype; known: "
                     f"{sorted(DTYPES)}")
  return DTYPES[name]
