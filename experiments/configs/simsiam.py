"""SimSiam on Fashion-MNIST with a small ConvNet, sized for a few minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/simsiam.py --workdir runs/simsiam

Deviations: projector 512 -> 128 and bottleneck predictor 128 -> 32 -> 128 instead of
2048 -> 512 -> 2048 (the ratio of 4 kept), SimCLR's CIFAR-style views (see simclr.py).
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "simsiam"
  c.model.predictor_hidden = (32,)
  c.augment.crop_scale = (0.3, 1.0)
  c.augment.brightness = 0.4
  c.augment.contrast = 0.4
  c.augment.blur_prob = 0.0
  return c
