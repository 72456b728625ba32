"""BYOL on Fashion-MNIST with a small ConvNet, sized for a few minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/byol.py --workdir runs/byol
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "byol"
  c.augment.recipe = "byol"
  c.model.predictor_hidden = (512,)
  c.byol.base_momentum = 0.996  # the paper's tau_base
  return c
