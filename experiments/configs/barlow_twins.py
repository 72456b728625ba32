"""Barlow Twins on Fashion-MNIST with a small ConvNet, sized for a few minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/barlow_twins.py --workdir runs/barlow

lambda = 0.0051 as in the authors' code. Deviations: projector 512-512 instead of
8192-8192-8192 (see base_config), BYOL-style views with crops of at least 30% (28 px).
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "barlow_twins"
  c.augment.recipe = "byol"  # Barlow Twins uses BYOL's augmentations
  c.augment.crop_scale = (0.3, 1.0)
  c.model.projector_hidden = (512,)
  c.model.embed_dim = 512
  return c
