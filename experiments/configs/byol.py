"""BYOL on Fashion-MNIST with a small ConvNet, sized for a few minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/byol.py --workdir runs/byol

The views are BYOL's asymmetric ones (blur always on view 1, solarize on view 2), with
crops of at least 30% of the image for 28 px inputs (see simclr.py). The EMA target
starts at the paper's tau_base = 0.996 and follows its cosine schedule to 1.
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "byol"
  c.augment.recipe = "byol"
  c.augment.crop_scale = (0.3, 1.0)
  c.model.predictor_hidden = (512,)
  c.byol.base_momentum = 0.996
  return c
