"""VICReg on Fashion-MNIST with a small ConvNet, sized for a few minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/vicreg.py --workdir runs/vicreg

The paper's loss weights (25, 25, 1). Deviations: expander 512-512 instead of
8192-8192-8192 (see base_config), BYOL-style views with crops of at least 30% (28 px).
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "vicreg"
  c.augment.recipe = "byol"  # VICReg uses BYOL's augmentations
  c.augment.crop_scale = (0.3, 1.0)
  c.model.projector_hidden = (512,)
  c.model.embed_dim = 512
  return c
